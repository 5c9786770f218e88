"""A sharded index (rag.index.shards, rag.answer.shards) answers exactly as one index over
the same articles: text, offsets, citations, scores and explanations, in the three
retrieval modes, with filters; BM25 statistics summed over shards when asked are what
makes it so (shard-local statistics break it); incremental builds write only the shards
that changed. No Ray here: the
shards are read in this process (tests/distributed/test_distributed.py puts them behind
Ray Serve)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.config import Config
from rag.index.keyword import build_keyword_writer, keyword_tokens, load_keyword_index
from rag.index.shards import (CLUSTER, build_sharded, is_cluster, read_cluster, shard_name,
                              shard_of)
from rag.types import BuildError
from tests.conftest import DATA, SEEDS, SHARED

MODES = ("hybrid", "dense", "keyword")


def wiki_texts() -> list[str]:
    return [json.loads(line)["text"] for line in open(DATA / "wiki_sample.jsonl")]


def comparable(answer) -> dict:
    """An answer as JSON, less its timings (the only field allowed to differ)."""
    d = json.loads(json.dumps(answer.to_dict(), ensure_ascii=False))
    d.pop("timings_ms", None)
    return d


# -- the partition and the statistics --------------------------------------------

def test_an_article_always_lands_in_the_same_shard():
    assert [shard_of(x, 4) for x in ("a.txt", "news.jsonl#1", "ünïcode")] == \
        [shard_of(x, 4) for x in ("a.txt", "news.jsonl#1", "ünïcode")]
    # sha256, not Python's salted hash: the same in every process and on every machine
    assert shard_of("a.txt", 1000) == int.from_bytes(
        __import__("hashlib").sha256(b"a.txt").digest()[:8], "big") % 1000
    counts = np.bincount([shard_of(f"doc-{i}", 4) for i in range(4000)], minlength=4)
    assert counts.min() > 900  # balanced


def test_a_shard_scores_bm25_as_the_whole_corpus_does_only_with_summed_statistics(tmp_path):
    texts = [p for t in wiki_texts() for p in t.split("\n\n")]
    a, b = texts[::2], texts[1::2]
    for name, part in (("all", texts), ("a", a), ("b", b)):
        build_keyword_writer(part)(tmp_path / name)
    whole, sa, sb = (load_keyword_index(tmp_path / n) for n in ("all", "a", "b"))
    for q in ("oil prices embargo", "Tesla alternating current", "parliament election",
              "chloroplast photosynthesis membrane"):
        words = keyword_tokens(q)
        total = sa.stats(words).plus(sb.stats(words))
        assert total == whole.stats(words)
        full = whole.scores(words, whole.stats(words))
        got = sa.scores(words, total)
        assert got.any() and np.array_equal(full[0::2], got)  # bit for bit
        assert not np.array_equal(full[0::2], sa.scores(words, sa.stats(words)))


# -- answers: the real model on real articles ------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One index and a 3-shard index of the same 15 real articles (real model)."""
    base = tmp_path_factory.mktemp("shards")
    src = base / "articles"
    src.mkdir()
    shutil.copy(DATA / "wiki_sample.jsonl", src / "wiki.jsonl")
    shutil.copytree(SEEDS, src / "seeds")
    single = Config(source=src, index_dir=base / "single")
    sharded = single.replace(index_dir=base / "sharded")
    rag.build(config=single)
    report = rag.build(config=sharded, shards=3)
    assert report.wrote and report.articles == 15 and is_cluster(base / "sharded")
    return single, sharded


def questions() -> list[str]:
    wiki = [json.loads(line)["question"] for line in open(DATA / "wiki_sample_questions.jsonl")]
    seed = [json.loads(line)["question"] for line in open(DATA / "seed_questions.jsonl")]
    return wiki + seed


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.model
def test_sharded_answers_equal_the_single_index_answers(built, mode):
    single, sharded = built
    qs = questions()
    assert len(qs) == 85
    differ = [q for q in qs if comparable(rag.ask(q, config=single, retrieval=mode))
              != comparable(rag.ask(q, config=sharded, retrieval=mode))]
    assert differ == []
    # the test can fail: answers do carry citations and scores
    some = rag.ask(qs[0], config=sharded, retrieval=mode)
    assert some.citations and some.score > 0


@pytest.mark.model
def test_sharded_search_get_article_and_filters_equal_the_single_index(built):
    single, sharded = built
    for q in ("Who founded DeepSeek?", "oil crisis embargo 1973"):
        a = [p.to_dict() if hasattr(p, "to_dict") else p.__dict__
             for p in rag.search(q, k=8, config=single)]
        b = [p.to_dict() if hasattr(p, "to_dict") else p.__dict__
             for p in rag.search(q, k=8, config=sharded)]
        assert a == b and len(a) == 8
    art = rag.get_article("wiki-Kenya", config=sharded)
    assert art == rag.get_article("wiki-Kenya", config=single)
    with pytest.raises(rag.ArticleNotFound):
        rag.get_article("../../etc/passwd", config=sharded)
    for filters in ({"article_ids": ["wiki-Kenya", "wiki-Nikola_Tesla"]},
                    {"sources": ["nothing-matches-this"]},
                    {"folders": ["seeds"]}):
        for q in ("What is the capital?", "How much did it cost to train R1?"):
            assert comparable(rag.ask(q, config=single, filters=filters)) == \
                comparable(rag.ask(q, config=sharded, filters=filters))


