"""The Corpus contract (rag/answer/corpus.py, issue 25 item 1), run by every layout
the coordinator reads: one index of one segment, one index of several segments with
deleted rows (issue 26), and a sharded one (1 and 3 shards), built from the same
articles with the fake embedder."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

import rag
from rag.answer.filters import make_filters
from rag.answer.pipeline import load_corpus
from rag.answer.shards import ShardedIndex
from rag.config import Config
from rag.embedding.model import get_embedder

ARTICLES = {
    "harbour.txt": "The harbour opened in 1901. Ferries leave for the islands every hour.\n\n"
                   "The fishing fleet sails at dawn and returns by noon.\n",
    "museum.jsonl": json.dumps({"id": "museum", "title": "Museum", "published": "2024-03-02",
                                "text": "The museum holds 4,000 paintings. It was founded by "
                                        "the merchant Ada Voss in 1887."}) + "\n",
    "market.txt": "The market sells fish, bread and cheese. It opens on Saturdays.\n",
    # German articles have their own keyword analyzer (issue 27): each shard reads a
    # question under the analyzers it holds, and the sums must still rank as one index
    # (3 shards: harbour, museum, hafen | market | galerie: one mixed, one English only,
    # one German only)
    "hafen.txt": "Der Hafen von Kiel wurde im Jahr 1865 eröffnet. Die Fähren fahren jede "
                 "Stunde zu den Inseln und wieder zurück.\n\nDie Fischer fahren bei "
                 "Sonnenaufgang hinaus und kehren mittags mit ihrem Fang zurück.\n",
    "galerie.txt": "Das Museum der Stadt besitzt viertausend Gemälde und Zeichnungen. Es "
                    "wurde von dem Kaufmann Otto Berg gegründet, der seine Sammlung der "
                    "Stadt schenkte.\n",
}
QUESTIONS = ["When did the harbour open?", "Who founded the museum?", "What does the market sell?",
             "When does the fishing fleet sail?", "Wann wurde der Hafen von Kiel eröffnet?",
             "Wer gründete das Museum der Stadt?"]


@pytest.fixture(scope="module", params=["local", "segments", "sharded-1", "sharded-3"])
def corpus(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(request.param)
    src = base / "articles"
    src.mkdir()
    for name, text in ARTICLES.items():
        (src / name).write_text(text, encoding="utf-8")
    cfg = Config(source=src, index_dir=base / "index", model="fake", chunk_tokens=40,
                 chunk_overlap=5, abstain_threshold=0.0, selector=False)
    shards = int(request.param.rsplit("-", 1)[1]) if "sharded" in request.param else None
    if request.param == "segments":  # one article per build, one changed and back
        cfg = cfg.replace(merge=False)
        first = ARTICLES["market.txt"]
        (src / "market.txt").write_text("The market closed.\n", encoding="utf-8")
        (src / "museum.jsonl").rename(base / "museum.jsonl")
        rag.build(config=cfg)
        (base / "museum.jsonl").rename(src / "museum.jsonl")
        rag.build(config=cfg)
        (src / "market.txt").write_text(first, encoding="utf-8")
    rag.build(config=cfg, shards=shards)
    c = load_corpus(cfg.index_dir, cfg)
    assert isinstance(c, ShardedIndex)
    if request.param == "segments":
        from rag.index.live import load_index
        version = load_index(cfg.index_dir, cfg)
        assert len(version.parts) == 3 and len(version.parts[0].deleted) == 1
    yield c, cfg
    shutil.rmtree(base, ignore_errors=True)


def _embed(cfg, text, calls):
    def embed():
        calls.append(text)
        return get_embedder(cfg).embed_queries([text])[0]
    return embed


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
def test_retrieve_gives_hits_into_its_view_and_embeds_once(corpus, question, mode):
    c, cfg = corpus
    calls: list[str] = []
    found = c.retrieve(question, _embed(cfg, question, calls), 5, mode)
    assert calls == [question]
    assert found.view is not None and found.in_scope is None and found.hits
    assert found.embed_ms >= 0.0
    for hit in found.hits:
        row, start, end, s_lo, s_hi = (int(x) for x in found.view.chunks[hit.chunk])
        art = found.view.article(row)
        assert c.article(art.id) == art
        assert 0 <= start < end <= len(art.text) and s_lo <= s_hi
        for a, b in found.view.sentences[s_lo:s_hi].tolist():
            assert start <= a < b <= end
    assert len(found.view.sentence_vectors) >= int(found.view.chunks[:, 4].max())
    idf = found.view.idf(["harbour", "museum", "nowordlikethis"])
    assert set(idf) == {"harbour", "museum", "nowordlikethis"}


def test_every_implementation_ranks_as_one_index(corpus, tmp_path):
    """Same (article, start) order, fused and BM25 scores as a single index over the
    articles."""
    c, cfg = corpus
    single = dataclasses.replace(cfg, index_dir=tmp_path / "single")
    rag.build(config=single)
    one = load_corpus(single.index_dir, single)
    for q in QUESTIONS:
        got = [c.retrieve(q, _embed(cfg, q, []), 5, "hybrid"),
               one.retrieve(q, _embed(single, q, []), 5, "hybrid")]
        keys = [[(r.view.article(int(r.view.chunks[h.chunk][0])).id,
                  int(r.view.chunks[h.chunk][1]), round(h.fused, 9), round(h.keyword, 9))
                 for h in r.hits]
                for r in got]
        assert keys[0] == keys[1]


def test_filters_count_articles_in_scope_and_an_empty_scope_finds_nothing(corpus):
    c, cfg = corpus
    calls: list[str] = []
    none = c.retrieve("museum", _embed(cfg, "museum", calls), 5, "hybrid",
                      make_filters({"article_ids": ["nowhere.txt"]}, None))
    assert none.view is None and none.hits == [] and none.in_scope == 0
    assert calls == ["museum"]  # the coordinator embeds first: every folder ranks by it
    calls.clear()
    some = c.retrieve("museum", _embed(cfg, "museum", calls), 5, "hybrid",
                      make_filters({"since": "2024-01-01"}, None))
    assert some.in_scope == 1 and calls == ["museum"]
    assert {some.view.article(int(some.view.chunks[h.chunk][0])).id for h in some.hits} \
        == {"museum"}


def test_article_by_id_and_dates(corpus):
    c, _ = corpus
    assert c.article("market.txt").text.startswith("The market sells")
    assert c.article("missing.txt") is None
    assert c.has_dates() is True
    assert isinstance(c.version, str) and c.version


def test_ask_search_and_get_article_read_any_corpus(corpus):
    _, cfg = corpus
    a = rag.ask("Who founded the museum?", config=cfg)
    assert "Ada Voss" in a.text
    art = rag.get_article(a.article_id, config=cfg)
    assert art.text[a.start:a.end] == a.text
    passages = rag.search("fishing fleet", config=cfg)
    assert passages and passages[0].article_id == "harbour.txt"
    gegr = rag.search("Wer gründete die Sammlung?", config=cfg, retrieval="keyword")
    assert gegr and gegr[0].article_id == "galerie.txt"  # "gegründet", "Sammlung"
    assert np.isfinite([p.score for p in passages]).all()
