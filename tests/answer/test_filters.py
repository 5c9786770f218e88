"""Filters, dates read from questions, and why an answer: rag.ask(filters=...),
rag.search, rag.get_article, the CLI's filter options, and answer.explain.

The oracle tests compare the filtered search with filtering first and searching the
subset exhaustively (dense: every allowed vector's cosine; keyword: every allowed
passage's BM25 score)."""

from __future__ import annotations

import json
import math
from datetime import date
from types import SimpleNamespace

import numpy as np
import pytest

import rag
from rag.answer.filters import allowed_chunks, article_mask, make_filters
from rag.answer.search import keyword_search, search
from rag.cli import ask_main
from rag.embedding.model import get_embedder
from rag.index import dense
from rag.index.keyword import keyword_tokens
from rag.index.live import load_index
from rag.types import ArticleNotFound, Filters, InvalidQuestion

AS_OF = date(2026, 12, 4)  # a Friday

TOPICS = [
    ("Solar farms", "The solar farm near Seville produced record power this summer. "
                    "Engineers said the panels supplied a fifth of the grid's demand."),
    ("Chess final", "The chess final in Singapore ended after fourteen games. "
                    "Gukesh won the last game with the black pieces."),
    ("Rail strike", "Train drivers walked out over pay, halting rail services. "
                    "The union said the strike would last three days."),
    ("Wheat prices", "Wheat prices rose sharply after the drought cut the harvest. "
                     "Bakers warned that bread would cost more by spring."),
]
OUTLETS = [("Reuters", "https://www.reuters.com/x/", "Ann Lee"),
           ("BBC News", "https://www.bbc.co.uk/news/", "Tom Hart"),
           ("Valley Post", "https://valleypost.example/", None)]
DATES = ["2026-11-24", "2026-11-30", "2026-12-02", "2026-10-15", "2025-03-10", None]


@pytest.fixture
def news(cfg):
    """24 dated records from three outlets (jsonl) and two plain files in folders."""
    rows = []
    n = 0
    for t, (title, text) in enumerate(TOPICS):
        for o, (outlet, url, author) in enumerate(OUTLETS):
            for d in range(2):
                published = DATES[(t + o + 3 * d) % len(DATES)]
                rows.append({"id": f"n{n}", "title": f"{title} ({outlet} {d})",
                             "text": f"{title} ({outlet})\n\n{text} Report {n} from {outlet}.",
                             "source": outlet, "url": f"{url}{n}", "author": author,
                             "published": published})
                n += 1
    (cfg.source / "news.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n",
                                          encoding="utf-8")
    for folder, name in (("desk/sport", "chess.txt"), ("desk/farm", "wheat.txt")):
        (cfg.source / folder).mkdir(parents=True)
    (cfg.source / "desk/sport/chess.txt").write_text(
        "Chess news\n\nThe chess final drew a record audience online.", encoding="utf-8")
    (cfg.source / "desk/farm/wheat.txt").write_text(
        "Farm desk\n\nWheat growers asked for help after the drought.", encoding="utf-8")
    rag.build(config=cfg)
    return cfg, rows


# -- make_filters ----------------------------------------------------------------------

def test_make_filters_normalises_and_checks():
    f = make_filters({"sources": "Reuters", "since": "last week", "until": "2026-12",
                      "folders": ["/desk/sport/"], "authors": []}, AS_OF)
    assert f == Filters(sources=("Reuters",), since="2026-11-23", until="2026-12-31",
                        folders=("desk/sport",))
    assert make_filters({}, AS_OF) is None and make_filters(None) is None
    assert make_filters({"sources": ["", "  "]}, AS_OF) is None
    assert "source: Reuters" in f.describe() and "2026-11-23 to 2026-12-31" in f.describe()


