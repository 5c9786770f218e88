"""The index directory: immutable segments, versions that list them, atomic publishing.

Layout (schema 3, issue 26)::

    index/
      CURRENT              the name of the live version (replaced atomically)
      .build.lock          held by the one build that may write
      segments/s<time>-<pid>/   one immutable segment: the articles one build (or one
                           merge) wrote, never edited afterwards
        manifest.json      schema, model, dim, settings, article -> content hash (in row
                           order), origins, the files with their sizes and sha256
        articles.sqlite    articles: id, title, source, url, published, author, hash, text,
                           pages (JSON page start offsets), copy_of + similarity (unused
                           since schema 3: copies are the version's), file_date +
                           date_source
        chunks.npy         int32 (n, 5): article row, start, end, first sentence, end sentence
        sentences.npy      int32 (m, 2): start, end (offsets in the article text)
        chunk_vectors.npy  float32 (n, dim) unit vectors
        sentence_vectors.npy float16 (m, dim) unit vectors (late-chunked, see embed.py)
        vectors.faiss      FAISS inner-product index over the chunk vectors: exact, or
                           IVF from 50k chunks (see dense.py); memory-mapped on load
        terms/             keyword postings (keyword.py: scored with corpus statistics
                           summed at question time)
        minhash.npy        uint32 (articles, 128): each article's MinHash (copies.py), so
                           a build folds new articles without reading the old ones
      v<time>-<pid>/       one version: the segments that make it up, in order
        manifest.json      schema, model, dim, settings, segments (name, live counts per
                           language, its deleted rows' file), the copy-group files, the
                           last merge
        deleted-<segment>.npy  int32 sorted article rows of that segment that are
                           replaced or removed in this version (absent: none)
      copies/c<sha256:16>.json  syndicated-copy groups a build changed (COPIES below):
                           content-addressed, shared by the versions that list them

A build writes a new segment for new and changed articles (or none) and a new version
that lists it with the old segments and their deleted rows; nothing written before is
touched. A merge (segments.py) writes one segment from several and a version without
them. Everything goes to ``.tmp-*`` first and is renamed into place; ``CURRENT`` is
replaced last, so a build or merge killed at any point leaves the previous version
answering; :func:`collect_garbage` (under the build lock) removes what such a build
left, versions but the two newest, and segments and copy-group files no kept version
lists. Readers that
loaded a removed version keep reading it (open files and maps stay valid).

Nothing is pickled: numpy arrays load with ``allow_pickle=False``, the rest is JSON,
SQLite and FAISS's own binary format. :class:`Index` (one loaded segment) is immutable
and safe to share between threads.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..types import Article, IndexMismatch, IndexMissing
from .keyword import LOAD_ERRORS as KEYWORD_LOAD_ERRORS
from .keyword import ENGLISH, NPY_ERRORS
from .keyword import load_keyword_index

SCHEMA_VERSION = 3
# Schemas 1 and 2 wrote every version whole (no segments); a build over one re-embeds
# everything once (the builder treats it as no previous index), asking says to rebuild.
READABLE_SCHEMAS = (3,)
REBUILD_HINT = "run `python -m rag.build --rebuild`"
FILES = ("articles.sqlite", "chunks.npy", "sentences.npy", "chunk_vectors.npy",
         "sentence_vectors.npy", "vectors.faiss")
SEGMENTS = "segments"
# Syndicated-copy groups: a version lists files of changes (``copy_files``), each
# content-addressed in this folder and never rewritten: {"groups": {representative:
# [representative, members in corpus order]}, "removed": [representatives],
# "similarity": {member: similarity}}; applied in order they give the groups. A build
# writes only the groups it changed (at 100k articles the whole groups were 5 MB per
# version); past COPY_CHAIN files the next change writes them all into one.
COPIES = "copies"
COPY_CHAIN = 8


@dataclass
class IndexData:
    """Everything one version holds, in memory, as the build assembles it."""

    articles: list[Article]
    chunks: np.ndarray  # int32 (n, 5)
    sentences: np.ndarray  # int32 (m, 2)
    chunk_vectors: np.ndarray  # float32 (n, dim)
    sentence_vectors: np.ndarray  # float16 (m, dim)


# A sharded index (rag.index.shards) names its live cluster manifest in this file.
CLUSTER = "CLUSTER"


def is_cluster(index_dir: Path) -> bool:
    """Whether ``index_dir`` holds a sharded index (a ``CLUSTER`` file)."""
    return (Path(index_dir) / CLUSTER).is_file()


# -- writing ------------------------------------------------------------------

def current_version(index_dir: Path) -> str | None:
    try:
        name = (Path(index_dir) / "CURRENT").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def new_name(prefix: str) -> str:
    """A fresh segment or version name: ``<prefix><time ns>-<pid>`` (sorts by time)."""
    return f"{prefix}{time.time_ns()}-{os.getpid()}"


def write_segment(index_dir: Path, data: IndexData, manifest: dict[str, Any],
                  faiss_index, keyword_writer, extras: dict[str, np.ndarray] | None = None
                  ) -> tuple[str, dict[str, Any]]:
    """Write ``data`` as a new immutable segment of ``index_dir`` (not yet part of any
    version); ``extras`` are more arrays saved as ``<name>`` (the copy signatures).
    Returns (its name, its manifest). Raises OSError (disk full) after removing what it
    wrote."""
    index_dir = Path(index_dir)
    (index_dir / SEGMENTS).mkdir(parents=True, exist_ok=True)
    name = new_name("s")
    tmp = index_dir / SEGMENTS / f".tmp-{name}"
    tmp.mkdir()
    try:
        _write_articles(tmp / "articles.sqlite", data.articles, {})
        for fname, arr in (("chunks.npy", data.chunks), ("sentences.npy", data.sentences),
                           ("chunk_vectors.npy", data.chunk_vectors),
                           ("sentence_vectors.npy", data.sentence_vectors),
                           *(extras or {}).items()):
            with open(tmp / fname, "wb") as f:
                np.save(f, arr, allow_pickle=False)
        import faiss

        try:
            faiss.write_index(faiss_index, str(tmp / "vectors.faiss"))
        except RuntimeError as exc:  # FAISS reports a failed write (disk full) this way
            full = "No space" in str(exc)
            raise OSError(errno.ENOSPC if full else errno.EIO,
                          os.strerror(errno.ENOSPC) if full else f"cannot write ({exc})",
                          str(tmp / "vectors.faiss")) from exc
        keyword_writer(tmp / "terms")
        names = [*FILES, *(extras or {}),
                 *sorted(f"terms/{p.name}" for p in (tmp / "terms").iterdir())]
        manifest = {**manifest, "schema": SCHEMA_VERSION, "segment": name,
                    "files": {n: _file_info(tmp / n) for n in names}}
        _write_json(tmp / "manifest.json", manifest)
        _fsync_tree(tmp)
        os.rename(tmp, index_dir / SEGMENTS / name)
        _fsync_dir(index_dir / SEGMENTS)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return name, manifest


def publish_version(index_dir: Path, manifest: dict[str, Any],
                    deleted: dict[str, np.ndarray]) -> str:
    """Write a version (``manifest``: its ``segments`` list names segments already
    written; ``deleted``: segment -> sorted article rows deleted in it) and make it the
    live one by replacing ``CURRENT``. Returns its name. Call holding the build lock."""
    index_dir = Path(index_dir)
    version = new_name("v")
    tmp = index_dir / f".tmp-{version}"
    tmp.mkdir(parents=True)
    try:
        files = {}
        segments = []
        for entry in manifest["segments"]:
            rows = deleted.get(entry["name"])
            entry = {k: v for k, v in entry.items() if k != "deleted"}
            if rows is not None and len(rows):
                fname = f"deleted-{entry['name']}.npy"
                with open(tmp / fname, "wb") as f:
                    np.save(f, np.asarray(rows, dtype=np.int32), allow_pickle=False)
                files[fname] = _file_info(tmp / fname)
                entry["deleted"] = fname
            segments.append(entry)
        manifest = {**manifest, "schema": SCHEMA_VERSION, "version": version,
                    "segments": segments, "files": files}
        _write_json(tmp / "manifest.json", manifest)
        _fsync_tree(tmp)
        os.rename(tmp, index_dir / version)
        _fsync_dir(index_dir)
        _write_json(index_dir / "CURRENT.tmp", None, raw=version)
        os.replace(index_dir / "CURRENT.tmp", index_dir / "CURRENT")
        _fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    collect_garbage(index_dir, keep=2)
    return version


CopyGroups = tuple[list[list[str]], dict[str, float]]
_copy_files: dict[str, dict[str, Any]] = {}  # name -> contents (immutable files)


def read_copies(index_dir: Path, manifest: dict[str, Any]) -> CopyGroups:
    """The copy groups of a version or cluster ``manifest`` (groups sorted by their
    representative, each as recorded: representative first, members in corpus order)
    and each member's similarity. Inline ``copy_groups`` (cluster manifests) are read
    as they are. IndexMismatch when a listed file is missing or damaged."""
    if "copy_files" not in manifest:
        return ([list(g) for g in manifest.get("copy_groups") or ()],
                dict(manifest.get("copy_similarity") or {}))
    groups: dict[str, list[str]] = {}
    sims: dict[str, float] = {}
    for name in manifest["copy_files"]:
        change = _copy_file(Path(index_dir), name)
        for rep in change.get("removed", ()):
            groups.pop(rep, None)
        groups.update(change.get("groups", {}))
        sims.update(change.get("similarity", {}))
    ordered = [groups[rep] for rep in sorted(groups)]
    return ordered, {m: sims[m] for g in ordered for m in g[1:] if m in sims}


def _copy_file(index_dir: Path, name: str) -> dict[str, Any]:
    hit = _copy_files.get(name)
    if hit is not None:
        return hit
    if not (name.startswith("c") and name.endswith(".json")) or "/" in name or "\\" in name:
        raise IndexMismatch(f"bad copy-group file name {name!r} in {index_dir}; "
                            f"{REBUILD_HINT}")
    path = index_dir / COPIES / name
    try:
        raw = path.read_bytes()
        data = json.loads(raw)
    except FileNotFoundError as exc:
        raise IndexMismatch(f"the copy-group file {name} of {index_dir} is missing; "
                            f"{REBUILD_HINT}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexMismatch(f"the copy-group file {name} of {index_dir} is damaged; "
                            f"{REBUILD_HINT}") from exc
    if not isinstance(data, dict) or hashlib.sha256(raw).hexdigest()[:16] != name[1:17]:
        raise IndexMismatch(f"the copy-group file {name} of {index_dir} does not match "
                            f"its name; {REBUILD_HINT}")
    if len(_copy_files) > 256:
        _copy_files.clear()
    _copy_files[name] = data
    return data


def copy_files_for(index_dir: Path, before: dict[str, Any] | None, groups: list[list[str]],
                   sims: dict[str, float]) -> list[str]:
    """The ``copy_files`` of a new version whose copy groups are ``groups`` (each
    representative first) with ``sims``, over the version manifest ``before`` (None:
    none): ``before``'s list plus one file of what changed (nothing when nothing did),
    or one file of everything once the list would pass :data:`COPY_CHAIN` or
    ``before`` holds its groups inline. Files are written here (fsynced); a build
    killed after this leaves only unreferenced files, which garbage collection
    removes. Call holding the build lock."""
    index_dir = Path(index_dir)
    new = {g[0]: list(g) for g in groups}
    sims = {m: round(float(sims[m]), 6) for g in groups for m in g[1:] if m in sims}
    chain = list(before.get("copy_files", ())) if before and "copy_files" in before else None
    if chain is not None:
        old_groups, old_sims = read_copies(index_dir, before)
        old = {g[0]: g for g in old_groups}
        changed = {rep: g for rep, g in new.items()
                   if old.get(rep) != g or any(old_sims.get(m) != sims.get(m) for m in g[1:])}
        removed = sorted(rep for rep in old if rep not in new)
        if not changed and not removed:
            return chain
        if len(chain) < COPY_CHAIN:
            return chain + [_write_copy_file(index_dir, {
                "groups": changed, "removed": removed,
                "similarity": {m: sims[m] for g in changed.values() for m in g[1:]
                               if m in sims}})]
    if not new:
        return []
    return [_write_copy_file(index_dir, {"groups": new, "removed": [], "similarity": sims})]


def _write_copy_file(index_dir: Path, change: dict[str, Any]) -> str:
    raw = json.dumps(change, ensure_ascii=False, sort_keys=True,
                     separators=(",", ":")).encode("utf-8")
    name = f"c{hashlib.sha256(raw).hexdigest()[:16]}.json"
    folder = index_dir / COPIES
    folder.mkdir(exist_ok=True)
    path = folder / name
    if not path.exists():
        tmp = folder / f".tmp-{name}-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    return name


def collect_garbage(index_dir: Path, keep: int = 2) -> None:
    """Remove unfinished temporary versions and segments, versions newer than the live
    one (a build killed after renaming its version into place but before publishing
    it: under the build lock nothing else can have written them), all but the ``keep``
    newest of the rest (the live one is always kept), and every segment no kept version
    lists. Call only while holding the build lock."""
    index_dir = Path(index_dir)
    live = current_version(index_dir)
    for tmp in [*index_dir.glob(".tmp-v*"), *index_dir.glob(f"{SEGMENTS}/.tmp-*")]:
        shutil.rmtree(tmp, ignore_errors=True)
    versions = sorted((p for p in index_dir.glob("v*") if p.is_dir()),
                      key=lambda p: _version_time(p.name), reverse=True)
    if live is not None:
        newer = [p for p in versions if p.name != live
                 and _version_time(p.name) > _version_time(live)]
        for orphan in newer:
            shutil.rmtree(orphan, ignore_errors=True)
        versions = [p for p in versions if p not in newer]
    kept = []
    for i, old in enumerate(versions):
        if i < keep or old.name == live:
            kept.append(old)
        else:
            shutil.rmtree(old, ignore_errors=True)
    used: set[str] = set()
    used_copies: set[str] = set()
    for v in kept:
        try:
            listed = json.loads((v / "manifest.json").read_text(encoding="utf-8"))
            used.update(e["name"] for e in listed.get("segments", ()))
            used_copies.update(listed.get("copy_files", ()))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue  # a damaged version: its segments go unless another lists them
    seg_dir = index_dir / SEGMENTS
    if seg_dir.is_dir():
        for seg in seg_dir.iterdir():
            if seg.name.startswith("s") and seg.name not in used:
                shutil.rmtree(seg, ignore_errors=True)
    copies_dir = index_dir / COPIES
    if copies_dir.is_dir():
        for f in copies_dir.iterdir():
            if f.name not in used_copies:
                f.unlink(missing_ok=True)


def _version_time(name: str) -> int:
    try:
        return int(name[1:].split("-")[0])
    except ValueError:
        return 0


def _write_articles(path: Path, articles: list[Article],
                    copies: dict[str, tuple[str, float]]) -> None:
    try:
        _write_sqlite(path, articles, copies)
    except sqlite3.Error as exc:  # e.g. "database or disk is full": an OSError to callers
        full = "full" in str(exc)
        raise OSError(errno.ENOSPC if full else errno.EIO,
                      f"{os.strerror(errno.ENOSPC) if full else 'cannot write'} ({exc})",
                      str(path)) from exc


def _write_sqlite(path: Path, articles: list[Article],
                  copies: dict[str, tuple[str, float]]) -> None:
    con = sqlite3.connect(path)
    try:
        con.execute("CREATE TABLE articles (row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
                    " title TEXT, source TEXT, url TEXT, published TEXT, author TEXT,"
                    " hash TEXT NOT NULL, text TEXT NOT NULL, pages TEXT, copy_of TEXT,"
                    " similarity REAL, file_date TEXT, date_source TEXT)")
        con.executemany("INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        [(i, a.id, a.title, a.source, a.url, a.published, a.author,
                          a.content_hash, a.text,
                          json.dumps(list(a.pages)) if a.pages else None,
                          *(copies.get(a.id) or (None, None)), a.file_date, a.date_source)
                         for i, a in enumerate(articles)])
        con.commit()
    finally:
        con.close()


def _write_json(path: Path, obj: Any, raw: str | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(raw if raw is not None else json.dumps(obj, ensure_ascii=False, indent=1))
        f.flush()
        os.fsync(f.fileno())


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _file_info(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------

class Index:
    """One loaded segment, complete once constructed: passages, sentences, vectors, the
    FAISS index and the keyword postings (``keyword``). Load errors are raised as
    :class:`IndexMismatch`. Read-only (``copies`` is filled by the version that
    presents it alone, :meth:`rag.index.segments.Version.single`); safe to share
    between threads."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        from .dense import load as load_vectors

        self.path = path
        self.manifest = manifest
        self.version = self.name = manifest["segment"]
        self.chunks = _load_npy(path / "chunks.npy", np.int32, 2, 5)
        self.sentences = _load_npy(path / "sentences.npy", np.int32, 2, 2)
        self.sentence_vectors = _load_npy(path / "sentence_vectors.npy", np.float16, 2,
                                          manifest["dim"])
        self.chunk_vectors = _load_npy(path / "chunk_vectors.npy", np.float32, 2,
                                       manifest["dim"])
        n, m = len(self.chunks), len(self.sentences)
        if len(self.chunk_vectors) != n:
            raise IndexMismatch(f"index at {path} is inconsistent (vectors); {REBUILD_HINT}")
        if len(self.sentence_vectors) != m or (n and self.chunks[:, 4].max() > m):
            raise IndexMismatch(f"index at {path} is inconsistent (sentences); {REBUILD_HINT}")
        try:
            self.faiss = load_vectors(path / "vectors.faiss", manifest.get("vector_index"))
        except RuntimeError as exc:
            raise IndexMismatch(f"index file vectors.faiss is damaged ({exc}); "
                                f"{REBUILD_HINT}") from exc
        if self.faiss.ntotal != n or self.faiss.d != manifest["dim"]:
            raise IndexMismatch(f"index file vectors.faiss does not match the manifest; "
                                f"{REBUILD_HINT}")
        # One connection, opened now and shared (under a lock): a version removed by a
        # later build's clean-up stays readable through it, from any thread.
        self._con = sqlite3.connect(f"file:{path / 'articles.sqlite'}?mode=ro", uri=True,
                                    check_same_thread=False)
        self._db_lock = threading.Lock()
        try:
            rows = self._query("SELECT row, id FROM articles ORDER BY row")
        except sqlite3.DatabaseError as exc:
            raise IndexMismatch(f"index file articles.sqlite is damaged ({exc}); "
                                f"{REBUILD_HINT}") from exc
        self.article_ids = [r[1] for r in rows]
        self._columns = {r[1] for r in self._query("PRAGMA table_info(articles)")}
        # row -> every row holding the same story (itself included): set by a version
        # presenting this segment alone; copies are a version's, not a segment's
        self.copies: dict[int, tuple[int, ...]] = {}
        if n and self.chunks[:, 0].max() >= len(rows):
            raise IndexMismatch(f"index at {path} is inconsistent (articles); {REBUILD_HINT}")
        self._articles: dict[int, Article] = {}
        self._memo: dict[str, Any] = {}
        self._cache_lock = threading.Lock()
        try:  # the keyword postings of the same passages
            self.keyword = load_keyword_index(path / "terms")
        except KEYWORD_LOAD_ERRORS as exc:
            raise IndexMismatch(f"the keyword index in {path / 'terms'} is damaged ({exc}); "
                                f"{REBUILD_HINT}") from exc
        if self.keyword.n_docs != n:
            raise IndexMismatch(f"index at {path} is inconsistent (terms); {REBUILD_HINT}")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._db_lock:
            return self._con.execute(sql, params).fetchall()

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

    @property
    def analyzers(self) -> tuple[str, ...]:
        """The keyword analyzers of this segment's articles besides English, sorted."""
        return tuple(sorted(self.manifest.get("analyzers") or ()))

    def analyzer(self, row: int) -> str:
        """The keyword analyzer the article at ``row`` was indexed with
        (:func:`rag.index.keyword.analyzer_of` its language; "en" in a segment written
        before analyzers existed)."""
        of = self._memo.get("analyzers")
        if of is None:
            of = self._memo["analyzers"] = {
                int(r): a for a, rows in (self.manifest.get("analyzers") or {}).items()
                for r in rows}
        return of.get(int(row), ENGLISH)

    def article(self, row: int) -> Article:
        """The article at ``row`` (cached after the first read)."""
        with self._cache_lock:
            hit = self._articles.get(row)
        if hit is not None:
            return hit
        found = self._query("SELECT id, title, text, source, url, published, author, hash,"
                            f" {self._optional('pages', 'file_date', 'date_source')}"
                            " FROM articles WHERE row = ?", (int(row),))
        r = found[0] if found else None
        if r is None:
            raise IndexMismatch(f"article row {row} missing from the index; {REBUILD_HINT}")
        try:
            page_starts = tuple(int(p) for p in json.loads(r[8])) if r[8] else ()
        except (ValueError, TypeError) as exc:
            raise IndexMismatch(f"article row {row} has a damaged page table; "
                                f"{REBUILD_HINT}") from exc
        art = Article(id=r[0], title=r[1], text=r[2], source=r[3], url=r[4], published=r[5],
                      author=r[6], content_hash=r[7], pages=page_starts, file_date=r[9],
                      date_source=r[10])
        with self._cache_lock:
            if len(self._articles) > 4096:
                self._articles.clear()
            self._articles[row] = art
        return art

    def _optional(self, *columns: str) -> str:
        """The columns, each as NULL where this version's table lacks it (an older
        schema), for a SELECT list."""
        return ", ".join(c if c in self._columns else "NULL" for c in columns)

    def list_articles(self, rows: np.ndarray | None = None) -> list[dict[str, Any]]:
        """id, title, source, url, published, author, file_date, date_source and chunk
        count of every article (of ``rows`` only, when given), in row order."""
        counts = np.bincount(self.chunks[:, 0], minlength=len(self.article_ids)) \
            if self.n_chunks else np.zeros(len(self.article_ids), int)
        found = self._query("SELECT row, id, title, source, url, published, author, "
                            f"{self._optional('file_date', 'date_source')}"
                            " FROM articles ORDER BY row")
        keep = None if rows is None else set(int(r) for r in rows)
        return [{"id": r[1], "title": r[2], "source": r[3], "url": r[4], "published": r[5],
                 "author": r[6], "file_date": r[7], "date_source": r[8],
                 "chunks": int(counts[r[0]])} for r in found if keep is None or r[0] in keep]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each term over this segment's passages."""
        return self.keyword.stats(terms).idf_all(terms)

    def article_rows(self) -> list[tuple]:
        """(id, source, url, published, author) of every article, in row order."""
        return self._query("SELECT id, source, url, published, author FROM articles"
                           " ORDER BY row")

    def row_of(self, article_id: str) -> int | None:
        """The row of the article with this id, or None."""
        rows = self.memo("row-of", lambda: {a: i for i, a in enumerate(self.article_ids)})
        return rows.get(article_id)

    def memo(self, key: str, factory):
        """``factory()`` computed once per loaded version and kept (derived read-only data,
        such as the columns filters read). Thread-safe; two first callers may both compute
        it, one result is kept."""
        with self._cache_lock:
            if key in self._memo:
                return self._memo[key]
        value = factory()
        with self._cache_lock:
            return self._memo.setdefault(key, value)

    def close(self) -> None:
        with self._db_lock:
            self._con.close()


