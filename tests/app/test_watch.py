"""The watched folder and scheduled polls (rag.app.watch.Updater): a change in the
source folder becomes one debounced incremental build; the live index switches only to a
published version; a failed build keeps the previous index and the thread alive."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import rag
from rag.app.watch import Updater, index_status, parse_duration
from rag.index.store import current_version
from tests.conftest import DATA

STORY = ("Harbour ferries\n\nThe harbour ferry service will add three night crossings from "
         "June, the port authority said on Monday. Tickets will cost four pounds.\n")
OTHER = ("Library hours\n\nThe central library will open on Sundays from next month, the "
         "council announced. It will close at five in the afternoon.\n")


def _wait(pred, timeout=60.0, step=0.1):
    """Poll until ``pred()`` is true (a correctness wait, not a speed assertion)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False


@pytest.fixture
def watched(cfg):
    Path(cfg.source, "ferry.txt").write_text(STORY, encoding="utf-8")
    rag.build(config=cfg)
    logs: list[str] = []
    up = Updater(cfg, watch=True, debounce_ms=300, log=logs.append).start()
    time.sleep(0.5)  # let the watcher register the folder
    yield cfg, up, logs
    up.stop()


def test_parse_duration():
    assert parse_duration("30m") == 1800
    assert parse_duration("2h") == 7200
    assert parse_duration("90s") == 90
    assert parse_duration("5") == 300
    for bad in ("soon", "10s", "-5m", ""):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_a_new_file_is_indexed_and_published(watched):
    cfg, up, _ = watched
    before = current_version(cfg.index_dir)
    Path(cfg.source, "library.txt").write_text(OTHER, encoding="utf-8")
    assert _wait(lambda: up.status.last_changes is not None)
    assert up.status.last_changes.added == ("library.txt",)
    assert current_version(cfg.index_dir) != before
    answer = rag.ask("When will the central library open on Sundays?", config=cfg)
    assert answer.citations and answer.citations[0].article_id == "library.txt"
    status = index_status(cfg, up)
    assert status["watching"] is True and status["articles"] == 2
    assert "1 added" in status["last_changes"]


def test_a_burst_of_saves_is_one_build(watched):
    cfg, up, _ = watched
    for i in range(5):
        Path(cfg.source, f"note-{i}.txt").write_text(OTHER.replace("five", f"{i + 5}"),
                                                     encoding="utf-8")
    assert _wait(lambda: up.status.last_changes is not None
                 and len(up.status.last_changes.added) + len(up.status.last_changes.skipped)
                 == 5)
    time.sleep(1.0)  # a second build would show up in the count
    assert up.status.builds == 1


def test_hidden_files_and_other_suffixes_do_not_build(watched):
    cfg, up, _ = watched
    Path(cfg.source, ".draft.txt").write_text(OTHER, encoding="utf-8")
    Path(cfg.source, "picture.png").write_bytes(b"\x89PNG....")
    time.sleep(1.5)
    assert up.status.builds == 0


def test_removal_and_edit_update_the_index(watched):
    cfg, up, _ = watched
    Path(cfg.source, "library.txt").write_text(OTHER, encoding="utf-8")
    assert _wait(lambda: up.status.builds >= 1 and up.status.last_changes is not None)
    Path(cfg.source, "ferry.txt").write_text(STORY.replace("three", "five"), encoding="utf-8")
    assert _wait(lambda: up.status.last_changes.updated == ("ferry.txt",))
    Path(cfg.source, "library.txt").unlink()
    assert _wait(lambda: up.status.last_changes.removed == ("library.txt",))
    from rag.app.library import Library

    assert _wait(lambda: [a["id"] for a in Library(cfg).articles()] == ["ferry.txt"])


def test_a_failed_build_keeps_the_index_and_the_watcher(watched):
    cfg, up, _ = watched
    live = current_version(cfg.index_dir)
    Path(cfg.source, "ferry.txt").unlink()  # no readable article left: the build fails
    assert _wait(lambda: up.status.error != "")
    assert "no readable article" in up.status.error
    assert current_version(cfg.index_dir) == live
    assert rag.ask("How much will ferry tickets cost?", config=cfg).citations
    Path(cfg.source, "ferry.txt").write_text(STORY, encoding="utf-8")  # and it recovers
    assert _wait(lambda: up.status.error == "" and up.status.builds >= 2)