@pytest.mark.parametrize("bad, words", [
    ({"outlet": "Reuters"}, "unknown filter field 'outlet'"),
    ({"since": "2026-12-05", "until": "2026-12-01"}, "reversed"),
    ({"since": "the day after"}, "cannot read"),
    ({"until": "2026-02-30"}, "until"),
    ({"sources": 5}, "list of strings"),
    ({"article_ids": ["a", 3]}, "list of strings"),
    ({"since": 20261201}, "must be a date"),
    (["Reuters"], "must be an object"),
])
def test_make_filters_refuses_bad_input(bad, words):
    with pytest.raises(InvalidQuestion, match=words):
        make_filters(bad, AS_OF)


# -- the oracle: filtered search == filter first, then search the subset exhaustively ---

def _brute_dense(index, qvec, allowed, n):
    scores = np.asarray(index.chunk_vectors, dtype=np.float32)[allowed] @ qvec
    order = sorted(range(len(allowed)), key=lambda i: (-scores[i], allowed[i]))[:n]
    return [(int(allowed[i]), float(scores[i])) for i in order]


def _brute_keyword(index, question, allowed, n):
    """bm25s itself over every passage's text: scores of the whole index, then filtered."""
    import bm25s
    from rag.index.keyword import tokenize_passages

    texts = [index.article(r).text[s:e] for r, s, e in index.chunks[:, :3].tolist()]
    tokens = tokenize_passages(texts)
    vocab = {t: i for i, t in enumerate(sorted({t for doc in tokens for t in doc}))}
    bm25 = bm25s.BM25()
    bm25.index(bm25s.tokenization.Tokenized(ids=[[vocab[t] for t in doc] for doc in tokens],
                                            vocab=vocab), show_progress=False)
    terms = [t for t in keyword_tokens(question) if t in vocab]
    scores = bm25.get_scores(terms) if terms else np.zeros(index.n_chunks)
    found = [(int(c), float(scores[c])) for c in allowed if scores[c] > 0]
    return sorted(found, key=lambda x: (-x[1], x[0]))[:n]


FILTERS = [{"sources": ["reuters"]}, {"sources": ["bbc.co.uk"]}, {"authors": ["hart"]},
           {"since": "2026-11-23", "until": "2026-11-30"}, {"folders": ["desk"]},
           {"article_ids": ["n3", "n7", "desk/farm/wheat.txt"]},
           {"sources": ["valley"], "since": "2026-01-01"}]
QUESTIONS = ["Who won the chess final?", "Why did wheat prices rise?",
             "How long will the rail strike last?", "How much of the demand did solar supply?"]


@pytest.mark.parametrize("spec", FILTERS)
def test_filtered_search_equals_filtering_first_then_searching_everything(news, spec):
    cfg, _ = news
    index = load_index(cfg.index_dir, cfg).single()
    emb = get_embedder(cfg)
    allowed = allowed_chunks(index, make_filters(spec, AS_OF))
    assert 0 < len(allowed) < index.n_chunks
    for q in QUESTIONS:
        qvec = emb.embed_queries([q])[0]
        for n in (3, 50):
            got_d = dense.dense_search(index, qvec, n, allowed)
            want_d = _brute_dense(index, qvec, allowed, n)
            assert [c for c, _ in got_d] == [c for c, _ in want_d]
            assert np.allclose([s for _, s in got_d], [s for _, s in want_d], atol=1e-5)
            got_k = keyword_search(index, keyword_tokens(q), n, allowed)
            want_k = _brute_keyword(index, q, allowed, n)
            assert [round(s, 4) for _, s in got_k] == [round(s, 4) for _, s in want_k]
            assert {c for c, _ in got_k} <= set(allowed.tolist())
            hits = search(index, q, qvec, n, "hybrid", allowed)
            assert {h.chunk for h in hits} <= set(allowed.tolist())
            assert len(hits) == min(n, len(allowed)) or len(hits) >= len(got_d)


