"""One index folder's published version as segments (issue 26): loading, the live rows,
the merge policy and merging.

A version lists segments in order; each segment is immutable (:mod:`rag.index.store`)
and a version says which of its article rows are deleted (replaced by a later segment
or removed). :func:`open_version` loads a version; loaded segments are kept per process
and shared between versions, so a new version costs only its new segments.
:class:`Version` is what asking reads (through :class:`rag.answer.shards.ShardReader`):
its :class:`Part` s, the corpus statistics BM25 needs summed over the live passages, the
live articles by id, the syndicated-copy groups.

Merging (:func:`merge`): segments of similar size are merged into one, deleted rows
purged, and published as a new version, like a build (:func:`merge_plan` says which;
``python -m rag.build --optimize`` merges everything into one). Answers do not depend on
how the articles are split into segments: every number is computed per passage from
corpus-wide statistics, and rankings merge in one total order (tested against fresh
builds after random updates, ``tests/index/test_segments.py``).
"""

from __future__ import annotations

import copy
import itertools
import math
import operator
import os
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..types import Article, IndexMismatch
from .keyword import ENGLISH, NPY_ERRORS, KeywordStats, analyzer_of
from .store import (REBUILD_HINT, Index, IndexData, current_version, publish_version,
                    read_copies, read_manifest, read_segment, write_segment)

# The merge policy (tiered, as Lucene's): segments whose live article counts fall in
# the same power of MERGE_FACTOR are merged once MERGE_FACTOR of them exist; beyond
# MAX_SEGMENTS the smallest are merged together; a segment with more than PURGE_SHARE
# of its rows deleted is rewritten. Adding one article per build, the segment count
# stays <= MAX_SEGMENTS and each article is rewritten about log_4(archive) times
# (benchmarks/updates.py measures it).
MERGE_FACTOR = 4
MAX_SEGMENTS = 10
PURGE_SHARE = 0.3

_cache: OrderedDict[str, Index] = OrderedDict()
_cache_lock = threading.Lock()
CACHED_SEGMENTS = 256


def load_segment(index_dir: Path, name: str) -> Index:
    """The segment ``name`` of ``index_dir``, loaded (its files verified) once per
    process and kept while versions use it."""
    key = str((Path(index_dir) / "segments" / name).resolve())
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    path, manifest = read_segment(index_dir, name)
    index = Index(path, manifest)
    with _cache_lock:
        index = _cache.setdefault(key, index)
        while len(_cache) > CACHED_SEGMENTS:
            _cache.popitem(last=False)
    return index


def forget_segments(index_dir: Path) -> None:
    """Drop the loaded segments of ``index_dir`` (loaded again when next used)."""
    prefix = str((Path(index_dir) / "segments").resolve())
    with _cache_lock:
        for key in [k for k in _cache if k.startswith(prefix)]:
            del _cache[key]


@dataclass(frozen=True)
class Part:
    """One segment as a version sees it: ``deleted`` article rows (sorted), and the
    masks of its live articles and passages (None: everything is live)."""

    index: Index
    deleted: np.ndarray
    live_articles: np.ndarray | None
    live_chunks: np.ndarray | None
    live_ids: np.ndarray | None  # sorted live passage ids (None: all)

    @classmethod
    def of(cls, index: Index, deleted: np.ndarray) -> "Part":
        if not len(deleted):
            return cls(index, deleted, None, None, None)
        arts = np.ones(len(index.article_ids), dtype=bool)
        arts[deleted] = False
        chunks = arts[np.asarray(index.chunks[:, 0])] if index.n_chunks \
            else np.zeros(0, dtype=bool)
        return cls(index, deleted, arts, chunks, np.flatnonzero(chunks))

    @property
    def n_live_chunks(self) -> int:
        return self.index.n_chunks if self.live_ids is None else len(self.live_ids)

    def restrict(self, allowed: np.ndarray | None) -> np.ndarray | None:
        """The sorted passage ids ``allowed`` (None: all) that are live (None: all)."""
        if self.live_ids is None:
            return allowed
        if allowed is None:
            return self.live_ids
        return allowed[self.live_chunks[allowed]]

    def live_rows(self) -> np.ndarray:
        n = len(self.index.article_ids)
        return np.arange(n) if self.live_articles is None else np.flatnonzero(self.live_articles)


