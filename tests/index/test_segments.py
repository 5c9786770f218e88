"""Segments (rag/index/segments.py, issue 26): a build writes only what changed, and every
answer equals the answer of an index built fresh over the same articles, after any
sequence of adds, changes and removals, merged or not, in the three retrieval modes and
with filters. The fake embedder: these are about the index, not the model."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.index.copies import BandIndex, band_keys
from rag.index.segments import (MAX_SEGMENTS, SIGNATURES, entry_of, merge_plan, open_version,
                                read_layout, stored_band_keys)
from rag.index.store import SEGMENTS, current_version, read_copies, read_manifest
from rag.types import IndexMismatch
from tests.conftest import DATA, SHARED

MODES = ("hybrid", "dense", "keyword")
FILTERS = (None, {"sources": ["wire"]}, {"since": "2024-01-01"}, {"folders": ["desk"]})


def comparable(answer) -> dict:
    """An answer as JSON, less its timings (the only field allowed to differ)."""
    d = json.loads(json.dumps(answer.to_dict(), ensure_ascii=False))
    d.pop("timings_ms", None)
    return d


def paragraphs() -> list[str]:
    texts = [json.loads(line)["text"] for line in open(DATA / "wiki_sample.jsonl")]
    return [p for t in texts for p in t.split("\n\n") if len(p.split()) > 25]


def article(i: int, pool: list[str], version: int = 0) -> tuple[str, str]:
    """(relative path, file text) of article ``i``: two paragraphs of the sample, a
    source and a date in a JSON record for every third, a folder for every fifth."""
    body = f"{pool[(3 * i + version) % len(pool)]}\n\n{pool[(7 * i + 1) % len(pool)]}"
    if i % 3 == 0:
        record = {"id": f"rec-{i}", "title": f"Story {i}", "text": body,
                  "source": "wire" if i % 2 else "paper",
                  "published": f"202{3 + i % 3}-0{1 + i % 9}-1{i % 10}"}
        return f"rec{i:03d}.json", json.dumps(record)
    folder = "desk/" if i % 5 == 0 else ""
    return f"{folder}a{i:03d}.txt", f"Story {i} v{version}\n\n{body}"


def write(src: Path, i: int, pool: list[str], version: int = 0) -> Path:
    rel, text = article(i, pool, version)
    path = src / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


QUESTIONS = ["When was the company founded?", "Who designed the alternating current motor?",
             "What is the capital?", "How many people live there?", "oil embargo prices",
             "Which river flows through the city?"]


def assert_same_answers(seg_cfg, fresh_cfg, modes=MODES, filters=FILTERS) -> int:
    """Every question, mode and filter: the segmented index answers as the fresh one.
    Returns how many answers quoted something (the comparison is not vacuous)."""
    quoted = 0
    for q in QUESTIONS:
        for mode in modes:
            for f in filters:
                a = rag.ask(q, config=seg_cfg, retrieval=mode, filters=f)
                b = rag.ask(q, config=fresh_cfg, retrieval=mode, filters=f)
                assert comparable(a) == comparable(b), (q, mode, f)
                quoted += bool(a.citations)
    return quoted


@pytest.mark.parametrize("seed, merge", [(1, False), (2, True), (3, True)])
def test_random_updates_answer_as_a_fresh_build(cfg, fake_embedder, tmp_path, seed, merge):
    rnd = random.Random(seed)
    pool = paragraphs()
    seg_cfg = cfg.replace(merge=merge)
    present: dict[int, int] = {}  # article -> its text version
    for i in range(6):
        write(cfg.source, i, pool)
        present[i] = 0
    rag.build(config=seg_cfg)
    for step in range(7):
        for _ in range(rnd.randint(1, 3)):
            op = rnd.choice(["add", "add", "change", "remove"])
            if op == "add" or len(present) < 3:
                i = max(present, default=-1) + 1 + rnd.randint(0, 2)
                write(cfg.source, i, pool)
                present[i] = 0
            elif op == "change":
                i = rnd.choice(sorted(present))
                present[i] += 1
                write(cfg.source, i, pool, present[i])
            else:
                i = rnd.choice(sorted(present))
                (cfg.source / article(i, pool)[0]).unlink()
                del present[i]
        rag.build(config=seg_cfg)
    version = open_version(seg_cfg.index_dir)
    layout = read_layout(seg_cfg.index_dir)
    if not merge:  # one segment per build, the replaced rows deleted, not rewritten
        assert len(version.parts) >= 3 and any(len(p.deleted) for p in version.parts)
    assert sorted(version.where) == sorted(layout.hashes())
    fresh = cfg.replace(index_dir=tmp_path / "fresh")
    rag.build(config=fresh)
    assert current_version(fresh.index_dir)
    assert open_version(fresh.index_dir).n_chunks == version.n_chunks
    assert assert_same_answers(seg_cfg, fresh) > 20
    # searching and reading articles agree too
    for q in QUESTIONS[:3]:
        assert [p.to_dict() for p in rag.search(q, k=8, config=seg_cfg)] == \
            [p.to_dict() for p in rag.search(q, k=8, config=fresh)]
    some = sorted(version.where)[0]
    assert rag.get_article(some, config=seg_cfg) == rag.get_article(some, config=fresh)
    # and --optimize merges everything into one segment, answers unchanged
    report = rag.build(config=seg_cfg, optimize=True)
    assert report.wrote and len(open_version(seg_cfg.index_dir).parts) == 1
    assert assert_same_answers(seg_cfg, fresh, modes=("hybrid",), filters=(None,)) > 3


def test_a_build_writes_a_segment_of_the_change_only(cfg, fake_embedder):
    pool = paragraphs()
    cfg = cfg.replace(merge=False)
    for i in range(12):
        write(cfg.source, i, pool)
    rag.build(config=cfg)
    seg_dir = cfg.index_dir / SEGMENTS
    before = {p.name: sorted(f.stat().st_mtime_ns for f in p.rglob("*") if f.is_file())
              for p in seg_dir.iterdir()}
    new_texts = [write(cfg.source, 41, pool).read_text(), write(cfg.source, 4, pool, 1).read_text()]
    (cfg.source / article(7, pool)[0]).unlink()
    fake_embedder.embedded.clear()
    report = rag.build(config=cfg)
    assert report.added == ("a041.txt",) and report.updated == ("a004.txt",)
    assert report.removed == ("a007.txt",)
    assert fake_embedder.embedded and all(any(t in new for new in new_texts)
                                          for t in fake_embedder.embedded)
    after = {p.name: sorted(f.stat().st_mtime_ns for f in p.rglob("*") if f.is_file())
             for p in seg_dir.iterdir()}
    assert all(after[name] == files for name, files in before.items())  # untouched
    new = [name for name in after if name not in before]
    assert len(new) == 1
    _, manifest = read_manifest(cfg.index_dir)
    entries = {e["name"]: e for e in manifest["segments"]}
    assert entries[new[0]]["articles"] == 2
    old = entries[next(iter(before))]
    assert old["live_articles"] == 10 and old["deleted"].startswith("deleted-")
    deleted = np.load(cfg.index_dir / current_version(cfg.index_dir) / old["deleted"])
    assert deleted.dtype == np.int32 and len(deleted) == 2
    assert manifest["counts"]["articles"] == 12


def test_merge_plan_keeps_the_segment_count_bounded():
    assert merge_plan([]) == [] and merge_plan([{"articles": 5, "live_articles": 5}]) == []
    # four of a size tier merge; a lone segment with a third of its rows deleted is rewritten
    four = [{"articles": 3, "live_articles": 3} for _ in range(4)]
    assert merge_plan(four) == [[0, 1, 2, 3]]
    assert merge_plan([{"articles": 10, "live_articles": 6}]) == [[0]]
    assert merge_plan([{"articles": 10, "live_articles": 8}]) == []
    assert merge_plan([{"articles": 10, "live_articles": 10}] * 2, optimize=True) == [[0, 1]]
    # adding one article per build: the count never passes the cap, and each build
    # rewrites a bounded share of the archive on average
    entries: list[dict] = []
    rewritten = 0
    for _ in range(3000):
        entries.append({"articles": 1, "live_articles": 1})
        for group in merge_plan(entries):
            size = sum(entries[i]["live_articles"] for i in group)
            rewritten += size
            keep = [e for i, e in enumerate(entries) if i not in group]
            entries = keep + [{"articles": size, "live_articles": size}]
        assert len(entries) <= MAX_SEGMENTS
    assert sum(e["live_articles"] for e in entries) == 3000
    assert rewritten / 3000 < 12  # each article rewritten ~log4(3000) ~ 6 times


@pytest.mark.parametrize("stored", ["signatures", "band index", "no signatures"])
def test_near_duplicates_fold_across_segments_as_in_a_fresh_build(cfg, fake_embedder, tmp_path,
                                                                  stored, monkeypatch):
    """The first build's segment proposes its representatives by its stored band keys
    (compared, or binary-searched in the band index a watching process builds at
    warm-up) or, where they cannot be read, by signatures computed again."""
    from rag.index import copies, segments

    pool = paragraphs()
    for i in range(5):
        write(cfg.source, i, pool)
    rag.build(config=cfg)
    searched: list[int] = []
    if stored == "band index":  # every segment is large enough to be indexed
        monkeypatch.setattr(segments, "BAND_INDEX_ROWS", 1)
        real_rows = copies.BandIndex.rows
        monkeypatch.setattr(copies.BandIndex, "rows",
                            lambda self, mine: searched.append(1) or real_rows(self, mine))
        segments.warm_band_keys(cfg.index_dir)
    if stored == "no signatures":
        monkeypatch.setattr("rag.index.segments.stored_band_keys", lambda path: None)
    rel, text = article(1, pool)
    (cfg.source / "copy-of-1.txt").write_text("Reprinted by the Courier\n\n" + text,
                                             encoding="utf-8")
    report = rag.build(config=cfg)
    assert [f.article_id for f in report.folded] == ["copy-of-1.txt"]
    assert bool(searched) == (stored == "band index")
    fresh = cfg.replace(index_dir=tmp_path / "fresh")
    rag.build(config=fresh)
    assert read_copies(cfg.index_dir, read_manifest(cfg.index_dir)[1]) == \
        read_copies(fresh.index_dir, read_manifest(fresh.index_dir)[1])
    assert assert_same_answers(cfg, fresh, modes=("hybrid",), filters=(None,)) > 3


def test_unreferenced_segments_are_collected_and_old_versions_kept_one_build(cfg, fake_embedder):
    pool = paragraphs()
    cfg = cfg.replace(merge=False)
    write(cfg.source, 0, pool)
    first = rag.build(config=cfg)
    write(cfg.source, 1, pool)
    second = rag.build(config=cfg)
    rag.build(config=cfg, optimize=True)
    names = {p.name for p in (cfg.index_dir / SEGMENTS).iterdir()}
    live = {e["name"] for e in read_manifest(cfg.index_dir)[1]["segments"]}
    previous = {e["name"] for e in read_manifest(cfg.index_dir, second.version)[1]["segments"]}
    assert names == live | previous  # the first version's segments live on in the second
    assert not (cfg.index_dir / first.version).exists()
    (cfg.index_dir / SEGMENTS / "s1-1").mkdir()  # an orphan, as a killed build leaves
    (cfg.index_dir / SEGMENTS / ".tmp-s2-2").mkdir()
    write(cfg.source, 2, pool)
    rag.build(config=cfg)
    left = {p.name for p in (cfg.index_dir / SEGMENTS).iterdir()}
    assert "s1-1" not in left and ".tmp-s2-2" not in left


def test_status_and_the_articles_tab_show_segments_and_the_last_merge(cfg, fake_embedder):
    from rag.app.render import render_status
    from rag.app.watch import index_status

    pool = paragraphs()
    cfg = cfg.replace(merge=False)
    for i in range(3):
        write(cfg.source, i, pool)
        rag.build(config=cfg)
    status = index_status(cfg)
    assert status["segments"] == 3 and status["last_merge"] is None
    assert "3 segments" in render_status(status)
    rag.build(config=cfg, optimize=True)
    status = index_status(cfg)
    assert status["segments"] == 1 and status["last_merge"]["merged_segments"] == 3
    assert "1 segment (last merge " in render_status(status)


def test_the_build_command_optimizes(cfg, fake_embedder, monkeypatch, capsys):
    from rag.cli import build_main

    pool = paragraphs()
    monkeypatch.setenv("RAG_MODEL", "fake")
    monkeypatch.setenv("RAG_MERGE", "0")
    for i in range(3):
        write(cfg.source, i, pool)
        assert build_main(["--source", str(cfg.source), "--index", str(cfg.index_dir),
                           "--quiet"]) == 0
    assert len(read_manifest(cfg.index_dir)[1]["segments"]) == 3
    assert build_main(["--source", str(cfg.source), "--index", str(cfg.index_dir),
                       "--optimize", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["wrote"]
    assert len(read_manifest(cfg.index_dir)[1]["segments"]) == 1


def test_sharded_index_of_segments_answers_as_a_fresh_single_index(cfg, fake_embedder,
                                                                 tmp_path):
    pool = paragraphs()
    sharded = cfg.replace(merge=False)
    for i in range(9):
        write(cfg.source, i, pool)
    rag.build(config=sharded, shards=3)
    write(cfg.source, 20, pool)
    write(cfg.source, 2, pool, 1)
    (cfg.source / article(4, pool)[0]).unlink()
    rag.build(config=sharded)
    fresh = cfg.replace(index_dir=tmp_path / "fresh")
    rag.build(config=fresh)
    assert assert_same_answers(sharded, fresh) > 20
    shutil.rmtree(tmp_path / "fresh")


@pytest.mark.skipif(not (SHARED / "corpus" / "news" / "articles.jsonl").is_file(),
                    reason="needs ../shared/corpus/news")
def test_incremental_folding_finds_the_copies_find_copies_finds_on_the_bbc_corpus():
    """The build folds copies incrementally (rag.index.build.copies_stage): on the 2,225
    BBC stories, in one pass, in five arrivals in corpus order, and after removing
    representatives, it finds the groups the whole-corpus find_copies finds."""
    from rag.config import Config
    from rag.index.build import copies_stage
    from rag.index.copies import find_copies
    from rag.ingest.loaders import make_article

    rows = [json.loads(line) for line in open(SHARED / "corpus" / "news" / "articles.jsonl")]
    arts = [make_article(f"n{i:04d}", r.get("title", ""), r["text"], "bbc")
            for i, r in enumerate(rows) if r.get("text")]
    cfg = Config(model="fake")
    want = find_copies(arts)
    assert len(want) > 100

    def reps(found):
        return {k: v[0] for k, v in found.items()}

    whole, _ = copies_stage(arts, cfg)
    assert reps(whole) == reps(want)
    prior, cuts = None, [0, 900, 1500, 2000, 2200, len(arts)]
    for lo, hi in zip(cuts, cuts[1:]):
        prior, _ = copies_stage(arts[:hi], cfg, (), {a.id for a in arts[lo:hi]}, prior)
    assert reps(prior) == reps(want)
    gone = {rep for rep, _ in list(want.values())[:20]}
    left = [a for a in arts if a.id not in gone]
    after, _ = copies_stage(left, cfg, (), set(), prior)
    assert reps(after) == reps(find_copies(left))


def test_copy_groups_are_written_as_changes_and_collected(cfg, fake_embedder, monkeypatch):
    """A version lists copy-group files; a build writes only the groups it changed (none
    for an article that is nobody's copy), a long chain is written whole again, files no
    kept version lists are removed, and a damaged one is refused with the rebuild
    hint."""
    from rag.index import store

    pool = paragraphs()
    for i in range(4):
        write(cfg.source, i, pool)
    rel, text = article(1, pool)
    (cfg.source / "copy-a.txt").write_text("Reprinted\n\n" + text, encoding="utf-8")
    rag.build(config=cfg)
    first = read_manifest(cfg.index_dir)[1]["copy_files"]
    assert len(first) == 1
    groups, sims = read_copies(cfg.index_dir, read_manifest(cfg.index_dir)[1])
    assert groups == [[rel, "copy-a.txt"]] and set(sims) == {"copy-a.txt"}
    write(cfg.source, 4, pool)  # a new story, nobody's copy: no copy file written
    rag.build(config=cfg)
    assert read_manifest(cfg.index_dir)[1]["copy_files"] == first
    (cfg.source / "copy-b.txt").write_text("Also reprinted\n\n" + text, encoding="utf-8")
    rag.build(config=cfg)
    chain = read_manifest(cfg.index_dir)[1]["copy_files"]
    assert chain[:1] == first and len(chain) == 2
    change = json.loads((cfg.index_dir / store.COPIES / chain[1]).read_text())
    assert change["groups"] == {rel: [rel, "copy-a.txt", "copy-b.txt"]}
    (cfg.source / "copy-a.txt").unlink()
    rag.build(config=cfg)
    assert read_copies(cfg.index_dir, read_manifest(cfg.index_dir)[1])[0] == \
        [[rel, "copy-b.txt"]]
    monkeypatch.setattr(store, "COPY_CHAIN", 3)
    (cfg.source / "copy-c.txt").write_text("Third\n\n" + text, encoding="utf-8")
    rag.build(config=cfg)  # the chain would pass 3: one file of every group
    assert len(read_manifest(cfg.index_dir)[1]["copy_files"]) == 1
    stray = cfg.index_dir / store.COPIES / "c0000000000000000.json"
    stray.write_text("{}")
    rag.build(config=cfg, rebuild=False)  # nothing changed: garbage is still collected
    assert not stray.exists()
    kept = {n for v in cfg.index_dir.glob("v*")
            for n in json.loads((v / "manifest.json").read_text()).get("copy_files", ())}
    assert {f.name for f in (cfg.index_dir / store.COPIES).iterdir()} == kept
    live = read_manifest(cfg.index_dir)[1]["copy_files"][0]
    (cfg.index_dir / store.COPIES / live).write_text('{"groups": {}}')
    store._copy_files.clear()
    from rag.index.live import forget_index
    forget_index(cfg.index_dir)
    with pytest.raises(IndexMismatch, match="rebuild"):
        rag.ask("anything at all", config=cfg)


@pytest.mark.quick
def test_a_layouts_live_maps_equal_a_row_by_row_reading(cfg, fake_embedder):
    """Oracle for Layout.live/hashes/origins (built with C-level set and dict operations):
    after random adds, edits and removals (deleted rows in several segments, no merging),
    they equal reading every segment's rows and skipping the deleted ones."""
    rng = random.Random(7)
    cfg = cfg.replace(merge=False)
    src = Path(cfg.source)
    for i in range(12):
        (src / f"a{i:02d}.txt").write_text(f"Story {i}\n\nThe pier {i} opened in {1900 + i}.",
                                           encoding="utf-8")
    rag.build(config=cfg)
    for step in range(6):
        files = sorted(src.glob("*.txt"))
        for path in rng.sample(files, 2):
            path.write_text(f"Story\n\nThe pier was rebuilt in {2000 + step}, {path.name}.",
                            encoding="utf-8")
        rng.choice(files).unlink() if len(files) > 4 else None
        (src / f"n{step}.txt").write_text(f"New\n\nA ferry {step} sailed.", encoding="utf-8")
        rag.build(config=cfg)
        layout = read_layout(cfg.index_dir)
        live, hashes, origins = {}, {}, {}
        for p, (seg, dead) in enumerate(zip(layout.segments, layout.deleted)):
            for row, (aid, digest) in enumerate(seg["articles"].items()):
                if row not in set(dead.tolist()):
                    live[aid], hashes[aid] = (p, row), digest
                    origins[aid] = seg["origins"][aid]
        assert any(len(d) for d in layout.deleted)
        assert layout.live() == live and layout.hashes() == hashes
        assert layout.origins() == origins
        assert sorted(live) == sorted(p.name for p in src.glob("*.txt"))
        # the point lookups a watched build uses instead, for live and gone ids
        for aid in [*live, *(a for seg in layout.segments for a in seg["articles"]), "nope"]:
            assert layout.locate(aid) == live.get(aid)
            assert layout.hash_of(aid) == hashes.get(aid)
            assert layout.origin_of(aid) == origins.get(aid)
        assert layout.n_live == len(live)
        # each entry, made from the previous version's entry, equals one counted afresh
        for entry, seg, dead in zip(layout.manifest["segments"], layout.segments,
                                    layout.deleted):
            assert {k: v for k, v in entry.items() if k != "deleted"} == \
                entry_of(seg["segment"], seg, dead)


def test_stored_band_keys_are_computed_once_and_again_when_the_file_changes(tmp_path):
    """A watching process keys a segment's signatures once (segments are immutable);
    a file replaced under the same name is keyed again, and a missing or damaged one
    gives None (the build computes the signatures instead)."""
    seg = tmp_path / "seg"
    seg.mkdir()
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 2**32, size=(7, 128), dtype=np.uint32)
    np.save(seg / SIGNATURES, sigs)
    got = stored_band_keys(seg)
    assert np.array_equal(got, band_keys(sigs)) and got.shape == (7, 64)
    assert stored_band_keys(seg) is got  # cached
    other = sigs[:3].copy()
    np.save(seg / SIGNATURES, other)
    assert np.array_equal(stored_band_keys(seg), band_keys(other))
    (seg / SIGNATURES).write_bytes(b"not a numpy file")
    assert stored_band_keys(seg) is None
    (seg / SIGNATURES).unlink()
    assert stored_band_keys(seg) is None
    # a collected segment's keys go when another segment is keyed
    from rag.index import segments
    np.save(seg / SIGNATURES, sigs)
    stored_band_keys(seg)
    shutil.rmtree(seg)
    other_seg = tmp_path / "other"
    other_seg.mkdir()
    np.save(other_seg / SIGNATURES, sigs)
    stored_band_keys(other_seg)
    assert str(seg / SIGNATURES) not in segments._band_keys
    assert str(other_seg / SIGNATURES) in segments._band_keys


@pytest.mark.quick
def test_a_band_index_finds_the_rows_a_comparison_finds():
    """Oracle for BandIndex (binary search per band): the rows sharing a band key with a
    query are those of the comparison over every key, for queries that share none, a
    few or many keys (repeated keys in a band included)."""
    rng = np.random.default_rng(3)
    for n, spread in ((1, 5), (50, 3), (3000, 40), (3000, 2**62)):
        keys = rng.integers(0, spread, size=(n, 64), dtype=np.uint64)
        index = BandIndex(keys)
        queries = [keys[rng.integers(0, n)].copy() for _ in range(5)]
        queries += [rng.integers(0, spread, size=64, dtype=np.uint64) for _ in range(5)]
        queries[0][::2] = np.uint64(2**63 + 1)  # half its bands match nothing
        for q in queries:
            assert index.rows(q) == np.flatnonzero((keys == q).any(axis=1)).tolist()
