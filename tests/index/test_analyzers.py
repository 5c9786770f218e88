"""Keyword analyzers per article language (rag/index/keyword.py, issue 27): a German,
Spanish, Romanian or Turkish article's Latin words take that language's stemmer and
stop words, as terms of their own ("de:punkt"); a question is analyzed under every
analyzer the index holds, so it needs no language told; segments written before analyzers existed keep
answering. The fake embedder: these are about the keyword index."""

from __future__ import annotations

import json

import numpy as np

import rag
from rag.answer.extract import sentence_evidence
from rag.answer.search import search
from rag.config import Config
from rag.index.keyword import ENGLISH, LATIN_STEMMERS, keyword_tokens, question_words
from rag.index.segments import open_index, open_version, read_layout

GERMAN = ("Die Verteidigung der Panthers gab in der Saison nur 308 Punkte ab und belegte "
          "damit den sechsten Platz der Liga. Der Verteidiger Kawann Short führte die "
          "Mannschaft mit elf Sacks an und erzwang außerdem drei Fumbles.")
GERMAN_2 = ("Die Stadt Köln liegt am Rhein und ist mit über einer Million Einwohnern die "
            "größte Stadt des Landes Nordrhein-Westfalen. Der Kölner Dom wurde im Jahr "
            "1880 vollendet und ist eine der meistbesuchten Sehenswürdigkeiten.")
ENGLISH_TEXT = ("The Broncos' offense scored 355 points during the regular season, which "
                "ranked nineteenth in the league. Their quarterback Peyton Manning threw "
                "nine touchdown passes and seventeen interceptions that year.")


def _cfg(tmp_path, articles: dict[str, str]) -> Config:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    with open(src / "articles.jsonl", "w", encoding="utf-8") as f:
        for aid, text in articles.items():
            f.write(json.dumps({"id": aid, "title": aid, "text": text},
                               ensure_ascii=False) + "\n")
    return Config(source=src, index_dir=tmp_path / "index", model="fake", selector=False)


def _first(cfg: Config, question: str) -> str | None:
    got = rag.search(question, k=1, config=cfg, retrieval="keyword")
    return got[0].article_id if got else None


def test_latin_languages_have_their_stemmer_stop_words_and_prefix():
    assert keyword_tokens("Punkte", "de") == keyword_tokens("Punkt", "de") == ["de:punkt"]
    assert keyword_tokens("Wie viele Punkte?", "de") == ["de:punkt"]  # question words go
    assert keyword_tokens("equipos", "es") == keyword_tokens("equipo", "es")
    assert keyword_tokens("Câte puncte?", "ro") == ["ro:punct"]
    assert keyword_tokens("Kaç puan?", "tr") == ["tr:puan"]
    # words of other scripts keep their script's terms under any analyzer
    assert keyword_tokens("Москва Panthers", "de") == ["москв", "de:panth"]
    # English is unchanged, and no analyzer's term can equal another's
    assert keyword_tokens("Die Verteidigung der Panthers") == \
        ["die", "verteidigung", "der", "panther"]
    for code in LATIN_STEMMERS:
        assert all(t.startswith(code + ":") for t in keyword_tokens("Panthers 308", code))


def test_a_question_is_asked_under_every_analyzer_of_the_index():
    q = "Wie viele Punkte gab die Verteidigung ab?"
    english = keyword_tokens(q)
    assert question_words(q) == english  # an index of English articles: as before
    words = question_words(q, tuple(LATIN_STEMMERS))
    assert words[:len(english)] == english  # English first, repeats kept (bm25s)
    assert {"de:punkt", "de:verteid"} <= set(words)
    assert {t.split(":")[0] for t in words[len(english):]} == set(LATIN_STEMMERS)