class Version:
    """One published version: its parts, in order, the live articles by id, copy groups.
    Read-only; safe to share between threads."""

    def __init__(self, path: Path, manifest: dict[str, Any], parts: list[Part]) -> None:
        self.path = path
        self.manifest = manifest
        self.version = manifest["version"]
        self.parts = parts
        self.groups = read_copies(Path(path).parent, manifest)[0]
        self.where: dict[str, tuple[int, int]] = {}
        for p, part in enumerate(parts):
            ids = part.index.article_ids
            for row in part.live_rows().tolist():
                self.where[ids[row]] = (p, row)
        self.n_chunks = sum(part.n_live_chunks for part in parts)
        self._dated: bool | None = None

    @property
    def n_articles(self) -> int:
        return len(self.where)

    @cached_property
    def analyzers(self) -> tuple[str, ...]:
        """The keyword analyzers of its segments' articles besides English, sorted: a
        question is read under these (:func:`rag.index.keyword.question_words`)."""
        return tuple(sorted({a for part in self.parts for a in part.index.analyzers}))

    def stats(self, terms: list[str]) -> KeywordStats:
        """The corpus statistics of the live passages, with the document frequency of
        each of ``terms``."""
        total = KeywordStats(0, 0, {t: 0 for t in terms})
        for part in self.parts:
            total = total.plus(part.index.keyword.stats(terms, part.live_chunks))
        return total

    def article(self, article_id: str) -> Article | None:
        at = self.where.get(article_id)
        return None if at is None else self.parts[at[0]].index.article(at[1])

    def dated(self) -> bool:
        """Whether any live article has a publication date."""
        if self._dated is None:
            self._dated = any(
                r[3] is not None for part in self.parts
                for r in _rows_of(part.index, part.live_rows()))
        return self._dated

    def list_articles(self) -> list[dict[str, Any]]:
        """Every live article (id, title, source, url, published, author, file_date,
        date_source, chunks, ``copy_of``: the id of the article whose story it repeats),
        in the order of the files they came from (a fresh build's order), records of a
        file in their order."""
        rep = {aid: g[0] for g in self.groups for aid in g[1:]}
        keyed = []
        for p, part in enumerate(self.parts):
            origins = part.index.manifest.get("origins", {})
            rows = part.index.list_articles(None if part.live_articles is None
                                            else part.live_rows())
            for n, row in enumerate(rows):
                keyed.append(((origins.get(row["id"], row["id"]), p, n),
                              {**row, "copy_of": rep.get(row["id"])}))
        return [row for _, row in sorted(keyed, key=lambda kr: kr[0])]

    def single(self) -> Index:
        """The one segment, when this version is one segment with nothing deleted (a
        fresh build, or after ``--optimize``), presented as one index with the copy
        groups; IndexMismatch otherwise. For tools that read an index's arrays directly
        (evaluation and fitting)."""
        if len(self.parts) != 1 or len(self.parts[0].deleted):
            raise IndexMismatch(f"the index at {self.path.parent} has {len(self.parts)} "
                                "segment(s) and deleted rows; run `python -m rag.build "
                                "--optimize` to merge it into one")
        index = copy.copy(self.parts[0].index)
        row_of = {aid: i for i, aid in enumerate(index.article_ids)}
        index.copies = {row_of[a]: tuple(row_of[x] for x in g)
                        for g in self.groups for a in g if all(x in row_of for x in g)}
        return index


def _rows_of(index: Index, rows: np.ndarray) -> list[tuple]:
    all_rows = index.article_rows()
    return [all_rows[r] for r in rows.tolist()]


def describe(manifest: dict[str, Any]) -> dict[str, Any]:
    """What a version manifest says of its segments (no segment is read)."""
    segs = manifest.get("segments", ())
    languages: Counter = Counter()
    for e in segs:
        languages.update(e.get("languages") or {})
    return {"segments": len(segs),
            "deleted_articles": sum(int(e.get("articles", 0)) - int(e.get("live_articles", 0))
                                    for e in segs),
            "last_merge": manifest.get("last_merge"),
            # live articles per language ("" where no language could be told; segments
            # written before languages were detected count in none)
            "languages": dict(sorted(languages.items(), key=lambda kv: (-kv[1], kv[0])))}