def test_article_mask_matches_a_plain_reading_of_each_field(news):
    cfg, rows = news
    index = load_index(cfg.index_dir, cfg).single()
    f = make_filters({"sources": ["bbc"], "since": "2026-11-25"}, AS_OF)
    mask = article_mask(index, f)
    by_id = {r["id"]: r for r in rows}
    for aid, keep in zip(index.article_ids, mask):
        r = by_id.get(aid)
        want = bool(r and r["source"] == "BBC News" and r["published"]
                    and r["published"] >= "2026-11-25")
        assert keep == want, aid


def test_ivf_filtered_search_through_faiss_equals_the_exact_scan():
    import faiss

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3000, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    quant = faiss.IndexFlatIP(16)
    ivf = faiss.IndexIVFFlat(quant, 16, 16, faiss.METRIC_INNER_PRODUCT)
    ivf.train(vecs)
    ivf.add(vecs)
    ivf.nprobe = 16  # every list: exact, so the two paths must agree
    index = SimpleNamespace(faiss=ivf, chunk_vectors=vecs, n_chunks=3000,
                            manifest={"vector_index": {"type": "ivf"}})
    allowed = np.sort(rng.choice(3000, 700, replace=False)).astype(np.int64)
    q = vecs[5] + 0.3 * rng.standard_normal(16).astype(np.float32)
    q /= np.linalg.norm(q)
    via_faiss = dense.dense_search(index, q, 10, allowed)
    exact = dense.exact_subset_search(vecs, q, 10, allowed)
    assert [c for c, _ in via_faiss] == [c for c, _ in exact]
    # with one list probed, FAISS finds fewer than asked in a tiny subset: the exact scan
    ivf.nprobe = 1
    few = allowed[:3]
    assert [c for c, _ in dense.dense_search(index, q, 3, few)] == \
        [c for c, _ in dense.exact_subset_search(vecs, q, 3, few)]


# -- ask with filters ------------------------------------------------------------------

def test_a_narrow_filter_still_gives_k_citations_all_inside_it(news):
    cfg, rows = news
    a = rag.ask("Who won the chess final?", k=4, config=cfg,
                filters={"sources": ["Valley Post"]}, as_of=AS_OF)
    assert len(a.citations) == 4
    valley = {r["id"] for r in rows if r["source"] == "Valley Post"}
    assert {c.article_id for c in a.citations} <= valley
    assert a.scope == "source: Valley Post" and a.filters == Filters(sources=("Valley Post",))
    assert a.explain.articles_in_scope == 8


def test_filters_matching_nothing_abstain_and_say_why(news):
    cfg, _ = news
    a = rag.ask("Who won the chess final?", config=cfg, as_of=AS_OF,
                filters={"sources": ["Le Monde"]})
    assert a.abstained and not a.citations
    assert a.explain.reason == "filtered_out"
    assert "No article matches the filters (source: Le Monde)" in a.message


def test_relative_dates_in_the_question_become_a_shown_filter(news):
    cfg, rows = news
    a = rag.ask("What did the union say about the rail strike last week?", k=5,
                config=cfg, as_of=AS_OF)
    assert a.filters.since == "2026-11-23" and a.filters.until == "2026-11-29"
    assert a.scope == 'published 2026-11-23 to 2026-11-29 (from "last week")'
    for c in a.citations:
        assert "2026-11-23" <= c.published <= "2026-11-29"
    # explicit dates win; dates=False reads none
    b = rag.ask("rail strike last week", config=cfg, as_of=AS_OF,
                filters={"since": "2026-12-01"})
    assert b.filters == Filters(since="2026-12-01") and "from" not in b.scope
    c = rag.ask("rail strike last week", config=cfg, as_of=AS_OF, dates=False)
    assert c.filters is None and c.scope == ""


