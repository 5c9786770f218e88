"""Issue 22, item 6: one deeply nested JSON file must not stop a build or crash an upload.

``[[[[...]]]]`` 100,000 levels deep is 200 KB; Python's JSON parser gives up at its
recursion limit (about 1,000 levels) with a RecursionError, which used to escape the
loader: ``python -m rag.build`` exited 1 with a traceback (the good new files never
indexed) and an upload answered a plain-text 500. Every per-file failure is now a skipped
file with its reason, and an upload refused this way is a JSON 409.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

import rag
from rag.ingest.loaders import load_articles, load_file

from .conftest import run_build_cli

DEEP = b"[" * 100_000 + b"]" * 100_000  # 200 KB
GOOD = "Tides\n\nThe tides rise and fall twice a day because of the Moon's pull.\n"



def skipped(report) -> dict[str, str]:
    return {s.path: s.reason for s in report.skipped}


# --------------------------------------------------------------------- against a server


def test_nested_json_upload_is_a_json_409_and_changes_nothing(small_index, served):
    with served(small_index) as url, httpx.Client(base_url=url, timeout=None) as client:
        r = client.post("/api/articles", files={"file": ("deep.json", DEEP,
                                                         "application/json")})
        assert r.status_code == 409, r.text[:300]
        body = r.json()
        assert body["code"] == "not_added" and "nesting too deep" in body["error"]
        listed = client.get("/api/articles").json()
        assert {a["id"] for a in listed["articles"]} == {"nile.txt", "moon.txt"}
        # the server is fine afterwards: a good upload still works
        r = client.post("/api/articles", files={"file": ("tides.txt", GOOD.encode(),
                                                         "text/plain")})
        assert r.status_code == 200 and r.json()["ok"], r.text[:300]
    assert sorted(p.name for p in small_index.source.iterdir()) == \
        ["moon.txt", "nile.txt", "tides.txt"]


def test_build_cli_skips_the_nested_json_and_indexes_the_good_file(tmp_path):
    src = tmp_path / "articles"
    src.mkdir()
    (src / "deep.json").write_bytes(DEEP)
    (src / "tides.txt").write_text(GOOD, encoding="utf-8")
    r = run_build_cli(src, tmp_path / "index")
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["added"] == ["tides.txt"]
    assert [(s["path"], s["reason"]) for s in report["skipped"]] == \
        [("deep.json", "nesting too deep (more levels than Python's recursion limit allows)")]


# --------------------------------------------------------------------------- unit tests


def test_load_file_reports_deep_json_as_skipped(tmp_path):
    path = tmp_path / "deep.json"
    path.write_bytes(DEEP)
    assert load_file(path, "deep.json")[0] == []
    (skip,) = load_file(path, "deep.json")[1]
    assert skip.path == "deep.json" and skip.reason.startswith("nesting too deep")


def test_deep_record_inside_an_articles_list_skips_the_file(tmp_path):
    deep = b'{"articles": [{"text": "fine", "title": ' + DEEP + b"}]}"
    (tmp_path / "wrapped.json").write_bytes(deep)
    (tmp_path / "tides.txt").write_text(GOOD, encoding="utf-8")
    arts, skips = load_articles(tmp_path)
    assert [a.id for a in arts] == ["tides.txt"]
    assert [(s.path, s.reason.split(" (")[0]) for s in skips] == \
        [("wrapped.json", "nesting too deep")]


def test_deep_json_line_skips_only_that_line(tmp_path):
    good = json.dumps({"id": "a", "text": "The first record is fine."})
    other = json.dumps({"id": "b", "text": "The third record is fine too."})
    (tmp_path / "feed.jsonl").write_bytes(
        good.encode() + b"\n" + DEEP + b"\n" + other.encode() + b"\n")
    arts, skips = load_articles(tmp_path)
    assert [a.id for a in arts] == ["a", "b"]
    assert [(s.path, s.reason.split(" (")[0]) for s in skips] == \
        [("feed.jsonl:2", "line 2: nesting too deep")]


def test_any_failure_reading_one_file_is_a_skip_and_the_rest_loads(tmp_path, monkeypatch):
    from rag.ingest import loaders

    (tmp_path / "a.md").write_text("# A\n\nThe letter a.", encoding="utf-8")
    (tmp_path / "b.html").write_text("<p>b</p>", encoding="utf-8")
    (tmp_path / "c.json").write_text('{"text": "c"}', encoding="utf-8")
    (tmp_path / "d.txt").write_text("D\n\nThe letter d.", encoding="utf-8")

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    def bug(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr(loaders, "_read_records", out_of_memory)
    monkeypatch.setattr(loaders, "_read_html", bug)
    monkeypatch.setattr(loaders, "_markdown_title", lambda text: 1 / 0)
    arts, skips = load_articles(tmp_path)
    assert [a.id for a in arts] == ["d.txt"]
    assert skipped_reasons(skips) == {
        "a.md": "could not be read (ZeroDivisionError: division by zero)",
        "b.html": "could not be read (KeyError: 'surprise')",
        "c.json": "out of memory while reading it"}


def skipped_reasons(skips) -> dict[str, str]:
    return {s.path: s.reason for s in skips}


def test_build_in_process_skips_deep_json_and_reports_it(cfg, fake_embedder):
    (cfg.source / "deep.json").write_bytes(DEEP)
    (cfg.source / "tides.txt").write_text(GOOD, encoding="utf-8")
    report = rag.build(config=cfg)
    assert report.added == ("tides.txt",)
    assert skipped(report)["deep.json"].startswith("nesting too deep")
