"""The published version of an index, loaded once per process and folder.

:func:`load_index` reads ``CURRENT`` on every call (one small file read) and reloads when
a build has published a new version (only the new segments are read: loaded segments
are shared between versions, :mod:`rag.index.segments`); the loaded
:class:`~rag.index.segments.Version` is checked against the configured model and
settings. Thread-safe.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..config import Config
from ..embedding.model import get_embedder
from ..types import IndexMismatch, IndexMissing, ShardedIndexHere
from .segments import Version, forget_segments, open_version
from .store import check_compatible, current_version, is_cluster, read_manifest

_indexes: dict[tuple[str, str, str], Version] = {}  # (folder, model, settings)
_load_lock = threading.Lock()


def load_index(index_dir: Path, cfg: Config) -> Version:
    """The live version of the index in ``index_dir``, loaded once and cached."""
    version = current_version(Path(index_dir))
    if version is None:
        if is_cluster(Path(index_dir)):
            raise ShardedIndexHere(
                f"{index_dir} holds a sharded index: listing, adding and removing articles "
                "work on one index only (asking, searching and reading articles work)")
        raise IndexMissing(f"no index in {index_dir}: run `python -m rag.build` first")
    # an index loaded for one model or settings is checked again for another
    key = (str(Path(index_dir).resolve()), get_embedder(cfg).model_id,
           repr(sorted(cfg.index_settings().items())))
    cached = _indexes.get(key)
    if cached is not None and cached.version == version:
        return cached
    with _load_lock:
        cached = _indexes.get(key)
        if cached is not None and cached.version == current_version(Path(index_dir)):
            return cached
        index = load_version(Path(index_dir), cfg)
        _indexes[key] = index
        return index


def load_version(index_dir: Path, cfg: Config, version: str | None = None) -> Version:
    """``version`` (default: the live one) of ``index_dir``, checked against the
    configured model and settings; retried when a build publishes (and cleans up)
    meanwhile."""
    for attempt in range(3):
        live = current_version(index_dir)
        try:
            _, manifest = read_manifest(index_dir, version, verify=False)
            check_compatible(manifest, get_embedder(cfg).model_id, _settings(cfg, manifest))
            return open_version(index_dir, version)
        except (IndexMismatch, FileNotFoundError):
            if version is not None or attempt == 2 or current_version(index_dir) == live:
                raise
    raise AssertionError("unreachable")


def forget_index(index_dir: Path) -> None:
    """Drop the cached index of ``index_dir`` (loaded again on the next call)."""
    with _load_lock:
        folder = str(Path(index_dir).resolve())
        for key in [k for k in _indexes if k[0] == folder]:
            del _indexes[key]
    forget_segments(Path(index_dir))


def _settings(cfg: Config, manifest: dict) -> dict:
    built = manifest.get("settings", {})
    # how passages, sentences and terms were cut is the index's own (a build updates it)
    return {**cfg.index_settings(),
            **{k: built.get(k) for k in ("separators", "sentences", "terms")}}
