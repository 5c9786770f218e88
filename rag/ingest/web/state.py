"""The remembered feeds (``.rag-feeds.json``) and the lock every change of it holds. Part of
:mod:`rag.ingest.web`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .constants import FEEDS_FILE, LOCK_TIMEOUT
from .records import _read_json, _write_atomic
from .urls import _feed_key


def _load_state(source: Path) -> dict[str, Any]:
    data = _read_json(source / FEEDS_FILE)
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), list):
        return {"version": 1, "feeds": []}
    data["feeds"] = [f for f in data["feeds"] if isinstance(f, dict) and
                     isinstance(f.get("url"), str)]
    for f in data["feeds"]:
        if not isinstance(f.get("items"), dict):
            f["items"] = {}
        if not isinstance(f.get("current"), list):
            f["current"] = []
        if not isinstance(f.get("seen"), dict):
            f["seen"] = {}
    return data


def _save_state(source: Path, state: dict[str, Any]) -> None:
    _write_atomic(source / FEEDS_FILE, json.dumps(state, ensure_ascii=False, indent=1) + "\n")


def _find(state: dict[str, Any], feed_url: str) -> dict[str, Any] | None:
    key = _feed_key(feed_url)
    return next((f for f in state["feeds"] if _feed_key(f["url"]) == key), None)


class _Locked:
    """The feeds file lock of one source folder (a file lock: threads and processes)."""

    def __init__(self, source: Path) -> None:
        from filelock import FileLock

        self.lock = FileLock(str(source / (FEEDS_FILE + ".lock")), timeout=LOCK_TIMEOUT)

    def __enter__(self):
        self.lock.acquire()
        return self

    def __exit__(self, *exc):
        self.lock.release()