def test_scheduled_poll_runs_a_build(cfg, monkeypatch):
    Path(cfg.source, "ferry.txt").write_text(STORY, encoding="utf-8")
    rag.build(config=cfg)
    calls = []
    import rag.index.build as b

    real = b.build
    monkeypatch.setattr(b, "build", lambda **kw: calls.append(kw) or real(**kw))
    up = Updater(cfg, watch=False, poll_seconds=0.3, log=None).start()
    try:
        assert _wait(lambda: len(calls) >= 2, timeout=30)
    finally:
        up.stop()
    assert all(c["poll"] for c in calls)
    assert up.status.error == "" and not up.status.watching


DAMAGED_PDF = DATA / "seed-article.pdf"


def test_a_damaged_file_dropped_in_is_said_in_the_log_the_status_and_the_articles_tab(watched):
    from fastapi.testclient import TestClient

    from rag.app import render
    from rag.app.web import create_app

    cfg, up, logs = watched
    Path(cfg.source, "report.pdf").write_bytes(DAMAGED_PDF.read_bytes()[:5000])  # cut short
    assert _wait(lambda: up.status.skipped)
    (item, reason), = up.status.skipped
    assert item == "report.pdf" and reason.startswith("damaged PDF")
    said = [m for m in logs if m.startswith("rag: report.pdf skipped: damaged PDF")]
    assert len(said) == 1, logs
    with TestClient(create_app(cfg, updater=up, ui=False), base_url="http://127.0.0.1",
                    client=("127.0.0.1", 50000)) as client:
        status = client.get("/api/status").json()
    assert status["skipped"] == [{"item": "report.pdf", "reason": reason}]
    tab = render.render_status(index_status(cfg, up))
    assert "report.pdf</span> skipped: damaged PDF" in tab and "1 item was not indexed" in tab
    # another change: the damaged file is still listed, but said once in the log
    Path(cfg.source, "library.txt").write_text(OTHER, encoding="utf-8")
    assert _wait(lambda: up.status.last_changes is not None
                 and up.status.last_changes.added == ("library.txt",))
    assert up.status.skipped == ((item, reason),)
    assert sum(m.startswith("rag: report.pdf skipped") for m in logs) == 1
    Path(cfg.source, "report.pdf").unlink()  # gone: no longer listed
    assert _wait(lambda: not up.status.skipped)
    assert index_status(cfg, up)["skipped"] == []


def test_a_feed_item_whose_page_is_gone_is_said_and_listed_at_each_poll(cfg, site):
    from tests.ingest.test_fetch import rss, serve_feed

    Path(cfg.source, "ferry.txt").write_text(STORY, encoding="utf-8")
    cfg = cfg.replace(fetch_allow_private=f"127.0.0.1:{site.port}")
    serve_feed(site, "/feed", rss([{"title": "Night crossings", "guid": "n1", "perma": False,
                                    "link": site.url("/gone"), "summary": "Ferries."}]),
               '"v1"')
    rag.build(config=cfg, feeds=[site.url("/feed")])  # subscribed; the item skipped
    logs: list[str] = []
    up = Updater(cfg, watch=False, log=logs.append).start()
    try:
        for polls in (1, 2):
            up.trigger(poll=True)
            assert _wait(lambda: up.status.builds >= polls)
            (item, reason), = up.status.skipped
            assert item == site.url("/gone") and reason.startswith(
                "its page failed (HTTP 404 Not Found) and the feed gives only 8 characters")
    finally:
        up.stop()
    assert [m for m in logs if "skipped" in m] == [f"rag: {item} skipped: {reason}"]
    assert index_status(cfg, up)["skipped"] == [{"item": item, "reason": reason}]
    assert site.paths().count("/gone") == 3  # tried at each poll, never indexed
    from rag.app.library import Library

    assert [a["id"] for a in Library(cfg).articles()] == ["ferry.txt"]


def test_index_status_reads_the_manifest_without_hashing_the_index(cfg, fake_embedder,
                                                                   monkeypatch):
    """The UI's timer and GET /api/status ask every few seconds: the status reads the
    live manifest only, never hashes the index files (issue 25, item 5)."""
    import rag
    from rag.app.watch import index_status
    from rag.index import store

    (cfg.source / "a.txt").write_text("Tides\n\nThe tide turns twice a day.", encoding="utf-8")
    rag.build(config=cfg)
    hashed = []
    real = store._file_info
    monkeypatch.setattr(store, "_file_info", lambda f: hashed.append(f) or real(f))
    status = index_status(cfg)
    assert status["articles"] == 1 and status["version"] and not hashed
    from rag.index.segments import open_version
    open_version(cfg.index_dir)  # loading still verifies every file
    assert hashed