def deleted_rows(path: Path, entry: dict[str, Any]) -> np.ndarray:
    """The deleted article rows a version (folder ``path``) lists for a segment's
    ``entry`` (none: an empty array); IndexMismatch when the file is damaged."""
    if not entry.get("deleted"):
        return np.zeros(0, dtype=np.int32)
    try:
        return np.load(path / entry["deleted"], allow_pickle=False)
    except NPY_ERRORS as exc:
        raise IndexMismatch(f"the deleted rows {entry['deleted']} in {path} are damaged "
                            f"({exc}); {REBUILD_HINT}") from exc


def open_version(index_dir: Path, version: str | None = None) -> Version:
    """The live version of ``index_dir`` (or ``version``), loaded; IndexMissing or
    IndexMismatch (with what to do) when it cannot be."""
    index_dir = Path(index_dir)
    path, manifest = read_manifest(index_dir, version)
    parts = [load_part(index_dir, path, entry) for entry in manifest["segments"]]
    return Version(path, manifest, parts)


def load_part(index_dir: Path, path: Path, entry: dict[str, Any]) -> Part:
    """The segment of a version's ``entry`` (the version in folder ``path``), loaded,
    with the rows the version deletes from it (checked to fit)."""
    index = load_segment(index_dir, entry["name"])
    deleted = deleted_rows(path, entry)
    if entry.get("deleted"):
        if deleted.ndim != 1 or deleted.dtype != np.int32 or (len(deleted) and (
                deleted.min() < 0 or deleted.max() >= len(index.article_ids))):
            raise IndexMismatch(f"the deleted rows {entry['deleted']} in {path} do not "
                                f"fit segment {entry['name']}; {REBUILD_HINT}")
    return Part.of(index, deleted.astype(np.int64))


# -- what a build reads: manifests only ------------------------------------------

@dataclass(frozen=True)
class Layout:
    """The live version as a build sees it, from manifests alone (nothing verified or
    loaded: a build costs what changed): the version manifest, each segment's manifest,
    and each segment's deleted rows."""

    manifest: dict[str, Any]
    segments: list[dict[str, Any]]
    deleted: list[np.ndarray]

    def live(self) -> dict[str, tuple[int, int]]:
        """Live article id -> (segment position, row); computed once (do not modify)."""
        return self._live

    def hashes(self) -> dict[str, str]:
        """Live article id -> content hash; computed once (do not modify)."""
        return self._hashes

    def origins(self) -> dict[str, str]:
        """Live article id -> the file it was read from; computed once (do not modify)."""
        return self._origins

    # -- point lookups: what a build of a few articles needs, without the maps above
    # (each is O(N) in C, ~30 ms at 100k articles; these cost a dict lookup per segment)

    def locate(self, article_id: str) -> tuple[int, int] | None:
        """(segment position, row) of a live article, or None: equals ``live().get``."""
        for p, rows in enumerate(self._row_maps):
            row = rows.get(article_id)
            if row is not None and row not in self._dead_sets[p]:
                return p, row
        return None

    def hash_of(self, article_id: str) -> str | None:
        """A live article's content hash, or None: equals ``hashes().get``."""
        at = self.locate(article_id)
        return None if at is None else self.segments[at[0]]["articles"].get(article_id)

    def origin_of(self, article_id: str) -> str | None:
        """The file a live article was read from, or None: equals ``origins().get``."""
        at = self.locate(article_id)
        got = None if at is None else (self.segments[at[0]].get("origins") or {}).get(article_id)
        return got if isinstance(got, str) else None

    @property
    def n_live(self) -> int:
        """How many articles are live (the version manifest's count)."""
        return int(self.manifest["counts"]["articles"])

    @cached_property
    def _row_maps(self) -> list[dict[str, int]]:
        return [_rows_and_ids(seg)[0] for seg in self.segments]

    @cached_property
    def _dead_sets(self) -> list[frozenset[int]]:
        return [frozenset(d.tolist()) for d in self.deleted]

    @cached_property
    def _live_rows(self) -> list[tuple[Sequence[str], Sequence[int]]]:
        """Per segment, (ids, rows) of its live articles (a boolean mask and C-level
        gathers, no Python loop per article)."""
        out = []
        for seg, dead in zip(self.segments, self.deleted):
            ids = list(seg.get("articles", {}))
            if not len(dead):
                out.append((ids, range(len(ids))))
                continue
            keep = np.ones(len(ids), dtype=bool)
            keep[dead[(dead >= 0) & (dead < len(ids))]] = False
            rows = np.flatnonzero(keep).tolist()
            out.append(([ids[r] for r in rows] if len(rows) < 2 else
                        list(operator.itemgetter(*rows)(ids)), rows))
        return out

    @cached_property
    def _live(self) -> dict[str, tuple[int, int]]:
        got: dict[str, tuple[int, int]] = {}
        for p, (ids, rows) in enumerate(self._live_rows):
            got.update(zip(ids, zip(itertools.repeat(p), rows)))
        return got

    @cached_property
    def _hashes(self) -> dict[str, str]:
        return self._per_live("articles")

    @cached_property
    def _origins(self) -> dict[str, str]:
        got = self._per_live("origins")
        if set(map(type, got.values())) - {str}:  # checked in C; rare: filter
            got = {aid: f for aid, f in got.items() if isinstance(f, str)}
        return got

    def _per_live(self, field: str) -> dict[str, Any]:
        """{live id: value} of a per-article map every segment manifest has under
        ``field``. An id is live in one segment at most, so a segment without deleted
        rows gives its whole map (one C-level update, not a loop per article)."""
        got: dict[str, Any] = {}
        for seg, dead, (ids, _) in zip(self.segments, self.deleted, self._live_rows):
            values = seg.get(field) or {}
            if not len(dead):
                got.update(values)
            else:
                got.update(zip(ids, map(values.get, ids)))  # None where a map lacks an id
        return got