@pytest.mark.model
def test_shard_local_bm25_statistics_make_the_equality_test_fail(built, monkeypatch):
    from rag.answer.pipeline import forget_corpus
    from rag.answer.shards import ShardedIndex

    single, sharded = built
    wrong = sharded
    forget_corpus(sharded.index_dir)
    monkeypatch.setattr(ShardedIndex, "local_stats", True)
    differ = [q for q in questions() for mode in ("keyword", "hybrid")
              if comparable(rag.ask(q, config=single, retrieval=mode))
              != comparable(rag.ask(q, config=wrong, retrieval=mode))]
    assert len(differ) > 10


# -- building -------------------------------------------------------------------

def write_articles(src: Path, n: int = 12) -> None:
    words = ["river", "bridge", "council", "budget", "school", "harbour", "museum", "rail"]
    for i in range(n):
        w = words[i % len(words)]
        (src / f"a{i:02d}.txt").write_text(
            f"Story {i} about the {w}\n\nThe {w} of town {i} opened in {1990 + i}. "
            f"Officials said the {w} cost {i + 2} million pounds. Residents of town {i} "
            f"welcomed the {w} and its {words[(i + 3) % len(words)]}.", encoding="utf-8")


def shard_manifest(index_dir: Path, i: int) -> dict:
    sdir = index_dir / shard_name(i)
    version = (sdir / "CURRENT").read_text().strip()
    return json.loads((sdir / version / "manifest.json").read_text())


def test_incremental_builds_re_embed_only_the_changed_article(cfg, fake_embedder):
    write_articles(cfg.source)
    first = build_sharded(config=cfg, shards=3)
    assert first.wrote and len(first.added) == 12
    before = [shard_manifest(cfg.index_dir, i) for i in range(3)]
    assert sum(m["counts"]["articles"] for m in before) == 12
    assert sum(m["counts"]["chunks"] for m in before) == first.chunks

    again = build_sharded(config=cfg, shards=3)
    assert not again.wrote and again.version == first.version  # nothing changed

    fake_embedder.embedded.clear()
    (cfg.source / "a05.txt").write_text("Story 5 was rewritten\n\nThe tram of town 5 "
                                        "opened in 2001 and cost 9 million.", encoding="utf-8")
    third = build_sharded(config=cfg, shards=3)
    assert third.updated == ("a05.txt",) and len(third.unchanged) == 11
    assert fake_embedder.embedded and all("town 5" in t or "Story 5" in t
                                          for t in fake_embedder.embedded)
    after = [shard_manifest(cfg.index_dir, i) for i in range(3)]
    home = shard_of("a05.txt", 3)
    for i in range(3):  # only the changed article's shard is written: a new segment
        assert (after[i]["version"] == before[i]["version"]) == (i != home)
    old_segments = {e["name"] for e in before[home]["segments"]}
    new = [e for e in after[home]["segments"] if e["name"] not in old_segments]
    assert len(new) == 1 and new[0]["articles"] == 1
    # and the result is the one a single index of the same folder answers with
    single = cfg.replace(index_dir=cfg.index_dir.parent / "single")
    rag.build(config=single)
    for q in ("What did the tram cost?", "When did the museum open?", "river bridge"):
        for mode in MODES:
            assert comparable(rag.ask(q, config=cfg, retrieval=mode)) == \
                comparable(rag.ask(q, config=single, retrieval=mode))


def test_cluster_manifest_is_published_last_and_the_previous_one_kept(cfg, fake_embedder):
    write_articles(cfg.source, 6)
    first = rag.build(config=cfg, shards=2)
    (cfg.source / "a00.txt").write_text("Story 0 anew\n\nThe pier opened.", encoding="utf-8")
    second = rag.build(config=cfg)  # an existing sharded index keeps its shard count
    assert second.version != first.version
    assert (cfg.index_dir / CLUSTER).read_text() == second.version
    assert (cfg.index_dir / first.version).is_file()  # for answers still reading it
    name, manifest = read_cluster(cfg.index_dir)
    assert name == second.version and manifest["shards"] == 2
    for entry in manifest["shard_versions"]:  # every shard version it names exists
        assert (cfg.index_dir / entry["dir"] / entry["version"] / "manifest.json").is_file()


