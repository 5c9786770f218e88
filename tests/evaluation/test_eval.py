"""The evaluation: metric functions on hand-made cases, answer typing, the calibration
fit, and a tiny end-to-end ``python -m rag.eval`` run with the fake embedder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rag.answer import extract, question
from rag.evaluation import fit as calibrate
from rag.evaluation import metrics
from rag.evaluation import run as rag_eval
from rag.answer.params import FEATURES, answer_model

MODEL = answer_model()


# -- metrics --------------------------------------------------------------------

def test_normalize_answer_is_squad_normalisation():
    assert metrics.normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert metrics.normalize_answer("an apple, a pear") == "apple pear"
    assert metrics.normalize_answer("Theory") == "theory"  # "the" only as a word


def test_exact_match_and_contains():
    assert metrics.exact_match("the Denver Broncos", ["Denver Broncos"]) == 1.0
    assert metrics.exact_match("Denver", ["Denver Broncos"]) == 0.0
    sent = "The Normans conquered England in 1066, after the battle."
    assert metrics.contains_answer(sent, ["1066"]) == 1.0
    assert metrics.contains_answer(sent, ["106"]) == 0.0  # whole tokens only
    assert metrics.contains_answer(sent, ["Battle"]) == 1.0
    assert metrics.contains_answer(sent, ["the"]) == 0.0  # normalises to nothing
    assert metrics.contains_answer("", ["1066"]) == 0.0
    # scripts without spaces between words: a run of characters (XQuAD zh, th)
    zh = "黑豹队的防守只丢了 308分，在联赛中排名第六。"
    assert metrics.contains_answer(zh, ["第六"]) == 1.0
    assert metrics.contains_answer(zh, ["第七"]) == 0.0
    assert metrics.contains_answer("ได้อันดับที่หกของลีก", ["อันดับที่หก"]) == 1.0
    assert metrics.contains_answer(zh, ["308"]) == 1.0  # "308分": a word ends at 分
    assert metrics.contains_answer(zh, ["08"]) == 0.0   # not inside a number
    assert metrics.contains_answer("in 1308 AD", ["308"]) == 0.0  # English as before


def test_punctuation_outside_ascii_separates_words():
    # XQuAD ar: the Arabic comma follows the answer; it is no part of the word
    ar = "خصمهم المحلي، بولونيا وارسو، لديهم عدد مشجعين أقل بكثير"
    assert metrics.contains_answer(ar, ["بولونيا وارسو"]) == 1.0
    assert metrics.contains_answer(ar, ["المحلي"]) == 1.0
    assert metrics.contains_answer(ar, ["وارس"]) == 0.0  # still whole words
    assert metrics.normalize_answer("“Quoted” – dashed") == "quoted dashed"
    assert metrics.normalize_answer("O'Neill, U.S.") == "oneill us"  # ASCII: SQuAD's
    assert metrics.contains_answer("约翰·埃尔维保持的", ["约翰·埃尔维"]) == 1.0


def test_token_f1_hand_computed():
    # pred tokens: denver broncos won ; gold: denver broncos -> P 2/3, R 1 -> F1 0.8
    assert metrics.token_f1("Denver Broncos won", ["Denver Broncos"]) == pytest.approx(0.8)
    assert metrics.token_f1("Carolina", ["Denver Broncos", "Carolina Panthers"]) == \
        pytest.approx(2 * 1 * 0.5 / 1.5)
    assert metrics.token_f1("nothing here", ["Denver"]) == 0.0
    assert metrics.token_f1("x", []) == 0.0


def test_retrieval_metrics():
    hits = [False, False, True, False, True]
    assert metrics.first_hit_rank(hits) == 3
    assert metrics.recall_at(hits, 1) == 0.0
    assert metrics.recall_at(hits, 3) == 1.0
    assert metrics.reciprocal_rank(hits) == pytest.approx(1 / 3)
    assert metrics.reciprocal_rank(hits, k=2) == 0.0
    assert metrics.reciprocal_rank([]) == 0.0
    assert metrics.covers_answer(10, 50, [(12, 20)])
    assert not metrics.covers_answer(10, 50, [(45, 55)])  # straddles the end


def test_percentile_and_mean():
    assert metrics.percentile([5, 1, 3], 50) == 3
    assert metrics.percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert metrics.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 95) == pytest.approx(10.5)
    assert math.isnan(metrics.percentile([], 50))
    assert math.isnan(metrics.mean([]))
    assert metrics.share([True, False, False, True]) == 0.5


def _row(kind, abstained, hit=0.0, hits=(), integrity=1.0, n=2, ms=10.0):
    return {"kind": kind, "abstained": abstained, "hit": hit, "f1": hit / 2,
            "length": 100, "retrieval_hits": list(hits), "integrity": integrity,
            "n_citations": n, "latency_ms": ms}


def test_summarise_counts_each_kind():
    rows = [_row("answerable", False, 1.0, [True, False], ms=10),
            _row("answerable", False, 0.0, [False, True], ms=20),
            _row("answerable", True, 1.0, [False, False], ms=30),
            _row("unanswerable", True, ms=40), _row("unanswerable", False, ms=50),
            _row("offtopic", True, integrity=0.5, n=4, ms=60)]
    s = metrics.summarise(rows)
    assert s["recall@1"] == pytest.approx(1 / 3)
    assert s["recall@5"] == pytest.approx(2 / 3)
    assert s["mrr@10"] == pytest.approx((1 + 0.5) / 3)
    assert s["hit@1"] == pytest.approx(0.5)  # over the two answered
    assert s["hit@1_all"] == pytest.approx(1 / 3)
    assert s["answerable_abstained"] == pytest.approx(1 / 3)
    assert s["unanswerable_abstained"] == 0.5
    assert s["offtopic_abstained"] == 1.0
    assert s["integrity"] == pytest.approx((5 * 2 + 2) / 14)
    assert s["latency_p50_ms"] == pytest.approx(35)


# -- answer types and calibration -------------------------------------------------

def test_answer_type_of_questions():
    assert question.answer_type("How much did it cost to train R1?") == "money"
    assert question.answer_type("When did the Normans conquer England?") == "date"
    assert question.answer_type("In what year was it built?") == "date"
    assert question.answer_type("How many field goals did he kick?") == "count"
    assert question.answer_type("How long is the Rhine?") == "number"
    assert question.answer_type("How much of the land is forest?") == "number"
    assert question.answer_type("Who founded DeepSeek?") == "name"
    assert question.answer_type("What is the capital of France?") is None


def test_has_type_ignores_what_the_question_already_says():
    q = "when did the normans reach italy in the 11th century?"
    assert question.has_type("date", "They arrived in 999.", q)
    assert question.has_type("date", "They arrived in March.", q)
    assert not question.has_type("date", "They arrived in the 11th century.", q)
    assert not question.has_type("date", "The Normans reached Italy with 12 knights.", q)
    assert question.has_type("name", "It was founded by Liang Wenfeng.", "who founded deepseek?")
    assert not question.has_type("name", "It was founded in a garage.", "who founded it?")
    assert question.has_type(None, "anything", "what?")


def test_questions_in_other_languages_ask_for_a_quantity():
    # XQuAD's wordings (de, es, ru, zh, ar, hi, th, el, ro, tr, vi)
    for q in ("Wann wurde die Universität gegründet?", "¿Cuántos jugadores fueron elegidos?",
              "Сколько игроков было выбрано?", "有多少名黑豹队防守球员入选了职业碗？",
              "كم عدد لاعبي دفاع فريق البانثرز؟", "कितने खिलाड़ी चुने गए?",
              "ผู้เล่นได้รับเลือกให้เล่นในโปรโบว์ลกี่คน", "Πόσοι παίκτες επιλέχθηκαν;",
              "Câți jucători au fost aleși?", "Kaç oyuncu seçildi?", "Có bao nhiêu cầu thủ?"):
        assert question.answer_type(q) == "quantity", q
    for q in ("Wer hat die Universität gegründet?", "¿Quién fundó la universidad?",
              "谁创立了这所大学？", "What is the capital of France?",
              "من هو الحاكم الألماني؟",  # "الحاكم " holds "كم ", but no word "كم"
              "उसने कब्ज़ा किया?"):  # "कब्ज़ा" begins with "कब", but is no "कब"
        assert question.answer_type(q) is None, q
    assert question.answer_type("How many field goals did he kick?") == "count"  # English
    assert question.has_type("quantity", "四名球员入选了职业碗。", "有多少名球员入选？")
    assert not question.has_type("quantity", "球员入选了职业碗。", "有多少名球员入选？")
    assert question.has_type("quantity", "وقد ضم الفريق أربعة لاعبين", "كم عدد اللاعبين؟")
    assert question.has_type("quantity", "Die Universität wurde 1502 gegründet.", "wann?")
    assert not question.has_type("quantity", "Die Universität ist alt.", "wann wurde sie 1502?")


def test_has_type_money_count_and_number():
    q = "how much did the stadium cost in 2014?"
    assert question.has_type("money", "The $1.2 billion stadium opened in 2014.", q)
    assert question.has_type("money", "It cost 300 million pounds.", q)
    assert not question.has_type("money", "It opened in 2016 with 68,500 seats.", q)
    q = "how many field goals did he kick?"
    assert question.has_type("count", "He made all four of his field goals.", q)
    assert not question.has_type("count", "He kicked in 2015, in Denver.", q)
    assert question.has_type("number", "It is 1,230 km long.", "how long is the rhine?")
    assert not question.has_type("number", "The Rhine is long.", "how long is the rhine?")


def test_question_terms_drop_only_the_words_that_shape_the_question():
    from rag.index.keyword import keyword_tokens

    def terms(q):
        return question.question_terms(q, keyword_tokens(q))

    assert "name" in terms("What historical figure was Jacksonville named after?")
    assert "name" not in terms("Name the largest city in Florida.")
    assert terms("How long is the Rhine?") == ["rhine"]
    assert "long" in terms("Which long river flows through Basel?")
    assert "who" not in terms("Who won?") and "won" in terms("Who won?")
    # other scripts' question words (XQuAD's Panthers question in each)
    assert terms("Сколько очков пропустила защита Пантер?") == ["очк", "пропуст", "защит",
                                                                "пантер"]
    assert terms("Πόσους πόντους έδωσε η άμυνα των Πάνθηρων;") == ["ποντ", "εδωσ", "αμυν",
                                                                    "πανθηρ"]
    assert "كم" not in terms("كم عدد النقاط التي تخلى عنها دفاع الفهود؟")
    assert terms("पैंथर्स की डिफ़ेंस ने कितने अंक दिए?") == ["पैंथर्स", "डिफ़ेंस", "अंक"]
    # and under a Latin language's analyzer (its own question words are stop words)
    assert question.question_terms("Wie viele Punkte?", keyword_tokens("Wie viele Punkte?",
                                                                        "de"), "de") == \
        ["de:punkt"]


def _cand(sentence, score, chunk=0, type_miss=0.0, start=None):
    start = sentence * 10 if start is None else start
    return extract.Candidate(0, chunk, sentence, start, start + 9, score,
                             {k: 0.0 for k in FEATURES} | {"type_miss": type_miss})


def test_pair_quotes_the_neighbour_only_when_it_is_nearly_as_likely():
    gap = MODEL.pair_gap
    best = _cand(5, 3.0)
    both = extract._pair(best, [best, _cand(6, 3.0 - gap + 0.01)], gap)
    assert (both.start, both.end) == (50, 69)
    both = extract._pair(best, [best, _cand(4, 2.9)], gap)
    assert (both.start, both.end) == (40, 59)
    assert extract._pair(best, [best, _cand(6, 3.0 - gap - 0.01)], gap) is None
    assert extract._pair(best, [best, _cand(7, 2.9)], gap) is None  # not a neighbour
    assert extract._pair(best, [best, _cand(6, 2.9, chunk=1)], gap) is None  # another passage
    assert extract._pair(best, [best], gap) is None


def test_the_answer_model_is_one_frozen_value_from_one_file(tmp_path):
    import dataclasses

    from rag.answer.params import AnswerModel

    with pytest.raises(dataclasses.FrozenInstanceError):
        MODEL.pair_gap = 0.0
    with pytest.raises(TypeError):
        MODEL.select["cos_s"] = 0.0
    changed = MODEL.replace(pair_gap=0.0, threshold=0.5)
    assert MODEL.pair_gap > 0 and changed.pair_gap == 0.0
    changed.save(tmp_path / "m.json")
    assert AnswerModel.load(tmp_path / "m.json") == changed


def test_conditional_logit_fit_learns_to_pick_the_labelled_candidate():
    rng = np.random.default_rng(1)
    true_w = np.array([3.0, -2.0])
    groups = []
    for _ in range(600):
        x = rng.standard_normal((8, 2))
        p = np.exp(x @ true_w)
        y = np.zeros(8, dtype=bool)
        y[rng.choice(8, p=p / p.sum())] = True
        groups.append((x, y))
    w = calibrate.conditional_logit_fit(groups, ridge=0.0)
    assert w == pytest.approx(true_w, rel=0.2)
    # groups with no labelled candidate are ignored, not a crash
    assert calibrate.conditional_logit_fit(groups + [(np.ones((3, 2)), np.zeros(3, bool))],
                                           ridge=0.0) == pytest.approx(w)


def test_logistic_fit_recovers_a_known_model():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 2))
    p = 1 / (1 + np.exp(-(0.5 + 2.0 * x[:, 0] - 1.0 * x[:, 1])))
    y = (rng.random(4000) < p).astype(float)
    beta = calibrate.logistic_fit(x, y, ridge=0.0)
    assert beta == pytest.approx([0.5, 2.0, -1.0], abs=0.2)


def test_pick_threshold_keeps_wrong_abstentions_within_five_percent():
    p = np.linspace(0.01, 1.0, 100)
    kinds = ["answerable"] * 100
    t = calibrate.pick_threshold(p, kinds)
    assert (p < t).mean() <= 0.05
    assert calibrate.pick_threshold(np.append(p, 0.001), kinds + ["offtopic"]) == t


# -- end to end -----------------------------------------------------------------

ARTICLES = [
    {"id": "a-volcano", "title": "Volcano", "text":
        "Mount Vesuvius is a volcano near Naples.\n\nIt erupted in 79 AD and buried "
        "Pompeii under ash. The eruption lasted two days.\n\nToday the crater is a park."},
    {"id": "a-bridge", "title": "Bridge", "text":
        "The Golden Gate Bridge opened in 1937.\n\nIts main span is 1280 metres long. "
        "The bridge is painted international orange."},
    {"id": "a-tea", "title": "Tea", "text":
        "Green tea comes from the leaves of Camellia sinensis.\n\nIt is popular in "
        "China and Japan. Matcha is a powdered green tea."},
]
QUESTIONS = [
    {"id": "q1", "question": "When did Vesuvius erupt and bury Pompeii?", "answers": ["79 AD"],
     "article_id": "a-volcano", "is_impossible": False, "source": "test"},
    {"id": "q2", "question": "How long is the main span of the bridge?",
     "answers": ["1280 metres"], "article_id": "a-bridge", "is_impossible": False,
     "source": "test"},
    {"id": "q3", "question": "What colour is the Golden Gate Bridge painted?",
     "answers": ["international orange"], "article_id": "a-bridge", "is_impossible": False,
     "source": "other"},
    {"id": "q4", "question": "What is matcha made of?", "answers": [],
     "article_id": "a-tea", "is_impossible": True, "source": "other"},
]


def _write(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    texts = {a["id"]: a["text"] for a in ARTICLES}
    for q in QUESTIONS:
        q["answer_starts"] = [texts[q["article_id"]].index(a) for a in q["answers"]]
    (data / "articles.jsonl").write_text("".join(json.dumps(a) + "\n" for a in ARTICLES))
    (data / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    news = tmp_path / "news"
    news.mkdir()
    (news / "articles.jsonl").write_text(json.dumps(
        {"id": "n1", "title": "Markets", "text": "Shares rose 3% on Monday in London."}) + "\n")
    return data, news


@pytest.mark.model
def test_eval_end_to_end_with_fake_model(tmp_path, monkeypatch, capsys):
    data, news = _write(tmp_path)
    out = tmp_path / "report.json"
    monkeypatch.setenv("RAG_MODEL", "fake")
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "40")
    monkeypatch.setenv("RAG_CHUNK_OVERLAP", "5")
    argv = [str(data), "--distractors", str(news), "--out", str(out), "--quiet",
            "--holdout-offtopic", "1", "--index-cache", str(tmp_path / "cache"),
            "--threshold", "0.0"]
    assert rag_eval.main(argv) == 0
    table = capsys.readouterr().out
    assert "overall" in table and "test" in table and "off-topic (held out)" in table
    rep = json.loads(out.read_text())
    overall = rep["overall"]
    assert overall["questions"] == 4 + len([q for q in QUESTIONS
                                           if q["article_id"] in rep["held_out_articles"]])
    assert overall["integrity"] == 1.0
    assert overall["answerable_abstained"] == 0.0  # threshold 0: never abstains
    assert 0.0 <= overall["recall@1"] <= overall["recall@5"] <= 1.0
    # the looser text hits include every span hit
    assert overall["recall@1"] <= overall["recall@1_text"] <= overall["recall@5_text"] <= 1.0
    assert overall["latency_p50_ms"] > 0
    assert set(rep["sweep"]) >= {"0.00", "0.50"}
    rows = {r["id"]: r for r in rep["rows"] if r["kind"] != "offtopic"}
    assert rows["q2"]["hit"] == 1.0 and "1280 metres" in rows["q2"]["answer"]
    assert rows["q2"]["retrieval_hits"][0] is True and rows["q2"]["text_hits"][0] is True
    # the cached index is reused: a second run embeds nothing new
    assert rag_eval.main(argv) == 0


def test_passage_coverage_counts_a_sentence_shared_by_overlapping_passages():
    """A sentence in the overlap of two passages is scored once (for the better-ranked
    passage) but its terms still count toward the other passage's ``lex_p``."""
    from types import SimpleNamespace

    from rag.answer.search import Hit

    text = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota."
    spans = [(0, 17), (18, 37), (18, 37), (38, 53)]
    assert [text[a:b] for a, b in spans][1] == "Delta epsilon zeta."
    index = SimpleNamespace(
        chunks=np.array([[0, 0, 37, 0, 2], [0, 18, 53, 2, 4]]),
        sentences=np.array(spans), n_chunks=2, idf=lambda terms: {t: 1.0 for t in terms},
        sentence_vectors=np.ones((4, 3), dtype=np.float16) / np.sqrt(3),
        article=lambda row: SimpleNamespace(text=text), analyzer=lambda row: "en")
    hits = [Hit(chunk=c, fused=1.0, dense=0.5, keyword=1.0, dense_rank=c, keyword_rank=c)
            for c in (0, 1)]
    ev = extract.sentence_evidence(index, "Delta iota?", np.ones(3) / np.sqrt(3), hits)
    quotes = {text[a:b]: f for _, _, _, a, b, f in ev}
    assert len(ev) == 3  # the shared sentence once
    assert quotes["Delta epsilon zeta."]["lex_p"] == pytest.approx(0.5)  # passage 0
    assert quotes["Eta theta iota."]["lex_p"] == pytest.approx(1.0)  # passage 1 has both