def test_a_watched_build_looks_only_at_the_reported_paths(watched, monkeypatch):
    """Issue 26: after its first build (which walks the folder), the updater hands the
    build the paths the watcher reported instead of having it walk the folder."""
    import rag.index.build as builder

    cfg, up, _ = watched
    seen: list = []
    real = builder.build
    monkeypatch.setattr(builder, "build",
                        lambda *a, **k: seen.append(k.get("changed")) or real(*a, **k))
    Path(cfg.source, "library.txt").write_text(OTHER, encoding="utf-8")
    assert _wait(lambda: up.status.builds >= 1)
    assert seen == [None]
    Path(cfg.source, "note.txt").write_text(OTHER.replace("five", "six"), encoding="utf-8")
    assert _wait(lambda: up.status.builds >= 2)
    assert [Path(p).resolve() for p in seen[1]] == [Path(cfg.source, "note.txt").resolve()]
    assert up.status.last_changes.added == ("note.txt",)
    Path(cfg.source, "library.txt").unlink()
    assert _wait(lambda: up.status.builds >= 3)
    assert up.status.last_changes.removed == ("library.txt",)
    up.trigger(poll=True)  # a feed poll while watching: the watcher's paths, no walk
    assert _wait(lambda: up.status.builds >= 4)
    assert seen[3] == [] and up.status.error == ""


def test_a_starting_updater_keys_its_index_copy_signatures_off_its_build_thread(
        cfg, fake_embedder, monkeypatch):
    """The first change after start does not wait to key the stored copy signatures
    of the live segments (issue 26: ~1 s at 100k articles)."""
    from collections import OrderedDict

    from rag.index import segments

    Path(cfg.source, "ferry.txt").write_text(STORY, encoding="utf-8")
    rag.build(config=cfg)
    monkeypatch.setattr(segments, "_band_keys", OrderedDict())  # as in a new process
    up = Updater(cfg, watch=False, log=None).start()
    try:
        up._warm.join(60)
        names = [s["segment"] for s in segments.read_layout(cfg.index_dir).segments]
        keyed = {Path(k).parent.name for k in segments._band_keys}
        assert names and set(names) <= keyed
        assert up.status.builds == 0  # nothing was built to get there
    finally:
        up.stop()


def test_a_starting_updater_loads_the_language_detector_off_its_build_thread(cfg, monkeypatch):
    """The first change after start does not wait for the detector's load (issue 26)."""
    from rag.ingest import language

    monkeypatch.setattr(language, "_identifier", None)  # as in a new process
    Path(cfg.source, "ferry.txt").write_text(STORY, encoding="utf-8")
    up = Updater(cfg, watch=False, log=None).start()
    try:
        up._warm.join(60)
        assert not up._warm.is_alive() and language._identifier is not None
        assert up.status.builds == 0  # nothing was built to get there
    finally:
        up.stop()


def test_the_warm_up_and_the_app_take_turns_parsing(cfg, monkeypatch):
    """The warm-up (numpy's .npy headers: ast.literal_eval) waits while the app is made
    (pydantic's docstrings: ast.parse): CPython 3.11 fails two threads parsing at once
    ("AST constructor recursion depth mismatch"), seen once at a server's start."""
    import threading

    from rag.app import routes, watch, web
    from rag.ingest import language

    held = []
    real = routes.ask_routes
    monkeypatch.setattr(routes, "ask_routes",
                        lambda *a: (held.append(watch.PARSING.locked()), real(*a))[1])
    web.create_app(cfg, ui=False)
    assert held == [True]
    loaded = []
    monkeypatch.setattr(language, "detect", lambda text: loaded.append(text))
    with watch.PARSING:  # as while the app is made
        t = threading.Thread(target=watch.warm_up, daemon=True)
        t.start()
        t.join(0.5)
        assert t.is_alive() and not loaded  # waiting for its turn
    t.join(60)
    assert loaded == ["warm up"]
