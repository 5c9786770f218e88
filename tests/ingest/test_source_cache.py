"""The source cache (rag.ingest.loaders.SourceCache, issue 26): a build reads only the
files that changed since the last build; what it did not read is read when needed."""

from __future__ import annotations

import json
import os

import rag
from rag.ingest import loaders


def _spy(monkeypatch) -> list[str]:
    read: list[str] = []
    real = loaders._load_located

    def spy(path, rel, *args, **kwargs):
        read.append(rel)
        return real(path, rel, *args, **kwargs)

    monkeypatch.setattr(loaders, "_load_located", spy)
    return read


def test_unchanged_files_are_not_read_again(cfg, fake_embedder, monkeypatch):
    for i in range(5):
        (cfg.source / f"a{i}.txt").write_text(f"Story {i}\n\nThe bridge {i} opened in "
                                              f"{1990 + i}.", encoding="utf-8")
    (cfg.source / "feed.jsonl").write_text(
        "\n".join(json.dumps({"id": f"r{i}", "text": f"Record {i} about the harbour."})
                  for i in range(3)) + "\nnot json\n", encoding="utf-8")
    first = rag.build(config=cfg)
    read = _spy(monkeypatch)
    again = rag.build(config=cfg)
    assert read == [] and not again.wrote
    assert again.skipped == first.skipped and again.unchanged == first.added  # same result
    (cfg.source / "a2.txt").write_text("Story 2\n\nThe bridge 2 closed.", encoding="utf-8")
    (cfg.source / "a4.txt").unlink()
    (cfg.source / "b.txt").write_text("New\n\nA new story about rail.", encoding="utf-8")
    third = rag.build(config=cfg)
    assert sorted(read) == ["a2.txt", "b.txt"]
    assert third.updated == ("a2.txt",) and third.added == ("b.txt",)
    assert third.removed == ("a4.txt",)
    answer = rag.ask("What happened to bridge 2?", config=cfg)
    assert answer.citations and answer.citations[0].article_id == "a2.txt"
    # a file touched without a change is read again (its time changed), nothing re-embedded
    read.clear()
    os.utime(cfg.source / "a1.txt", ns=(1, 1))
    fake_embedder.embedded.clear()
    assert not rag.build(config=cfg).wrote and read == ["a1.txt"]
    assert fake_embedder.embedded == []
    # other limits: every file is read again
    read.clear()
    rag.build(config=cfg.replace(max_file_bytes=10_000))
    assert len(read) == 6


def test_an_unread_article_that_becomes_new_is_read_when_needed(cfg, fake_embedder,
                                                                monkeypatch):
    """b.json's record claims the id of a.txt and loses; when a.txt goes, b.json (whose
    file did not change, so it was not read) becomes the article, and its text is read
    then."""
    (cfg.source / "a.txt").write_text("Alpha\n\nThe first text about tides.", encoding="utf-8")
    (cfg.source / "b.json").write_text(json.dumps(
        {"id": "a.txt", "text": "The second text about the moon and tides."}), encoding="utf-8")
    first = rag.build(config=cfg)
    assert [s.path for s in first.skipped] == ["b.json"]
    (cfg.source / "a.txt").unlink()
    read = _spy(monkeypatch)
    report = rag.build(config=cfg)
    assert report.updated == ("a.txt",) and read.count("b.json") == 1
    assert "moon" in rag.get_article("a.txt", config=cfg).text


def test_a_damaged_cache_only_means_reading_everything(cfg, fake_embedder, monkeypatch):
    (cfg.source / "a.txt").write_text("Alpha\n\nThe text about tides.", encoding="utf-8")
    rag.build(config=cfg)
    (cfg.index_dir / ".sources.sqlite").write_bytes(b"not a database" * 100)
    read = _spy(monkeypatch)
    report = rag.build(config=cfg)
    assert read == ["a.txt"] and report.unchanged == ("a.txt",)
