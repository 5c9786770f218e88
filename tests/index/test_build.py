"""Incremental, atomic builds with the fake embedder (no model needed)."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

import rag
from rag.index import store
from rag.index.segments import open_index
from rag.types import BuildError, IndexMismatch

ART_A = ("Solar power in Spain\n\nSpain installed record solar capacity in 2023. "
         "The grid operator said panels now supply a fifth of demand.\n\n"
         "Prices fell during sunny afternoons.")
ART_B = ("Chess world championship\n\nThe match in Singapore ended after fourteen games. "
         "Ding Liren lost the final game to Gukesh.")
ART_C = ("Volcano erupts in Iceland\n\nLava reached the town of Grindavik on Sunday. "
         "Residents had been evacuated weeks before.")


def write(cfg, name, text):
    p = cfg.source / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_build_then_unchanged_does_not_write(cfg, fake_embedder):
    write(cfg, "a.txt", ART_A)
    write(cfg, "sub/b.md", ART_B)
    r1 = rag.build(config=cfg)
    assert r1.wrote and sorted(r1.added) == ["a.txt", "sub/b.md"] and r1.chunks > 0
    fake_embedder.embedded.clear()
    r2 = rag.build(config=cfg)
    assert not r2.wrote and sorted(r2.unchanged) == ["a.txt", "sub/b.md"]
    assert fake_embedder.embedded == [] and r2.version == r1.version


def test_changing_one_article_embeds_only_it(cfg, fake_embedder):
    write(cfg, "a.txt", ART_A)
    write(cfg, "b.txt", ART_B)
    rag.build(config=cfg)
    before = open_index(cfg.index_dir)
    b_vectors = before.chunk_vectors[before.chunks[:, 0] == before.article_ids.index("b.txt")]
    fake_embedder.embedded.clear()
    write(cfg, "a.txt", ART_A + "\n\nA new closing paragraph about batteries.")
    r = rag.build(config=cfg)
    assert r.updated == ("a.txt",) and r.unchanged == ("b.txt",)
    assert fake_embedder.embedded and all("Chess" not in t and "Ding" not in t
                                          for t in fake_embedder.embedded)
    rag.build(config=cfg, optimize=True)  # one segment again, to read as one index
    after = open_index(cfg.index_dir)
    b_row = after.article_ids.index("b.txt")
    assert (after.chunk_vectors[after.chunks[:, 0] == b_row] == b_vectors).all()
    assert "batteries" in after.article(after.article_ids.index("a.txt")).text


def test_removed_article_and_its_chunks_are_gone(cfg, fake_embedder):
    write(cfg, "a.txt", ART_A)
    gone = write(cfg, "c.txt", ART_C)
    rag.build(config=cfg)
    gone.unlink()
    r = rag.build(config=cfg)
    assert r.removed == ("c.txt",)
    idx = open_index(cfg.index_dir)
    assert idx.article_ids == ["a.txt"]
    assert set(idx.chunks[:, 0].tolist()) == {0}
    ans = rag.ask("When did lava reach Grindavik?", config=cfg)
    assert all(c.article_id == "a.txt" for c in ans.citations)


def test_reused_rows_keep_offsets_and_sentences_consistent(cfg, fake_embedder):
    write(cfg, "a.txt", ART_A)
    write(cfg, "b.txt", ART_B)
    write(cfg, "c.txt", ART_C)
    rag.build(config=cfg)
    write(cfg, "a.txt", ART_A.replace("record", "new record"))
    (cfg.source / "b.txt").unlink()
    rag.build(config=cfg, optimize=True)
    idx = open_index(cfg.index_dir)
    for row, s, e, lo, hi in idx.chunks.tolist():
        text = idx.article(row).text
        assert 0 <= s < e <= len(text)
        for a, b in idx.sentences[lo:hi].tolist():
            assert s <= a < b <= e and text[a:b].strip() == text[a:b]


def test_skipped_files_are_reported_not_fatal(cfg, fake_embedder):
    write(cfg, "a.txt", ART_A)
    (cfg.source / "binary.txt").write_bytes(b"\x00\x01\x02\xff" * 100)
    (cfg.source / "empty.md").write_text("   \n")
    r = rag.build(config=cfg)
    reasons = {s.path: s.reason for s in r.skipped}
    assert set(reasons) == {"binary.txt", "empty.md"}
    assert "binary" in reasons["binary.txt"] and "empty" in reasons["empty.md"]
    assert r.added == ("a.txt",)


def test_missing_folder_and_no_readable_article(cfg, tmp_path):
    with pytest.raises(BuildError, match="not found"):
        rag.build(source=tmp_path / "nope", config=cfg)
    (cfg.source / "x.txt").write_bytes(b"\x00\x00binary")
    with pytest.raises(BuildError, match="no readable article"):
        rag.build(config=cfg)


def test_index_from_other_settings_or_model_is_refused(cfg, fake_embedder):
    write(cfg, "a.txt", ART_A)
    rag.build(config=cfg)
    with pytest.raises(IndexMismatch, match="--rebuild"):
        rag.ask("solar", config=cfg.replace(chunk_tokens=50))
    # a manifest from another model
    path, manifest = store.read_manifest(cfg.index_dir)
    manifest["model"] = "another-model"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexMismatch, match="another-model.*--rebuild"):
        rag.ask("solar", config=cfg.replace(k=3))
    # a build with settings that differ does a full rebuild instead of failing
    r = rag.build(config=cfg.replace(chunk_tokens=50))
    assert r.wrote and r.added == ("a.txt",)


def test_failed_build_leaves_the_old_index_answering(cfg, fake_embedder, monkeypatch):
    write(cfg, "a.txt", ART_A)
    rag.build(config=cfg)
    before = rag.ask("How much solar capacity did Spain install?", config=cfg)
    live = store.current_version(cfg.index_dir)
    write(cfg, "b.txt", ART_B)

    def explode(*a, **k):
        raise OSError(28, "No space left on device")

    import faiss
    monkeypatch.setattr(faiss, "write_index", explode)
    with pytest.raises(OSError):
        rag.build(config=cfg)
    monkeypatch.undo()
    assert store.current_version(cfg.index_dir) == live
    assert not list(cfg.index_dir.glob(".tmp-*"))
    assert rag.ask("How much solar capacity did Spain install?", config=cfg) == before
    r = rag.build(config=cfg)
    assert r.added == ("b.txt",) and r.unchanged == ("a.txt",)


def test_old_versions_are_collected(cfg, fake_embedder):
    for i in range(4):
        write(cfg, "a.txt", ART_A + f"\n\nEdition {i}.")
        rag.build(config=cfg)
    versions = [p for p in cfg.index_dir.iterdir() if p.name.startswith("v")]
    assert len(versions) == 2
    assert store.current_version(cfg.index_dir) in {p.name for p in versions}


def run_cli(module, *args, env_extra=None, cwd=None):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


def test_build_cli_errors_are_one_line_and_nonzero(tmp_path):
    r = run_cli("rag.build", "--source", str(tmp_path / "missing"), "--index",
                str(tmp_path / "idx"))
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "source folder not found" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("rag.build", "--source", str(empty), "--index", str(tmp_path / "idx"))
    assert r.returncode == 1 and "no readable article" in r.stderr


def test_rag_build_name_survives_importing_the_cli_module():
    import importlib

    importlib.import_module("rag.build")
    importlib.import_module("rag.ask")
    assert callable(rag.build) and rag.build.__module__ == "rag"
    assert callable(rag.ask) and rag.ask.__module__ == "rag"


def test_garbage_collection_drops_unpublished_versions_newer_than_the_live_one(tmp_path):
    """A build killed after renaming its version into place but before publishing it
    leaves a version newer than CURRENT: the next build's clean-up removes it, keeps the
    live version and the one before it (a reader may still hold it)."""
    for t in (100, 200, 300, 400, 500):
        (tmp_path / f"v{t}-1").mkdir()
    (tmp_path / ".tmp-v600-1").mkdir()
    (tmp_path / "CURRENT").write_text("v300-1")
    store.collect_garbage(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", "v200-1", "v300-1"]


@pytest.mark.parametrize("seed", range(20))
def test_compare_equals_a_set_by_set_reading(seed):
    """rag.index.build.compare (C-level filters, a count in place of the removed set
    when nothing went) against the plain set reading of added, updated, unchanged and
    removed ids, in corpus order, on random changes (ids gone, new, rehashed, kept)."""
    from rag.index.build import compare
    from rag.types import Article

    rng = random.Random(seed)
    pool = [f"a{n:03d}" for n in range(60)]
    old = {aid: f"h{rng.randrange(3)}" for aid in rng.sample(pool, rng.randrange(0, 40))}
    new_ids = rng.sample(pool, rng.randrange(1, 40))
    arts = [Article(id=aid, title="", text="", source="", content_hash=f"h{rng.randrange(3)}")
            for aid in new_ids]
    added, updated, unchanged, removed = compare(arts, old)
    assert added == [a.id for a in arts if a.id not in old]
    assert updated == [a.id for a in arts if a.id in old and old[a.id] != a.content_hash]
    assert unchanged == [a.id for a in arts if old.get(a.id) == a.content_hash]
    assert removed == sorted(set(old) - set(new_ids))