class Lookup(Mapping):
    """A read-only map over a :class:`Layout` that answers one key by a point lookup
    (``one(key)``, None: absent) and builds the whole map (``whole()``) only when
    iterated: the duplicate rules of a build ask about a few ids, not 100k."""

    def __init__(self, one, whole) -> None:
        self._one, self._whole = one, whole

    def __getitem__(self, key: str):
        got = self._one(key)
        if got is None:
            raise KeyError(key)
        return got

    def get(self, key: str, default=None):
        got = self._one(key)
        return default if got is None else got

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._one(key) is not None

    def __iter__(self):
        return iter(self._whole())

    def __len__(self) -> int:
        return len(self._whole())


_manifests: OrderedDict[str, tuple[tuple[int, int], dict[str, Any]]] = OrderedDict()


def segment_ids(seg: dict[str, Any]) -> tuple[str, ...]:
    """A segment manifest's article ids, row by row (made once per manifest object,
    :func:`_rows_and_ids`; a list of 100k ids per build fed the collector's passes)."""
    return _rows_and_ids(seg)[1]


def _rows_and_ids(seg: dict[str, Any]) -> tuple[dict[str, int], tuple[str, ...]]:
    """A segment manifest's (article id -> row, ids row by row), made once per manifest
    object (manifests are read once per process and shared, :func:`_segment_manifest`):
    ~10 ms for a segment of 100k articles, once."""
    key = id(seg)
    with _cache_lock:
        hit = _ROW_MAPS.get(key)
    if hit is not None and hit[0] is seg:
        return hit[1], hit[2]
    ids = tuple(seg.get("articles") or {})
    rows = dict(zip(ids, itertools.count()))
    with _cache_lock:
        _ROW_MAPS[key] = (seg, rows, ids)
        while len(_ROW_MAPS) > CACHED_SEGMENTS:
            _ROW_MAPS.popitem(last=False)
    return rows, ids


_ROW_MAPS: OrderedDict[int, tuple[dict[str, Any], dict[str, int], tuple[str, ...]]] = \
    OrderedDict()


