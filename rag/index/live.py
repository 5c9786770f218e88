"""The published version of an index, loaded once per process and folder.

:func:`load_index` reads ``CURRENT`` on every call (one small file read) and reloads when
a build has published a new version; the loaded :class:`~rag.index.store.Index` is checked
against the configured model and settings. Thread-safe.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..config import Config
from ..embedding.model import get_embedder
from ..types import IndexMismatch, IndexMissing, ShardedIndexHere
from .store import Index, check_compatible, current_version, is_cluster, read_manifest

_indexes: dict[str, Index] = {}
_load_lock = threading.Lock()


def load_index(index_dir: Path, cfg: Config) -> Index:
    """The live version of the index in ``index_dir``, loaded once and cached."""
    key = str(Path(index_dir).resolve())
    version = current_version(Path(index_dir))
    if version is None:
        if is_cluster(Path(index_dir)):
            raise ShardedIndexHere(
                f"{index_dir} holds a sharded index: listing, adding and removing articles "
                "work on one index only (asking, searching and reading articles work)")
        raise IndexMissing(f"no index in {index_dir}: run `python -m rag.build` first")
    cached = _indexes.get(key)
    if cached is not None and cached.version == version:
        return cached
    with _load_lock:
        cached = _indexes.get(key)
        if cached is not None and cached.version == current_version(Path(index_dir)):
            return cached
        for attempt in range(3):  # a build may publish (and clean up) while we load
            live = current_version(Path(index_dir))
            try:
                path, manifest = read_manifest(Path(index_dir))
                embedder = get_embedder(cfg)
                check_compatible(manifest, embedder.model_id, _settings(cfg, manifest))
                index = Index(path, manifest)
                break
            except (IndexMismatch, FileNotFoundError):
                if attempt == 2 or current_version(Path(index_dir)) == live:
                    raise
        _indexes[key] = index
        return index


def forget_index(index_dir: Path) -> None:
    """Drop the cached index of ``index_dir`` (loaded again on the next call)."""
    with _load_lock:
        _indexes.pop(str(Path(index_dir).resolve()), None)


def _settings(cfg: Config, manifest: dict) -> dict:
    built = manifest.get("settings", {})
    return {**cfg.index_settings(), **{k: built.get(k) for k in ("separators", "sentences")}}
