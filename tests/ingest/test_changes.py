"""Loading only what changed (rag.ingest.loaders.load_sources ``changed``, issue 26): a
process that loaded a folder before looks again at the paths a watcher reports, not at
the whole folder, and gets what a walk of the whole folder gets."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest

import rag
from rag.ingest import loaders
from rag.ingest.loaders import SourceCache, load_sources

pytestmark = pytest.mark.quick

WORDS = "harbour ferry council library bridge river market school budget season".split()


def _story(rng: random.Random, n: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(12))
    return f"Story {n}\n\nThe {words} report number {n}.\n"


def _view(loaded) -> tuple:
    """What a build uses of a load, texts aside (unread articles carry none)."""
    arts = [(a.id, a.title, a.content_hash, a.source, a.url, a.published, a.author, a.pages,
             a.file_date, a.date_source) for a in loaded.articles]
    return arts, [(s.path, s.reason) for s in loaded.skipped], loaded.files


def _walked(src: Path):
    return load_sources(src)  # no cache: every file read, the folder walked


def _loader(src: Path, cache_file: Path):
    """load(changed): a load of ``src`` with the cache file ``cache_file``, in this
    process (which keeps what it loaded, as a watching server does)."""
    def load(changed):
        cache = SourceCache(cache_file)
        try:
            return load_sources(src, cache=cache, changed=changed)
        finally:
            cache.close()
    return load


def _change(rng: random.Random, src: Path, n: int) -> list[Path]:
    """One random change to the folder; the paths a watcher would report."""
    files = sorted(p for p in src.rglob("*") if p.is_file())
    folders = sorted(p for p in src.rglob("*") if p.is_dir())
    kind = rng.choice(["add", "add", "edit", "remove", "folder", "drop folder", "rename",
                       "hidden", "other suffix", "records", "same text", "same id"])
    if kind == "add" or (kind in ("edit", "remove", "rename") and not files):
        where = rng.choice([src, *folders])
        path = where / f"n{n}.txt"
        path.write_text(_story(rng, n), encoding="utf-8")
        return [path]
    if kind == "edit":
        path = rng.choice(files)
        path.write_text(_story(rng, n), encoding="utf-8")
        return [path]
    if kind == "remove":
        path = rng.choice(files)
        path.unlink()
        return [path]
    if kind == "rename":
        path = rng.choice(files)
        to = path.with_name(f"r{n}{path.suffix}")
        path.rename(to)
        return [path, to]
    if kind == "folder":
        folder = src / f"d{n}" / "inner"
        folder.mkdir(parents=True)
        for i in range(3):
            (folder / f"f{i}.md").write_text(_story(rng, n * 10 + i), encoding="utf-8")
        (folder / "bad.txt").write_bytes(b"\x00\x01binary")
        return [src / f"d{n}"]  # a copied-in folder reports its top
    if kind == "drop folder" and folders:
        folder = rng.choice(folders)
        shutil.rmtree(folder)
        return [folder]
    if kind == "hidden":
        (src / f".draft{n}.txt").write_text(_story(rng, n), encoding="utf-8")
        return [src / f".draft{n}.txt"]
    if kind == "other suffix":
        (src / f"pic{n}.png").write_bytes(b"\x89PNG")
        return [src / f"pic{n}.png"]
    if kind == "records":
        path = src / f"feed{n}.jsonl"
        meta = {"title": "Tide tables", "url": f"https://example.org/{n}", "author": "Ana",
                "published": "2024-03-01", "source": "Valley Post"}
        path.write_text("\n".join(json.dumps({"id": f"rec{n}-{i}", "text": _story(rng, i),
                                              **(meta if i == 0 else {})})
                                  for i in range(3)) + "\nnot json\n", encoding="utf-8")
        return [path]
    if kind == "same text" and files:
        path = rng.choice(files)
        copy = src / f"copy{n}{path.suffix}"
        shutil.copy(path, copy)
        return [copy]
    if kind == "same id":
        path = src / f"claim{n}.json"
        target = rng.choice(files).relative_to(src).as_posix() if files else "x.txt"
        path.write_text(json.dumps({"id": target, "text": _story(rng, n)}), encoding="utf-8")
        return [path]
    return []


@pytest.mark.parametrize("seed", range(4))
def test_a_load_of_the_changes_equals_a_walk_of_the_folder(tmp_path, seed, monkeypatch):
    """Oracle: after each of 40 random changes, the load that looks only at the reported
    paths (in a process that loaded the folder before) equals a fresh walk that reads
    every file."""
    walks: list[Path] = []
    real_walk = loaders._walk
    monkeypatch.setattr(loaders, "_walk", lambda root: walks.append(root) or real_walk(root))
    rng = random.Random(seed)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for n in range(8):
        (src / ("sub" if n % 2 else ".") / f"a{n}.txt").write_text(_story(rng, n),
                                                                   encoding="utf-8")
    load = _loader(src, tmp_path / "cache.sqlite")
    assert _view(load(None)) == _view(_walked(src))
    for n in range(40):
        changed = _change(rng, src, 100 + n)
        walks.clear()
        got = load(changed)
        assert src not in walks  # only new folders are walked
        assert _view(got) == _view(_walked(src)), (n, changed)
    loaders._WARM.clear()  # a new process: everything from the cache file's rows
    assert _view(load(None)) == _view(_walked(src))


def test_unreported_changes_are_not_seen_until_a_walk(tmp_path, monkeypatch):
    """The contract: ``changed`` is trusted, so a file changed without being reported is
    not read; a load without ``changed`` walks and finds it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("Alpha\n\nThe tide came in.", encoding="utf-8")
    read: list[str] = []
    real = loaders._load_located
    monkeypatch.setattr(loaders, "_load_located",
                        lambda path, rel, *a, **k: read.append(rel) or real(path, rel, *a, **k))
    load = _loader(src, tmp_path / "cache.sqlite")
    load(None)
    (src / "b.txt").write_text("Beta\n\nThe tide went out.", encoding="utf-8")
    (src / "c.txt").write_text("Gamma\n\nThe moon rose.", encoding="utf-8")
    read.clear()
    got = load([src / "b.txt"])
    assert read == ["b.txt"] and [a.id for a in got.articles] == ["a.txt", "b.txt"]
    got = load(None)
    assert read == ["b.txt", "c.txt"] and len(got.articles) == 3