@pytest.mark.model
def test_eval_fit_prints_weights_calibration_and_threshold(tmp_path, monkeypatch, capsys):
    data, news = _write(tmp_path)
    monkeypatch.setenv("RAG_MODEL", "fake")
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "40")
    monkeypatch.setenv("RAG_CHUNK_OVERLAP", "5")
    argv = [str(data), "--distractors", str(news), "--quiet", "--holdout-offtopic", "1",
            "--index-cache", str(tmp_path / "cache"), "--fit"]
    assert rag_eval.main(argv) == 0
    out = capsys.readouterr().out
    assert "SELECT (fitted" in out and "CALIBRATION =" in out
    assert "abstain_threshold = " in out and "pair gap 1.5" in out
    assert "whole pipeline, 4-fold CV by article: hit@1" in out


def test_is_heading_only_for_short_lines_that_do_not_end_like_a_sentence():
    text = ("DeepSeek's Origins\nFounded in 2023, DeepSeek is a startup.\n\n"
            "The Facts -\n- R1 matches top rivals at a fraction of the cost.\n"
            "He said: \"It works\"\nA line that is long enough to be a sentence without "
            "any final full stop at its end at all")
    spans = {line: (text.index(line), text.index(line) + len(line))
             for line in text.split("\n") if line}
    assert question.is_heading(text, *spans["DeepSeek's Origins"])
    assert question.is_heading(text, *spans["The Facts -"])
    assert not question.is_heading(text, *spans["Founded in 2023, DeepSeek is a startup."])
    assert not question.is_heading(text, *spans['He said: "It works"'])
    assert not question.is_heading(text, *spans[text.split("\n")[-1]])  # > 12 words
    a, b = spans["Founded in 2023, DeepSeek is a startup."]
    assert not question.is_heading(text, a, a + 7)  # "Founded": not a line of its own