def test_time_words_are_not_a_filter_when_no_article_has_a_date(cfg):
    (cfg.source / "a.txt").write_text("Rail strike\n\nThe union said the strike would last "
                                      "three days.", encoding="utf-8")
    rag.build(config=cfg)
    a = rag.ask("What did the union say last week?", config=cfg, as_of=AS_OF)
    assert a.filters is None
    assert a.scope == '"last week" not used as a date filter: no article has a published date'
    assert a.citations


# -- explain ---------------------------------------------------------------------------

def test_explanation_contributions_sum_to_the_confidence(news):
    cfg, _ = news
    for q in QUESTIONS + ["What is the capital of Mongolia?"]:
        a = rag.ask(q, config=cfg, as_of=AS_OF)
        e = a.explain
        assert e.reason == ("below_threshold" if a.abstained else "answered")
        z = sum(x.contribution for x in e.evidence)
        assert 1 / (1 + math.exp(-z)) == pytest.approx(a.score, abs=2e-3)
        assert e.margin == pytest.approx(a.score - e.threshold, abs=1e-3)
        assert e.candidates >= len(a.citations)
        assert {"bias", "cos_s", "lex"} <= {x.name for x in e.evidence}
        assert e.selector_probability is None  # the fake config runs the fast path


def test_answer_round_trips_through_json_with_filters_and_explanation(news):
    cfg, _ = news
    a = rag.ask("Why did wheat prices rise?", config=cfg, as_of=AS_OF,
                filters={"authors": ["lee"], "since": "2025-01-01"})
    again = rag.Answer.from_dict(json.loads(a.to_json()))
    assert again == a and again.explain.evidence == a.explain.evidence


# -- search and get_article ------------------------------------------------------------

def test_search_returns_verbatim_passages_inside_the_filter(news):
    cfg, _ = news
    found = rag.search("wheat drought harvest", k=5, config=cfg,
                       filters={"folders": ["desk/farm"]})
    assert [p.article_id for p in found] == ["desk/farm/wheat.txt"]
    found = rag.search("wheat drought harvest", k=6, config=cfg)
    assert len(found) == 6 and [p.n for p in found] == list(range(1, 7))
    for p in found:
        assert rag.get_article(p.article_id, config=cfg).text[p.start:p.end] == p.text
    assert rag.search("wheat", config=cfg, filters={"sources": ["nowhere"]}) == []


@pytest.mark.parametrize("bad", ["nope", "../../etc/passwd", "/etc/passwd", "n1\x00",
                                 "desk/../news.jsonl"])
def test_get_article_looks_ids_up_and_never_opens_paths(news, bad):
    cfg, _ = news
    with pytest.raises(ArticleNotFound, match="no article with id"):
        rag.get_article(bad, config=cfg)
    assert rag.get_article("desk/sport/chess.txt", config=cfg).title == "Chess news"


# -- the command line ------------------------------------------------------------------

@pytest.fixture
def env_for(monkeypatch):
    def use(cfg):
        for key, value in (("RAG_MODEL", "fake"), ("RAG_INDEX", str(cfg.index_dir)),
                           ("RAG_CHUNK_TOKENS", "40"), ("RAG_CHUNK_OVERLAP", "5"),
                           ("RAG_SELECTOR", "0"), ("RAG_ABSTAIN_THRESHOLD", "0")):
            monkeypatch.setenv(key, value)
    return use