def read_manifest(index_dir: Path, version: str | None = None, *,
                  verify: bool = True) -> tuple[Path, dict[str, Any]]:
    """The live version's folder and manifest (or those of ``version``, one of the
    folder's versions); raises IndexMissing / IndexMismatch. With ``verify`` (the
    default, before a version is loaded) every file it lists is checked for its size
    and sha256; ``verify=False`` reads the manifest alone (a status line)."""
    index_dir = Path(index_dir)
    asked, version = version, version or current_version(index_dir)
    if version is None:
        raise IndexMissing(f"no index in {index_dir}: run `python -m rag.build` first")
    if asked and (not version.startswith("v") or "/" in version or "\\" in version
                  or not (index_dir / version).is_dir()):
        raise IndexMissing(f"no index version {version!r} in {index_dir}")
    path = index_dir / version
    manifest = _read_json_manifest(path, f"index version {version} in {index_dir}")
    if manifest.get("schema") not in READABLE_SCHEMAS:
        found = manifest.get("schema")
        older = isinstance(found, int) and found < SCHEMA_VERSION
        raise IndexMismatch(
            f"index in {index_dir} has schema {found!r}"
            + (" (written whole by an older rag, before segments)" if older else "")
            + f"; this version of rag reads schema {SCHEMA_VERSION}; {REBUILD_HINT}")
    segments = manifest.get("segments")
    if not isinstance(segments, list) or not all(
            isinstance(e, dict) and isinstance(e.get("name"), str) for e in segments):
        raise IndexMismatch(f"the manifest in {path} does not list its segments; "
                            f"{REBUILD_HINT}")
    if verify:
        _verify_files(path, manifest, ())
    return path, manifest