def test_a_heading_is_never_the_answer_while_a_sentence_is_on_offer():
    from types import SimpleNamespace

    from rag.answer.search import Hit

    text = "DeepSeek Origins\nThe company was founded in 2023 by Liang Wenfeng."
    spans = [(0, 16), (17, len(text))]
    index = SimpleNamespace(
        chunks=np.array([[0, 0, len(text), 0, 2]]), sentences=np.array(spans),
        idf=lambda terms: {t: 1.0 for t in terms},
        n_chunks=1, sentence_vectors=np.ones((2, 3), dtype=np.float16) / np.sqrt(3),
        article=lambda row: SimpleNamespace(text=text), analyzer=lambda row: "en")
    hits = [Hit(chunk=0, fused=1.0, dense=0.5, keyword=1.0, dense_rank=0, keyword_rank=0)]
    ev = extract.sentence_evidence(index, "What is DeepSeek?", np.ones(3) / np.sqrt(3), hits)
    by_quote = {text[a:b]: f for *_, a, b, f in ev}
    assert by_quote["DeepSeek Origins"]["heading"] == 1.0
    # the heading matches the question's only term, the sentence does not ...
    heading_score = MODEL.selection_score(by_quote["DeepSeek Origins"])
    assert heading_score > MODEL.selection_score(by_quote[text[17:]])
    # ... yet the sentence is the answer, and the heading is not paired into the quote
    best = extract.rank_candidates(ev, MODEL)[0]
    assert text[best.start:best.end] == text[17:]