def test_cli_filters_and_explain(news, env_for, capsys):
    cfg, _ = news
    env_for(cfg)
    assert ask_main(["Who won the chess final?", "--source", "BBC", "--since",
                     "2026-11-01", "--as-of", "2026-12-04", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["filters"] == {"sources": ["BBC"], "authors": [], "since": "2026-11-01",
                              "until": None, "article_ids": [], "folders": []}
    assert out["explain"]["reason"] in ("answered", "below_threshold")
    assert all(c["source"] == "BBC News" for c in out["citations"])
    assert ask_main(["Who won the chess final?", "--folder", "desk", "--explain"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("[only articles folder: desk]") and "Why: " in text
    assert "adds" in text and "published" not in text.split("\n")[1]


@pytest.mark.parametrize("argv, words", [
    (["q?", "--since", "2026-13-01"], "since"),
    (["q?", "--since", "2026-12-05", "--until", "2026-12-01"], "reversed"),
    (["q?", "--as-of", "someday"], "as_of"),
])
def test_cli_bad_filters_exit_2_with_a_message(news, env_for, capsys, argv, words):
    cfg, _ = news
    env_for(cfg)
    assert ask_main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


# -- time words: an event's date, or the articles' ------------------------------------------

@pytest.fixture
def dated(cfg):
    """Two dated stories: a 2026 one that tells of last year's phone sales, and a 2025 one
    on another subject (AS_OF is in December 2026)."""
    rows = [{"id": "phones", "title": "Phone sales", "published": "2026-02-10",
             "text": "Phone sales\n\nGartner said 674 million mobile phones were sold in "
                     "2025, up 30% on the year before."},
            {"id": "ferry", "title": "Ferry strike", "published": "2025-06-02",
             "text": "Ferry strike\n\nThe ferry crews walked out for two days over pay."}]
    (cfg.source / "news.jsonl").write_text("\n".join(json.dumps(r) for r in rows),
                                           encoding="utf-8")
    rag.build(config=cfg)
    return cfg


def test_time_words_dating_an_event_fall_back_to_all_articles_and_say_so(dated):
    q = "How many mobile phones did Gartner say were sold last year?"
    a = rag.ask(q, config=dated, as_of=AS_OF)  # 2025's story answers less confidently
    assert not a.abstained and a.article_id == "phones" and "674 million" in a.text
    assert a.scope == ('nothing published 2025-01-01 to 2025-12-31 (from "last year") '
                       "answers as well; from all articles")
    assert a.filters is None
    none = rag.ask(q, config=dated, as_of="2025-03-01")  # nothing published in 2024
    assert none.article_id == "phones" and none.scope == (
        'nothing published 2024-01-01 to 2024-12-31 (from "last year") answers; from all '
        "articles")
    inside = rag.ask(q, config=dated, as_of="2027-03-01")  # the story is from "last year"
    assert inside.article_id == "phones" and inside.filters.since == "2026-01-01"
    assert inside.scope == 'published 2026-01-01 to 2026-12-31 (from "last year")'
    # explicit filters still hold in the fallback
    b = rag.ask("How many mobile phones were sold last year?", config=dated, as_of=AS_OF,
                filters={"sources": ["Le Monde"]})
    assert b.abstained and b.explain.reason == "filtered_out"


def test_time_words_about_the_articles_stay_a_filter(dated):
    for q in ("What did the news say about mobile phone sales last year?",
              "What was reported last year about phones?"):
        a = rag.ask(q, config=dated, as_of=AS_OF)
        assert a.filters.since == "2025-01-01" and a.filters.until == "2025-12-31", q
        assert all(c.article_id == "ferry" for c in a.citations), q
        assert a.scope == 'published 2025-01-01 to 2025-12-31 (from "last year")'


def test_a_filtered_out_answer_has_no_article_in_scope(dated):
    a = rag.ask("ferry", config=dated, filters={"sources": ["nowhere"]})
    assert a.explain.reason == "filtered_out" and a.explain.articles_in_scope == 0


@pytest.mark.parametrize("question,kind", [
    ("How many mobile phones were sold last year according to Gartner?", False),
    ("When was Firefox 1.0 released in November?", False),
    ("Who won the election last week?", False),
    ("What did the news say last week about Yukos?", True),
    ("Which stories this month reported on the tsunami aid?", True),
    ("What was published in March about BMW?", True),
    ("What's new this week?", True),
    ("Any headlines about the ferry strike yesterday?", True),
])
def test_about_articles(question, kind):
    from rag.answer.dates import about_articles

    assert about_articles(question) is kind