def test_a_process_without_a_load_of_the_folder_walks_it(tmp_path):
    """``changed`` is only a hint: the first load in a process (or one whose cache file
    another process wrote since) walks the folder."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("Alpha\n\nThe tide came in.", encoding="utf-8")
    (src / "b.txt").write_text("Beta\n\nThe tide went out.", encoding="utf-8")
    cache_file = tmp_path / "cache.sqlite"
    cache = SourceCache(cache_file)
    got = load_sources(src, cache=cache, changed=[src / "b.txt"])
    cache.close()
    assert [a.id for a in got.articles] == ["a.txt", "b.txt"]
    # another process's build rewrote the cache file: this process's memory is dropped
    (src / "c.txt").write_text("Gamma\n\nThe moon rose.", encoding="utf-8")
    os.utime(cache_file, ns=(1, 1))
    cache = SourceCache(cache_file)
    got = load_sources(src, cache=cache, changed=[])
    cache.close()
    assert [a.id for a in got.articles] == ["a.txt", "b.txt", "c.txt"]


def test_a_build_with_the_changes_equals_a_fresh_build(cfg, fake_embedder):
    """End to end: builds told what changed publish what a fresh build of the final
    folder publishes (same articles, passages and answers)."""
    src = Path(cfg.source)
    for i in range(4):
        (src / f"a{i}.txt").write_text(f"Story {i}\n\nThe bridge {i} opened in {1990 + i}.",
                                       encoding="utf-8")
    rag.build(config=cfg)
    (src / "a1.txt").write_text("Story 1\n\nThe bridge 1 closed in 2001.", encoding="utf-8")
    (src / "a2.txt").unlink()
    (src / "news").mkdir()
    (src / "news" / "b.txt").write_text("News\n\nA ferry route opened in 2003.",
                                        encoding="utf-8")
    report = rag.build(config=cfg, changed=[src / "a1.txt", src / "a2.txt", src / "news"])
    assert report.updated == ("a1.txt",) and report.removed == ("a2.txt",)
    assert report.added == ("news/b.txt",)
    fresh = cfg.replace(index_dir=Path(cfg.index_dir).parent / "fresh")
    rag.build(config=fresh)
    for q in ("When did bridge 1 close?", "When did the ferry route open?",
              "When did bridge 3 open?"):
        a, b = rag.ask(q, config=cfg), rag.ask(q, config=fresh)
        assert a.to_dict()["citations"] == b.to_dict()["citations"], q
    from rag.app.library import Library

    assert [a["id"] for a in Library(cfg).articles()] == \
        [a["id"] for a in Library(fresh).articles()]


@pytest.mark.parametrize("seed", range(3))
def test_watched_builds_patch_their_load_and_report_what_a_walk_would(cfg, fake_embedder,
                                                                       seed, monkeypatch):
    """Oracle (issue 26): in a process that builds again with each change's paths, the
    load is patched from the last one (``_Settled.patch``) and the diff taken from the
    changed ids alone (``compare_loaded``); after every one of 30 random changes
    (duplicate ids and texts included, which settle everything again) the report and
    the published articles equal what a walk that reads every file gives against the
    same live version."""
    from rag.index import build as builder
    from rag.index.build import compare, indexed_in
    from rag.index.segments import read_layout

    full_diffs: list[int] = []  # builds that compared every article (not the delta)
    monkeypatch.setattr(builder, "compare", lambda *a: full_diffs.append(1) or compare(*a))
    patched: list[bool] = []
    real_patch = loaders._Settled.patch
    monkeypatch.setattr(loaders._Settled, "patch", lambda self, *a: patched.append(
        (got := real_patch(self, *a)) is not None) or got)
    rng = random.Random(seed)
    src = Path(cfg.source)
    (src / "sub").mkdir()
    for n in range(8):
        (src / ("sub" if n % 2 else ".") / f"a{n}.txt").write_text(_story(rng, n),
                                                                   encoding="utf-8")
    out = Path(cfg.index_dir)
    rag.build(config=cfg)
    for n in range(30):
        changed = _change(rng, src, 100 + n)
        indexed = indexed_in(out)
        old = read_layout(out)
        walk = load_sources(src, indexed=indexed)  # every file read, nothing kept
        want = compare(walk.articles, old.hashes())
        try:
            report = rag.build(config=cfg, changed=changed)
        except rag.BuildError:  # nothing readable left: the walk agrees
            assert not walk.articles
            continue
        assert (list(report.added), list(report.updated), list(report.unchanged),
                list(report.removed)) == (want[0], want[1], list(want[2]), want[3]), n
        assert [(s.path, s.reason) for s in report.skipped] == \
            [(s.path, s.reason) for s in walk.skipped], n
        assert read_layout(out).hashes() == {a.id: a.content_hash for a in walk.articles}
        # what the process keeps holds no article texts once a build is done with them
        from rag.index.build import SOURCE_CACHE

        kept = loaders._WARM[os.path.realpath(out / SOURCE_CACHE)].settled
        assert kept is not None and not any(a.text for a in kept.articles), n
    assert sum(patched) >= 10, patched  # most changes took the patch, some settled again
    assert not all(patched)
    assert len(full_diffs) < 30 - 10, full_diffs  # and were diffed from their delta


def test_a_change_of_many_files_settles_the_load_again(cfg, fake_embedder, monkeypatch):
    """Past ``PATCH_MAX`` claims in and out (a folder copied in at once), a watched load
    settles everything again instead of patching one claim at a time; the build still
    reports what a walk would."""
    from rag.index.build import compare, indexed_in
    from rag.index.segments import read_layout

    monkeypatch.setattr(loaders, "PATCH_MAX", 3)
    patched: list[bool] = []
    real_patch = loaders._Settled.patch
    monkeypatch.setattr(loaders._Settled, "patch", lambda self, *a: patched.append(
        (got := real_patch(self, *a)) is not None) or got)
    rng = random.Random(5)
    src, out = Path(cfg.source), Path(cfg.index_dir)
    for n in range(4):
        (src / f"a{n}.txt").write_text(_story(rng, n), encoding="utf-8")
    rag.build(config=cfg)
    (src / "n1.txt").write_text(_story(rng, 11), encoding="utf-8")
    rag.build(config=cfg, changed=[src / "n1.txt"])
    (src / "batch").mkdir()
    for n in range(5):
        (src / "batch" / f"b{n}.txt").write_text(_story(rng, 20 + n), encoding="utf-8")
    walk = load_sources(src, indexed=indexed_in(out))
    want = compare(walk.articles, read_layout(out).hashes())
    report = rag.build(config=cfg, changed=[src / "batch"])
    assert patched == [True, False]  # one file patched; five settled again
    assert (list(report.added), list(report.unchanged)) == (want[0], list(want[2]))
    assert read_layout(out).hashes() == {a.id: a.content_hash for a in walk.articles}
