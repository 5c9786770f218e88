"""Record files: atomic writes, and who may replace a record (issue 22). Part of
:mod:`rag.ingest.web`."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..loaders import _Skip
from .constants import WEB_FOLDER, _RECORD_KEYS
from .urls import _feed_key, _site_of_url, record_path


def _write_atomic(path: Path, data: str) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _save(source: Path, record: dict[str, Any], fallback_host: str) -> str:
    """Write ``record`` unless the same record is there: "added", "updated", "unchanged".
    Raises ``_Skip`` when the file holds another id (a hash collision), or when the record
    of this id (here, or in another host's folder) came from another origin."""
    path = record_path(source, record["id"], fallback_host)
    existed = path.exists()
    old = _read_json(path) if existed else None
    for other in _same_id_records(source, path, record["id"], old):
        why = _replace_problem(other, record)
        if why:
            raise _Skip(why)
    if isinstance(old, dict):
        if old.get("id") not in (None, record["id"]):
            raise _Skip(f"{path.name} already holds another article ({old.get('id')})")
        if all(old.get(k) == record.get(k) for k in _RECORD_KEYS):
            return "unchanged"
    _write_atomic(path, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return "updated" if existed else "added"


def _same_id_records(source: Path, path: Path, article_id: str,
                     old: Any) -> list[dict[str, Any]]:
    """The saved records with ``article_id``: the one at ``path`` (``old``) and those in
    other hosts' folders (a ``tag:``/``urn:`` id lives in its feed's host folder, so two
    feeds can hold one id; the file name depends on the id alone)."""
    found = [old] if isinstance(old, dict) and old.get("id") == article_id else []
    for other in sorted((Path(source) / WEB_FOLDER).glob(f"*/{path.name}")):
        if other != path:
            rec = _read_json(other)
            if isinstance(rec, dict) and rec.get("id") == article_id:
                found.append(rec)
    return found


def _record_site(record: dict[str, Any]) -> str:
    """The site that published a saved record: its ``site`` field; records saved before
    it existed: the site of their URL id, else of their origin."""
    site = record.get("site")
    if isinstance(site, str) and site:
        return site
    return _site_of_url(str(record.get("id") or "")) or \
        _site_of_url(str(record.get("origin") or ""))


def _replace_problem(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why ``new`` may not replace (or sit beside) the saved ``old`` of the same id, or
    None when it may: the same origin (page or feed URL as given) or the same site."""
    if old.get("origin") and _feed_key(str(old["origin"])) == _feed_key(str(new["origin"])):
        return None
    was, now = _record_site(old), new.get("site") or ""
    if not was or was == now:
        return None
    return f"{new['id']} was saved from {was}; a fetch from {now or 'elsewhere'} may not " \
           "replace it"
