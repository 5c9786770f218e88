"""rag.open(): one index folder as a handle with explicit methods, the module functions
as before (issue 25, item 3)."""

from __future__ import annotations

import inspect
import json

import pytest

import rag
from rag.types import Article, Passage

TEXT = ("The lighthouse at Cape Ardent was built in 1874 by the engineer Lena Brandt.\n\n"
        "Its lamp can be seen from 30 kilometres away on a clear night.\n")


@pytest.fixture
def opened(cfg):
    (cfg.source / "lighthouse.txt").write_text(TEXT, encoding="utf-8")
    with rag.open(cfg.index_dir, config=cfg) as r:
        yield r


def test_a_handle_builds_asks_searches_and_reads(opened, cfg):
    report = opened.build()
    assert report.wrote and report.added == ("lighthouse.txt",)
    a = opened.ask("Who built the lighthouse at Cape Ardent?", k=2)
    assert "Lena Brandt" in a.text and len(a.citations) <= 2
    assert a == rag.ask("Who built the lighthouse at Cape Ardent?", k=2, config=cfg)
    passages = opened.search("lamp seen kilometres", k=1)
    assert len(passages) == 1 and "30 kilometres" in passages[0].text
    art = opened.article(a.article_id)
    assert art.text[a.start:a.end] == a.text
    with pytest.raises(rag.ArticleNotFound):
        opened.article("missing.txt")
    assert repr(opened) == f"rag.open({str(cfg.index_dir)!r})"


def test_the_config_is_read_once_when_opened(cfg, monkeypatch):
    (cfg.source / "lighthouse.txt").write_text(TEXT, encoding="utf-8")
    monkeypatch.setenv("RAG_INDEX", str(cfg.index_dir))
    r = rag.open(config=cfg)
    r.build()
    monkeypatch.setenv("RAG_K", "1")  # a later change of the environment does not reach it
    assert len(r.ask("When was the lighthouse built?", k=None).citations) >= 1
    assert r.config is not None and r.index_dir == cfg.index_dir


def test_close_lets_go_and_the_next_call_loads_again(opened):
    opened.build()
    first = opened.ask("When was the lighthouse built?")
    opened.close()
    assert opened.ask("When was the lighthouse built?") == first


def test_a_handle_refuses_what_the_module_functions_refuse(opened):
    opened.build()
    with pytest.raises(rag.InvalidQuestion):
        opened.ask("")
    with pytest.raises(rag.InvalidQuestion):
        opened.ask("lighthouse?", k=0)
    with pytest.raises(TypeError):
        opened.ask("lighthouse?", kk=3)  # explicit signatures: a typo is an error


def test_module_functions_have_explicit_signatures():
    for fn in (rag.ask, rag.search, rag.get_article):
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, fn
    with pytest.raises(TypeError):
        rag.ask("question?", kk=3)


def test_passage_and_article_have_to_dict():
    p = Passage(n=1, article_id="a", title="t", source="s", start=0, end=1, text="x",
                score=0.1, dense=0.2)
    assert json.loads(json.dumps(p.to_dict()))["article_id"] == "a"
    art = Article(id="a", title="t", text="x", source="s", pages=(0, 5))
    assert json.loads(json.dumps(art.to_dict()))["pages"] == [0, 5]