def test_fit_embeds_the_questions_with_the_configured_backend(cfg, monkeypatch):
    """--fit must score the question vectors ask() uses (it once used torch's fp32
    vectors against an int8 index)."""
    import rag
    from rag.embedding import model as embed

    (cfg.source / "a.txt").write_text("Alpha\n\nThe alpha test is here.", encoding="utf-8")
    rag.build(config=cfg)
    seen, real = [], embed.get_embedder
    monkeypatch.setattr(embed, "get_embedder", lambda c: seen.append(c.backend) or real(c))
    q = {"id": "q", "question": "What test?", "article_id": "a.txt", "answers": ["alpha"]}
    items = calibrate.collect([q], cfg.replace(backend="onnx"), "answerable", "hybrid")
    assert seen == ["onnx"] and len(items) == 1


# -- several sets, pooled fit (issue 23) ---------------------------------------------

def test_limit_per_source_keeps_every_kth_question_of_each_source():
    qs = [{"id": f"a{i}", "source": "A"} for i in range(10)] + \
         [{"id": f"b{i}", "source": "B"} for i in range(3)]
    got = rag_eval.limit_per_source(qs, 5)
    assert [q["id"] for q in got] == ["a0", "a2", "a4", "a6", "a8", "b0", "b1", "b2"]
    assert rag_eval.limit_per_source(qs, None) == qs


