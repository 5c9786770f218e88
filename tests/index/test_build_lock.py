"""A build that indexes nothing leaves nothing behind (no index folder holding only the
lock file), and the build lock still lets one build at a time write the folder."""

from __future__ import annotations

import fcntl
import os
import shutil
import threading

import pytest

import rag
from rag.index.build import LOCK_NAME, _build_lock
from rag.index.store import current_version
from rag.types import BuildError
from tests.conftest import DATA, SEEDS, STEELWORKS

PDF = DATA / "seed-article.pdf"


def test_an_empty_folder_builds_nothing_and_leaves_no_index_folder(cfg):
    with pytest.raises(BuildError, match="no readable article"):
        rag.build(config=cfg)
    assert not cfg.index_dir.exists()


def test_a_folder_of_damaged_files_leaves_nothing_but_says_why(cfg):
    (cfg.source / "seed-article.pdf").write_bytes(PDF.read_bytes()[:4000])  # cut short
    with pytest.raises(BuildError, match=r"seed-article\.pdf: damaged PDF"):
        rag.build(config=cfg)
    assert not cfg.index_dir.exists()  # no lock, no reader cache, no .tmp version


def test_an_index_folder_made_beforehand_stays_and_a_real_index_keeps_its_lock(cfg):
    cfg.index_dir.mkdir()  # e.g. a mounted volume: not ours to remove
    with pytest.raises(BuildError):
        rag.build(config=cfg)
    assert cfg.index_dir.is_dir() and list(cfg.index_dir.iterdir()) == []
    (cfg.source / "steelworks.txt").write_text(STEELWORKS, encoding="utf-8")
    rag.build(config=cfg)
    assert current_version(cfg.index_dir) and (cfg.index_dir / LOCK_NAME).exists()
    shutil.rmtree(cfg.source)
    cfg.source.mkdir()  # the articles are gone: the build fails, the index stays
    with pytest.raises(BuildError, match="no readable article"):
        rag.build(config=cfg)
    assert current_version(cfg.index_dir) is not None


def test_a_build_waiting_while_an_empty_build_removes_the_folder_still_builds(cfg):
    """Build B waits on the lock; the holder (an empty build) removes the lock file and
    the folder, then lets go. B makes both again and builds, alone."""
    (cfg.source / "steelworks.txt").write_text(STEELWORKS, encoding="utf-8")
    holder = _build_lock(cfg.index_dir, 5.0, lambda m: None)
    holder.__enter__()
    waiting, result = threading.Event(), {}

    def build_b() -> None:
        try:
            result["report"] = rag.build(config=cfg.replace(lock_timeout=600.0),
                                         log=lambda m: waiting.set() if "waiting" in m else None)
        except BaseException as exc:  # handed to the test
            result["error"] = exc

    b = threading.Thread(target=build_b)
    b.start()
    waiting.wait()
    # while B waits, a second contender finds the lock held too
    fd = os.open(cfg.index_dir / LOCK_NAME, os.O_RDWR)
    with pytest.raises(BlockingIOError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)
    holder.__exit__(None, None, None)  # nothing indexed: lock file and folder go
    b.join()
    assert "error" not in result, result.get("error")
    assert result["report"].added == ("steelworks.txt",)
    assert current_version(cfg.index_dir) is not None


def test_concurrent_builds_are_still_refused_after_the_wait(cfg):
    (cfg.source / "steelworks.txt").write_text(STEELWORKS, encoding="utf-8")
    said = []
    with _build_lock(cfg.index_dir, 5.0, said.append):
        with pytest.raises(BuildError, match="another build is still writing .* try again"):
            rag.build(config=cfg.replace(lock_timeout=0.2), log=said.append)
    assert any("waiting for it to finish" in m for m in said)
    assert not cfg.index_dir.exists()  # the holder indexed nothing: it cleared up