def read_segment(index_dir: Path, name: str, *, verify: bool = True
                 ) -> tuple[Path, dict[str, Any]]:
    """A segment's folder and manifest; with ``verify`` every file it lists is checked
    for its size and sha256. Raises IndexMismatch."""
    if not name.startswith("s") or "/" in name or "\\" in name:
        raise IndexMismatch(f"bad segment name {name!r} in {index_dir}; {REBUILD_HINT}")
    path = Path(index_dir) / SEGMENTS / name
    manifest = _read_json_manifest(path, f"segment {name} of {index_dir}")
    if manifest.get("schema") != SCHEMA_VERSION or manifest.get("segment") != name:
        raise IndexMismatch(f"the manifest of segment {name} in {index_dir} is not a "
                            f"schema {SCHEMA_VERSION} segment's; {REBUILD_HINT}")
    if verify:
        _verify_files(path, manifest, FILES)
    return path, manifest


def _read_json_manifest(path: Path, what: str) -> dict[str, Any]:
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexMismatch(f"{what} is missing its manifest; {REBUILD_HINT}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexMismatch(f"the manifest in {path} is not valid JSON; {REBUILD_HINT}") from exc
    if not isinstance(manifest, dict):
        raise IndexMismatch(f"the manifest in {path} is not an object; {REBUILD_HINT}")
    return manifest


def _verify_files(path: Path, manifest: dict[str, Any], required: tuple[str, ...]) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(n in files for n in required) \
            or not all(isinstance(info, dict) for info in files.values()):
        raise IndexMismatch(f"the manifest in {path} does not list every index file; "
                            f"{REBUILD_HINT}")
    for name, info in files.items():
        f = path / name
        if not f.is_file():
            raise IndexMismatch(f"index file {name} is missing from {path}; {REBUILD_HINT}")
        if f.stat().st_size != info.get("bytes"):
            raise IndexMismatch(f"index file {name} has {f.stat().st_size} bytes, the manifest "
                                f"says {info.get('bytes')} (truncated or replaced); "
                                f"{REBUILD_HINT}")
        if _file_info(f)["sha256"] != info.get("sha256"):  # same size, other bytes
            raise IndexMismatch(f"index file {name} in {path} does not match the checksum in "
                                f"the manifest (damaged or replaced); {REBUILD_HINT}")


def check_compatible(manifest: dict[str, Any], model_id: str, settings: dict[str, Any]) -> None:
    """Raise IndexMismatch if the index was built with another model or settings."""
    if manifest.get("model") != model_id:
        raise IndexMismatch(f"the index was built with model {manifest.get('model')!r}, "
                            f"this configuration uses {model_id!r}; {REBUILD_HINT}")
    built = manifest.get("settings", {})
    diff = {k: (built.get(k), v) for k, v in settings.items() if built.get(k) != v}
    if diff:
        what = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise IndexMismatch(f"the index was built with other settings ({what}); {REBUILD_HINT}")


def _load_npy(path: Path, dtype, ndim: int, width: int) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except NPY_ERRORS as exc:
        raise IndexMismatch(f"index file {path.name} is damaged ({exc}); {REBUILD_HINT}") from exc
    if arr.dtype != dtype or arr.ndim != ndim or (arr.shape[1] != width):
        raise IndexMismatch(f"index file {path.name} has shape {arr.shape} {arr.dtype}, "
                            f"expected (*, {width}) {np.dtype(dtype)}; {REBUILD_HINT}")
    return arr