def test_the_threshold_keeps_every_source_within_five_percent():
    from rag.evaluation import pool

    # source A's answerable questions score high, B's low: the threshold must serve B
    items = [{"kind": "answerable", "source": "A"}] * 100 + \
            [{"kind": "answerable", "source": "B"}] * 100 + \
            [{"kind": "answerable", "source": "tiny"}] * 5 + \
            [{"kind": "offtopic", "source": "x: off-topic"}] * 50
    p = np.concatenate([np.linspace(0.6, 0.99, 100), np.linspace(0.2, 0.9, 100),
                        np.zeros(5), np.full(50, 0.1)])
    t = pool.threshold_every_source(p, items)
    for src in ("A", "B"):
        ps = p[[i for i, it in enumerate(items) if it["source"] == src]]
        assert (ps < t).mean() <= 0.05
    # not lower than it must be: B's sixth-lowest score, rounded down
    assert t == math.floor(np.sort(p[100:200])[5] * 100) / 100
    assert t > 0.0  # the 5 questions of "tiny" (all 0) do not bind


def test_selector_gap_is_the_margin_over_the_best_other_sentence_read():
    f = {"cos_s": 0.5, "cos_p": 0.5, "lex": 0.5, "lex_p": 0.5, "type_miss": 0.0}
    ev = [(0, 0, 0, 0, 10, {**f, "sel": 2.0}), (0, 0, 1, 11, 20, {**f, "sel": 0.5}),
          (0, 0, 2, 21, 30, {**f, "sel": -1.0}), (0, 0, 3, 31, 40, dict(f))]
    gap = [r[5].get("sel_gap") for r in extract.with_selector_gap(ev)]
    assert gap == [1.5, -1.5, -3.0, None]
    one = extract.with_selector_gap(ev[:1])
    assert one[0][5]["sel_gap"] == 0.0
    assert extract.with_selector_gap(ev[3:]) == ev[3:]  # nothing read: unchanged