def test_bad_shard_requests_are_clear_errors(cfg, fake_embedder, tmp_path):
    write_articles(cfg.source, 4)
    build_sharded(config=cfg, shards=2)
    with pytest.raises(BuildError, match="has 2 shards, not 3.*--rebuild"):
        build_sharded(config=cfg, shards=3)
    assert build_sharded(config=cfg, shards=3, rebuild=True).wrote
    for bad in (0, -1, True, "2", 5000):
        with pytest.raises(BuildError, match="shards must be"):
            build_sharded(config=cfg, shards=bad)
    single = cfg.replace(index_dir=tmp_path / "single")
    rag.build(config=single)
    with pytest.raises(BuildError, match="single .unsharded. index"):
        build_sharded(config=single, shards=2)
    with pytest.raises(BuildError, match="unknown engine"):
        rag.build(config=cfg, engine="spark")


def test_more_shards_than_articles_leaves_valid_empty_shards(cfg, fake_embedder):
    write_articles(cfg.source, 2)
    report = build_sharded(config=cfg, shards=6)
    assert report.articles == 2
    counts = [shard_manifest(cfg.index_dir, i)["counts"]["articles"] for i in range(6)]
    assert sum(counts) == 2 and counts.count(0) >= 4
    answer = rag.ask("When did the river open?", config=cfg)
    assert answer.citations and answer.citations[0].article_id in ("a00.txt", "a01.txt")


def test_the_build_command_builds_shards(cfg, fake_embedder, monkeypatch, capsys):
    from rag.cli import build_main

    write_articles(cfg.source, 5)
    monkeypatch.setenv("RAG_MODEL", "fake")
    monkeypatch.setenv("RAG_SELECTOR", "0")
    assert build_main(["--source", str(cfg.source), "--index", str(cfg.index_dir),
                       "--shards", "2", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"].startswith("cluster-") and report["articles"] == 5
    assert build_main(["--source", str(cfg.source), "--index", str(cfg.index_dir),
                       "--shards", "3", "--quiet"]) == 1
    assert "has 2 shards, not 3" in capsys.readouterr().err


@pytest.mark.model
def test_the_web_api_reads_a_sharded_folder_and_says_what_it_cannot_do(built):
    from fastapi.testclient import TestClient

    from rag.app.web import create_app
    from rag.index.build import build as one_index_build

    single, sharded = built
    client = TestClient(create_app(sharded.replace(rate_limit=0), ui=False),
                        base_url="http://127.0.0.1", client=("127.0.0.1", 50000))
    q = "How much did it cost to train R1?"
    got = client.post("/api/ask", json={"question": q})
    assert got.status_code == 200
    want = json.loads(json.dumps(rag.ask(q, config=single).to_dict()))
    got, want = got.json(), want
    got.pop("timings_ms"), want.pop("timings_ms")
    assert got == want
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["index"].startswith("cluster-")
    assert client.get("/api/status").json()["shards"] == 3
    art = client.get("/api/articles/wiki-Kenya", params={"start": 0, "end": 20}).json()
    assert art["text"] == rag.get_article("wiki-Kenya", config=single).text[:20]
    listing = client.get("/api/articles")
    assert listing.status_code == 409 and listing.json()["code"] == "sharded_index"
    with pytest.raises(BuildError, match="holds a sharded index"):
        one_index_build(config=sharded)  # the app's own builder never writes beside shards


@pytest.mark.parametrize("web", [{"urls": ["http://127.0.0.1:9/page"]},
                                 {"feeds": ["http://127.0.0.1:9/feed.xml"]}])
def test_a_sharded_build_refuses_pages_and_feeds_instead_of_dropping_them(cfg, fake_embedder,
                                                                          web):
    """Issue 25, item 2: rag.build(shards=N, urls=...) dropped the urls silently."""
    (cfg.source / "a.txt").write_text("Alpha text here.", encoding="utf-8")
    with pytest.raises(BuildError, match="not supported with a sharded index"):
        rag.build(config=cfg, shards=2, **web)
    assert not is_cluster(cfg.index_dir)  # nothing was built
    report = rag.build(config=cfg, shards=2, poll=False)  # the fetch options alone are fine
    assert report.wrote and is_cluster(cfg.index_dir)


def test_a_sharded_build_reports_folded_copies_and_skip_reasons_as_one_index(cfg,
                                                                           fake_embedder):
    """Issue 25, item 2: the sharded builder runs the single builder's stages (it dropped
    ``folded`` and the reasons nothing was readable)."""
    story = " ".join(f"On day {i} the council of town {i * 7} debated item {i * 13} about "
                     f"schools, roads and harbour repairs costing {i * 1000} pounds."
                     for i in range(30))
    (cfg.source / "one.txt").write_text(story, encoding="utf-8")
    (cfg.source / "two.txt").write_text(story + " Reported by the wire.", encoding="utf-8")
    single = rag.build(config=cfg.replace(index_dir=cfg.index_dir.parent / "single"))
    sharded = rag.build(config=cfg, shards=2)
    assert single.folded and sharded.folded == single.folded
    empty = cfg.source.parent / "empty"
    empty.mkdir()
    (empty / "blank.txt").write_text("   ", encoding="utf-8")
    for shards in (None, 2):
        out = cfg.index_dir.parent / f"nothing-{shards}"
        with pytest.raises(BuildError, match=r"no readable article in .*blank\.txt"):
            rag.build(empty, out, shards=shards, config=cfg)