def test_each_article_is_indexed_under_its_languages_analyzer(tmp_path):
    cfg = _cfg(tmp_path, {"de": GERMAN, "de2": GERMAN_2, "en": ENGLISH_TEXT})
    rag.build(config=cfg)
    index = open_index(cfg.index_dir)
    rows = {aid: r for r, aid in enumerate(index.article_ids)}
    assert index.manifest["analyzers"] == {"de": sorted([rows["de"], rows["de2"]])}
    assert index.analyzers == ("de",) and open_version(cfg.index_dir).analyzers == ("de",)
    assert [index.analyzer(rows[a]) for a in ("de", "de2", "en")] == ["de", "de", ENGLISH]
    vocab = set(index.keyword.vocab)
    assert {"de:punkt", "de:verteid", "point", "offens"} <= vocab
    assert "verteidigung" not in vocab and "punkt" not in vocab
    # inflected forms meet (Punkt/Punkte, Verteidiger/Verteidigung), in either language's
    # question: an English question's names are stemmed as the German article's are
    assert _first(cfg, "Wie viele Punkt erlaubte der Verteidiger?") == "de"
    assert _first(cfg, "How many sacks did Kawann Short have for the Panthers?") == "de"
    assert _first(cfg, "Wann wurde der Dom vollendet?") == "de2"
    assert _first(cfg, "How many points did the offense score?") == "en"


def test_a_german_sentence_is_matched_with_the_german_question_terms(tmp_path,
                                                                     fake_embedder):
    cfg = _cfg(tmp_path, {"de": GERMAN, "en": ENGLISH_TEXT})
    rag.build(config=cfg)
    index = open_index(cfg.index_dir)
    q = "Wie viele Punkte gab die Verteidigung der Panthers ab?"
    hits = search(index, q, fake_embedder.embed_queries([q])[0], 2, mode="keyword")
    ev = sentence_evidence(index, q, fake_embedder.embed_queries([q])[0], hits)
    text = index.article(0 if index.article_ids[0] == "de" else 1).text
    by_sentence = {text[a:b]: f for _, c, _, a, b, f in ev
                   if index.article_ids[int(index.chunks[c][0])] == "de"}
    first = next(s for s in by_sentence if s.startswith("Die Verteidigung"))
    # every content term of the question is in its answer: full coverage (0.575 under
    # the English analyzer, where the question's "wie" and "viele" counted as content)
    assert by_sentence[first]["lex"] == 1.0
    assert max(f["lex"] for s, f in by_sentence.items() if s != first) < 0.5


def test_a_segment_written_before_analyzers_keeps_answering(tmp_path, monkeypatch):
    import rag.index.segments as segments

    cfg = _cfg(tmp_path, {"de": GERMAN, "en": ENGLISH_TEXT})
    with monkeypatch.context() as m:  # the terms every segment had before issue 27's
        m.setattr(segments, "analyzer_of", lambda language: ENGLISH)
        rag.build(config=cfg)
    old = open_index(cfg.index_dir)
    assert old.manifest["analyzers"] == {} and "punkt" in old.keyword.vocab
    assert _first(cfg, "Wie viele Punkte gab die Verteidigung ab?") == "de"
    # a new article goes into a new segment under its own analyzer; both answer
    (cfg.source / "more.jsonl").write_text(json.dumps(
        {"id": "de2", "title": "Köln", "text": GERMAN_2}, ensure_ascii=False) + "\n")
    rag.build(config=cfg)
    version = open_version(cfg.index_dir)
    assert [p.index.manifest["analyzers"] for p in version.parts] == [{}, {"de": [0]}]
    assert _first(cfg, "Wie viele Punkte gab die Verteidigung ab?") == "de"
    assert _first(cfg, "Wann wurde der Kölner Dom vollendet?") == "de2"
    # merging re-indexes the old segment's articles under their analyzers
    rag.build(config=cfg, optimize=True)
    assert len(read_layout(cfg.index_dir).segments) == 1
    merged = open_index(cfg.index_dir)
    assert sorted(merged.manifest["analyzers"]["de"]) == sorted(
        r for r, aid in enumerate(merged.article_ids) if aid.startswith("de"))
    assert _first(cfg, "Wie viele Punkte gab die Verteidigung ab?") == "de"
    assert np.isin(["de:punkt"], list(merged.keyword.vocab)).all()