@pytest.mark.model
def test_several_sets_side_by_side_and_a_pooled_fit(tmp_path, monkeypatch, capsys):
    """Two sets (the second with an offtopic.jsonl) in one run: a line per set and
    source, both paths; --fit pools them, writes the evidence and fits again from it."""
    data, news = _write(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    for name in ("articles.jsonl", "questions.jsonl"):
        (other / name).write_text((data / name).read_text())
    (other / "offtopic.jsonl").write_text(json.dumps(
        {"id": "offtopic-01", "question": "Who won the 2010 World Cup?"}) + "\n")
    monkeypatch.setenv("RAG_MODEL", "fake")
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "40")
    monkeypatch.setenv("RAG_CHUNK_OVERLAP", "5")
    common = ["--distractors", str(news), "--quiet", "--index-cache", str(tmp_path / "cache")]
    out = tmp_path / "report.json"
    assert rag_eval.main([str(data), str(other), *common, "--paths", "both",
                          "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "selector hit@1" in table and "fast hit@1" in table
    assert "data: test" in table and "other: other" in table
    assert "other: off-topic (offtopic.jsonl)" in table and "data: off-topic" not in table
    rep = json.loads(out.read_text())
    assert set(rep["reports"]) == {"selector", "fast"}
    assert set(rep["reports"]["fast"]) == {"data", "other"}
    assert len(rep["rows"]["fast/other"]) == len(QUESTIONS) + 1
    evidence = tmp_path / "pool.jsonl"
    assert rag_eval.main([str(data), str(other), *common, "--fit", "--out",
                          str(evidence)]) == 0
    printed = capsys.readouterr().out
    assert "selector path" in printed and "fast path" in printed
    assert "refit+sel CV" in printed and "CALIBRATION" in printed
    from rag.evaluation import pool

    items = pool.read_items(evidence)
    assert {it["set"] for it in items} == {"data", "other"}
    assert sum(it["kind"] == "offtopic" for it in items) == 1
    assert {it["q"]["article_id"].split("/")[0] for it in items} == {"data", "other"}
    for it in items:  # a quote's text is the text of its sentences
        if it["ev"]:
            assert pool.quote(it, extract.rank_candidates(pool._ev(it), answer_model(True))[0])
    assert rag_eval.main(["--fit", "--from-evidence", str(evidence)]) == 0
    assert "refit+sel CV" in capsys.readouterr().out
    # another selector measured on the same evidence: the shipped one gives the same scores
    from rag.answer.selector import MODEL_DIR, get_selector

    read = [r[5]["sel"] for it in items for r in it["ev"] if "sel" in r[5]]
    assert read
    again = pool.rescore(items, get_selector())
    assert [r[5]["sel"] for it in again for r in it["ev"] if "sel" in r[5]] == read
    shifted = pool.rescore(items, _Shifted())
    assert [r[5]["sel"] for it in shifted for r in it["ev"] if "sel" in r[5]] == \
        [-7.0] * len(read)
    assert rag_eval.main(["--fit", "--from-evidence", str(evidence),
                          "--selector-dir", str(MODEL_DIR)]) == 0


class _Shifted:
    def logits(self, question, sentences):
        return np.full(len(sentences), -7.0, dtype=np.float32)


def test_the_vendored_development_set_is_whole_and_its_offsets_hold():
    """Issue 25, item 7: data/eval (CC BY-SA) lets `python -m rag.eval` run from a clone."""
    from rag.evaluation.run import VENDORED_EVAL, load_data

    arts, qs = load_data(VENDORED_EVAL)
    assert len(arts) == 48 and len(qs) == 2600
    assert sum(bool(q.get("is_impossible")) for q in qs) == 320
    text = {a["id"]: a["text"] for a in arts}
    for q in qs:
        for ans, start in zip(q["answers"], q["answer_starts"]):
            assert text[q["article_id"]][start:start + len(ans)] == ans, q["id"]
    assert "CC BY-SA 4.0" in (VENDORED_EVAL / "README.md").read_text()