def _segment_manifest(index_dir: Path, name: str) -> dict[str, Any]:
    """A segment's manifest, unverified, read once per process while its file stays
    the same (segments are immutable; a build reads them twice: for contested ids and
    for the diff). Shared: do not modify."""
    path = Path(index_dir) / "segments" / name / "manifest.json"
    try:
        st = os.stat(path)
        key = (st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    hit = _manifests.get(str(path))
    if key is not None and hit is not None and hit[0] == key:
        return hit[1]
    _, seg = read_segment(index_dir, name, verify=False)
    if key is not None:
        with _cache_lock:
            _manifests[str(path)] = (key, seg)
            while len(_manifests) > CACHED_SEGMENTS:
                _manifests.popitem(last=False)
    return seg


_layouts: OrderedDict[tuple[str, str], Layout] = OrderedDict()


def read_layout(index_dir: Path) -> Layout:
    """The live version's :class:`Layout`; IndexMissing / IndexMismatch. Versions are
    immutable and their names unique, so a process reads each once (a build reads the
    layout for contested ids and for the diff, and a watching process builds again
    from the version it published). Shared: do not modify."""
    key = (os.path.realpath(index_dir), current_version(Path(index_dir)) or "")
    with _cache_lock:
        hit = _layouts.get(key)
    if hit is not None and key[1] and (Path(index_dir) / key[1]).is_dir():
        return hit
    layout = _read_layout(index_dir)
    if layout.manifest.get("version") == key[1]:
        with _cache_lock:
            _layouts[key] = layout
            while len(_layouts) > 2:  # the live version and the one before
                _layouts.popitem(last=False)
    return layout


def _read_layout(index_dir: Path) -> Layout:
    path, manifest = read_manifest(index_dir, verify=False)
    segments, deleted = [], []
    for entry in manifest["segments"]:
        seg = _segment_manifest(index_dir, entry["name"])
        if not isinstance(seg.get("articles"), dict):
            raise IndexMismatch(f"segment {entry['name']} does not list its articles; "
                                f"{REBUILD_HINT}")
        segments.append(seg)
        deleted.append(deleted_rows(path, entry))
    return Layout(manifest, segments, deleted)


def entry_of(name: str, seg_manifest: dict[str, Any], deleted: np.ndarray,
             previous: dict[str, Any] | None = None,
             previous_deleted: np.ndarray | None = None) -> dict[str, Any]:
    """A version's entry for a segment: its name, article and passage counts, how many
    of its articles are live, and its live articles per language (most first, then by
    code). With the segment's ``previous`` entry and the rows that deleted
    (``previous_deleted``, all among ``deleted``), the counts are that entry's less the
    rows deleted since (a watched build: no count over 100k articles)."""
    n, chunks = int(seg_manifest["counts"]["articles"]), int(seg_manifest["counts"]["chunks"])
    per = seg_manifest.get("chunks_per_article") or [0] * n
    dead = np.asarray(deleted).tolist()
    langs = seg_manifest.get("languages")
    langs = langs if isinstance(langs, list) and len(langs) == n else None
    since = None
    if previous is not None and previous_deleted is not None and \
            previous.get("name") == name and "live_chunks" in previous and \
            (langs is None or isinstance(previous.get("languages"), dict)):
        was = set(np.asarray(previous_deleted).tolist())
        if was.issubset(dead):
            since = [r for r in dead if r not in was]
    if since is None:
        live_chunks = chunks - sum(per[r] for r in dead)
        counts = Counter(langs) if langs is not None else None
        gone = dead
    else:
        live_chunks = int(previous["live_chunks"]) - sum(per[r] for r in since)
        counts = Counter(previous["languages"]) if langs is not None else None
        gone = since
    entry = {"name": name, "articles": n, "chunks": chunks, "live_articles": n - len(dead),
             "live_chunks": live_chunks}
    if counts is not None:
        counts.subtract(langs[r] for r in gone)
        entry["languages"] = dict(sorted(((k, v) for k, v in counts.items() if v > 0),
                                         key=lambda kv: (-kv[1], kv[0])))
    return entry


# -- merging ----------------------------------------------------------------------

def merge_plan(entries: list[dict[str, Any]], optimize: bool = False,
               factor: int = MERGE_FACTOR, max_segments: int = MAX_SEGMENTS,
               purge: float = PURGE_SHARE) -> list[list[int]]:
    """Which segments (positions in ``entries``) to merge, as groups, each merged into
    one: tiers of similar size (live articles in the same power of ``factor``) with
    ``factor`` members or more; then, while more than ``max_segments`` would remain,
    the smallest together; a lone segment with more than ``purge`` of its articles
    deleted is rewritten. ``optimize``: everything into one (when that changes
    anything). Deterministic."""
    n = len(entries)
    live = [int(e.get("live_articles", 0)) for e in entries]
    dead = [int(e.get("articles", 0)) - lv for e, lv in zip(entries, live)]
    if optimize:
        return [list(range(n))] if n > 1 or (n == 1 and dead[0]) else []
    groups: list[list[int]] = []
    tiers: dict[int, list[int]] = {}
    for i in range(n):
        tiers.setdefault(int(math.log(max(live[i], 1), factor)), []).append(i)
    for tier in sorted(tiers):
        members = tiers[tier]
        if len(members) >= factor:
            groups.append(members)
    taken = {i for g in groups for i in g}
    remaining = n - sum(len(g) - 1 for g in groups)
    if remaining > max_segments:
        rest = sorted((i for i in range(n) if i not in taken), key=lambda i: (live[i], i))
        extra = rest[:remaining - max_segments + 1]
        if len(extra) > 1:
            groups.append(sorted(extra))
            taken |= set(extra)
    for i in range(n):
        total = live[i] + dead[i]
        if i not in taken and total and dead[i] / total > purge:
            groups.append([i])
    return [sorted(g) for g in groups]


def merged_data(parts: dict[int, Part], positions: list[int], dim: int) -> IndexData:
    """The live rows of the parts at ``positions``, in order, as one segment's data."""
    articles, chunk_rows, sent_rows, cvecs, svecs = [], [], [], [], []
    n_sent = 0
    for p in positions:
        part = parts[p]
        index = part.index
        starts = np.searchsorted(index.chunks[:, 0], np.arange(len(index.article_ids) + 1))
        for row in part.live_rows().tolist():
            new_row = len(articles)
            articles.append(index.article(row))
            lo, hi = int(starts[row]), int(starts[row + 1])
            ch = np.array(index.chunks[lo:hi], dtype=np.int64)
            s_lo, s_hi = (int(ch[0, 3]), int(ch[-1, 4])) if len(ch) else (0, 0)
            ch[:, 0] = new_row
            ch[:, 3:5] += n_sent - s_lo
            chunk_rows.append(ch)
            sent_rows.append(np.array(index.sentences[s_lo:s_hi]))
            cvecs.append(np.array(index.chunk_vectors[lo:hi]))
            svecs.append(np.array(index.sentence_vectors[s_lo:s_hi]))
            n_sent += s_hi - s_lo
    return IndexData(
        articles=articles,
        chunks=np.concatenate(chunk_rows).astype(np.int32) if chunk_rows
        else np.zeros((0, 5), np.int32),
        sentences=np.concatenate(sent_rows).astype(np.int32) if sent_rows
        else np.zeros((0, 2), np.int32),
        chunk_vectors=np.ascontiguousarray(np.concatenate(cvecs), dtype=np.float32)
        if cvecs else np.zeros((0, dim), np.float32),
        sentence_vectors=np.ascontiguousarray(np.concatenate(svecs), dtype=np.float16)
        if svecs else np.zeros((0, dim), np.float16))


SIGNATURES = "minhash.npy"


def signatures_for(articles: list[Article], known: dict[str, np.ndarray] | None = None
                   ) -> np.ndarray:
    """uint32 (len(articles), NUM_PERM): each article's MinHash (``known`` ones reused)."""
    from .copies import NUM_PERM, minhash, shingles

    known = known or {}
    out = np.empty((len(articles), NUM_PERM), dtype=np.uint32)
    for i, a in enumerate(articles):
        sig = known.get(a.id)
        out[i] = sig if sig is not None else minhash(shingles(a.text))
    return out


def stored_signatures(segment_path: Path, rows: np.ndarray) -> np.ndarray | None:
    """The MinHash rows of a segment (None when it has none: then recompute)."""
    try:
        sigs = np.load(segment_path / SIGNATURES, mmap_mode="r", allow_pickle=False)
        return np.asarray(sigs[rows], dtype=np.uint32)
    except (*NPY_ERRORS, IndexError):
        return None


_band_keys: OrderedDict[str, tuple[tuple[int, int], np.ndarray]] = OrderedDict()
BAND_KEY_BYTES = 256 * 2**20  # the band keys a process keeps (~500k articles' worth)


def stored_band_keys(segment_path: Path) -> np.ndarray | None:
    """The LSH band keys of a segment's stored MinHash rows (uint64, rows x bands, see
    :func:`rag.index.copies.band_keys`; all rows, deleted ones too), None when it has no
    signatures. Computed once per process while the file stays the same (segments are
    immutable), so a watching process folds a new article against 100k stored ones by
    one comparison, not by reading and re-keying them all (that was 0.9 s of a
    one-article build at 100k articles). Entries of collected segments go when another
    is keyed, least recently used ones past ``BAND_KEY_BYTES``. Shared: do not modify.
    Thread-safe."""
    from .copies import band_keys

    path = Path(segment_path) / SIGNATURES
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (st.st_mtime_ns, st.st_size)
    with _cache_lock:
        hit = _band_keys.get(str(path))
        if hit is not None and hit[0] == key:
            _band_keys.move_to_end(str(path))
            return hit[1]
    try:
        keys = band_keys(np.load(path, allow_pickle=False))
    except NPY_ERRORS:
        return None
    keys.setflags(write=False)
    with _cache_lock:
        _band_keys[str(path)] = (key, keys)
        for gone in [p for p in _band_keys if not os.path.exists(p)]:  # merged, collected
            del _band_keys[gone]
        while len(_band_keys) > 1 and \
                sum(k.nbytes for _, k in _band_keys.values()) > BAND_KEY_BYTES:
            _band_keys.popitem(last=False)
    return keys


def _cached_band_keys(segment_path: Path) -> np.ndarray | None:
    """The band keys :func:`stored_band_keys` holds for a segment, without keying."""
    with _cache_lock:
        hit = _band_keys.get(str(Path(segment_path) / SIGNATURES))
    return None if hit is None else hit[1]


_band_indexes: OrderedDict[str, tuple[int, Any]] = OrderedDict()
BAND_INDEX_ROWS = 16_384  # below this a comparison over the keys is as quick (~1 ms)
BAND_INDEXES = 4  # the indexes a process keeps (the large segments of a few folders)


def stored_band_index(segment_path: Path, build: bool = True) -> "Any | None":
    """A :class:`~rag.index.copies.BandIndex` of a segment's stored band keys
    (:func:`stored_band_keys`), None when it has none or fewer than
    ``BAND_INDEX_ROWS`` rows, or (``build=False``) when this process has not built it.
    Built once per process while the keys stay cached (~0.9 s at 100k articles: what
    a process that builds again does at warm-up, :func:`warm_band_keys`; a one-off
    build compares against the keys instead, ~15 ms). Thread-safe."""
    from .copies import BandIndex

    keys = stored_band_keys(segment_path) if build else _cached_band_keys(segment_path)
    if keys is None or len(keys) < BAND_INDEX_ROWS:
        return None
    path = str(Path(segment_path) / SIGNATURES)
    with _cache_lock:
        hit = _band_indexes.get(path)
        if hit is not None and hit[0] == id(keys):
            _band_indexes.move_to_end(path)
            return hit[1]
    if not build:
        return None
    index = BandIndex(keys)
    with _cache_lock:
        _band_indexes[path] = (id(keys), index)
        while len(_band_indexes) > BAND_INDEXES:
            _band_indexes.popitem(last=False)
    return index


def warm_band_keys(index_dir: Path) -> None:
    """Key the stored signatures of every live segment of ``index_dir`` (each shard's,
    for a sharded index) now (:func:`stored_band_keys`), so that the first build that
    folds copies against them does not wait (~1 s at 100k articles). For a process that
    will build again (``--watch``, ``--poll``, the server); never raises."""
    from .store import is_cluster

    index_dir = Path(index_dir)
    try:
        folders = sorted(p for p in index_dir.iterdir() if (p / "CURRENT").is_file()) \
            if is_cluster(index_dir) else [index_dir]
        for folder in folders:
            for seg in read_layout(folder).segments:
                _rows_and_ids(seg)  # what a build's point lookups use
                stored_band_index(folder / "segments" / seg["segment"])  # keys and all
    except Exception:  # noqa: BLE001 - none yet, or unreadable: the build says so
        pass


def write_data_segment(index_dir: Path, data: IndexData, manifest: dict[str, Any],
                       dim: int, signatures: dict[str, np.ndarray] | None = None,
                       languages: dict[str, str] | None = None
                       ) -> tuple[str, dict[str, Any]]:
    """Write ``data`` as a new segment: its FAISS index, keyword postings and copy
    signatures (``signatures``: those already computed, by id) built here; ``manifest``
    holds the model, settings and origins (the rest is added), including each article's
    language (``languages``: those known, by id; the others detected here)."""
    from ..ingest.language import detect
    from .dense import build_index as build_vector_index
    from .keyword import build_keyword_writer

    vector_index, vector_info = build_vector_index(data.chunk_vectors, dim)
    langs = [(languages or {}).get(a.id) or detect(a.text) for a in data.articles]
    analyzers = [analyzer_of(lang) for lang in langs]
    rows = data.chunks[:, :3].tolist()
    texts = [data.articles[r].text[s:e] for r, s, e in rows]
    origins = manifest.get("origins", {})
    per = np.bincount(data.chunks[:, 0], minlength=len(data.articles)) if len(data.chunks) \
        else np.zeros(len(data.articles), int)
    seg = {**{k: v for k, v in manifest.items() if k != "origins"},
           "vector_index": vector_info,
           "chunks_per_article": [int(x) for x in per],
           "counts": {"articles": len(data.articles), "chunks": len(data.chunks),
                      "sentences": len(data.sentences)},
           "articles": {a.id: a.content_hash for a in data.articles},
           "origins": {a.id: origins[a.id] for a in data.articles if a.id in origins},
           "languages": langs,
           "analyzers": analyzer_rows(analyzers)}
    return write_segment(index_dir, data, seg, vector_index,
                         build_keyword_writer(texts, [analyzers[r] for r, _, _ in rows]),
                         {SIGNATURES: signatures_for(data.articles, signatures)})


def analyzer_rows(analyzers: Sequence[str]) -> dict[str, list[int]]:
    """A segment's keyword analyzers as its manifest records them: the article rows of
    each analyzer but English ({} when all are English; segments written before
    analyzers existed have none: all English, as they were indexed)."""
    out: dict[str, list[int]] = {}
    for row, a in enumerate(analyzers):
        if a != ENGLISH:
            out.setdefault(a, []).append(row)
    return out


def merge(index_dir: Path, optimize: bool = False, say=lambda m: None) -> str | None:
    """Merge the live version's segments as :func:`merge_plan` says and publish the
    result as a new version (call holding the build lock). Returns the new version's
    name, or None when there was nothing to merge. Answers are unchanged."""
    index_dir = Path(index_dir)
    _, manifest = read_manifest(index_dir, verify=False)  # decide from the manifest alone
    if not merge_plan(manifest["segments"], optimize):
        return None
    path, manifest = read_manifest(index_dir)
    entries = manifest["segments"]
    plan = merge_plan(entries, optimize)
    if not plan:
        return None
    started = time.perf_counter()
    # only the segments merged are loaded (and their files verified): at 100k articles
    # the big segment's ~1 GB is neither hashed nor read to merge the small ones
    parts = {p: load_part(index_dir, path, entries[p]) for g in plan for p in g}
    dim = int(manifest["dim"])
    new_entries: list[dict[str, Any] | None] = list(entries)
    deleted = {e["name"]: rows.astype(np.int32) for e in entries
               if e.get("deleted") and len(rows := deleted_rows(path, e))}
    merged_rows = 0
    for group in plan:
        data = merged_data(parts, group, dim)
        origins: dict[str, str] = {}
        sigs: dict[str, np.ndarray] = {}
        languages: dict[str, str] = {}
        for p in group:
            part = parts[p]
            origins.update(part.index.manifest.get("origins", {}))
            languages.update(zip(part.index.article_ids,
                                 part.index.manifest.get("languages") or ()))
            rows = part.live_rows()
            found = stored_signatures(part.index.path, rows)
            if found is not None:
                ids = part.index.article_ids
                sigs.update((ids[r], sig) for r, sig in zip(rows.tolist(), found))
        base = {k: parts[group[0]].index.manifest[k]
                for k in ("model", "dim", "settings", "source")
                if k in parts[group[0]].index.manifest}
        name, seg = write_data_segment(index_dir, data, {**base, "origins": origins,
                                                         "created": _now()}, dim, sigs,
                                       languages)
        merged_rows += len(data.articles)
        for p in group:
            deleted.pop(entries[p]["name"], None)
            new_entries[p] = None
        new_entries[group[0]] = entry_of(name, seg, np.zeros(0))
        say(f"merged {len(group)} segment(s) into {name} ({len(data.articles)} articles)")
    kept = [e for e in new_entries if e is not None]
    info = {"at": _now(), "merged_segments": sum(len(g) for g in plan),
            "into": len(plan), "articles": merged_rows,
            "seconds": round(time.perf_counter() - started, 3),
            "optimize": bool(optimize)}
    return publish_version(index_dir, {**{k: v for k, v in manifest.items()
                                          if k not in ("version", "files", "segments")},
                                       "segments": kept, "last_merge": info,
                                       "created": _now()}, deleted)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def open_index(index_dir: Path) -> Index:
    """The live version of ``index_dir`` as one index (:meth:`Version.single`): for
    tools and tests that read the arrays of a freshly built index."""
    return open_version(index_dir).single()
