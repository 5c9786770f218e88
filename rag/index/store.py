"""The index directory: versions written whole, published atomically, loaded read-only.

Layout::

    index/
      CURRENT              the name of the live version (replaced atomically)
      .build.lock          held by the one build that may write
      v<time>-<pid>/       one complete, immutable version
        manifest.json      schema, model, dim, settings, article -> content hash, files
        articles.sqlite    articles: id, title, source, url, published, author, hash, text,
                           pages (JSON page start offsets), copy_of + similarity (the
                           article this one is a near-duplicate of; schema 2),
                           file_date + date_source (a PDF's or DOCX's creation date,
                           where the date came from; issue 24: an older index has
                           neither column and reads them as None)
        chunks.npy         int32 (n, 5): article row, start, end, first sentence, end sentence
        sentences.npy      int32 (m, 2): start, end (offsets in the article text)
        chunk_vectors.npy  float32 (n, dim) unit vectors (kept for incremental builds)
        sentence_vectors.npy float16 (m, dim) unit vectors (late-chunked, see embed.py)
        vectors.faiss      FAISS inner-product index over the chunk vectors: exact, or
                           IVF from 50k chunks (see vectors.py); memory-mapped on load
        bm25/              bm25s keyword index over the chunks (numpy + JSON files)

Nothing is pickled: numpy arrays load with ``allow_pickle=False``, the rest is JSON,
SQLite and FAISS's own binary format. A build writes ``.tmp-<version>/``, renames it
to ``<version>/`` and then replaces ``CURRENT``; readers that loaded the old version
keep working, and a build killed at any point leaves the old version live. The
previous version is kept one more build, for readers still opening it.

:class:`Index` is immutable once loaded and safe to share between threads.
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
from .keyword import load_keyword_index

SCHEMA_VERSION = 2
# Schema 1 (before page tables and copies) reads as articles without pages or copies.
READABLE_SCHEMAS = (1, 2)
REBUILD_HINT = "run `python -m rag.build --rebuild`"
FILES = ("articles.sqlite", "chunks.npy", "sentences.npy", "chunk_vectors.npy",
         "sentence_vectors.npy", "vectors.faiss")


@dataclass
class IndexData:
    """Everything one version holds, in memory, as the build assembles it."""

    articles: list[Article]
    chunks: np.ndarray  # int32 (n, 5)
    sentences: np.ndarray  # int32 (m, 2)
    chunk_vectors: np.ndarray  # float32 (n, dim)
    sentence_vectors: np.ndarray  # float16 (m, dim)
    copies: dict[str, tuple[str, float]] | None = None  # id -> (copy_of id, similarity)


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


def write_version(index_dir: Path, data: IndexData, manifest: dict[str, Any],
                  faiss_index, bm25_writer) -> str:
    """Write a complete version next to the live one and publish it. Returns its name."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    version = f"v{time.time_ns()}-{os.getpid()}"
    tmp = index_dir / f".tmp-{version}"
    tmp.mkdir()
    try:
        _write_articles(tmp / "articles.sqlite", data.articles, data.copies or {})
        for name, arr in (("chunks.npy", data.chunks), ("sentences.npy", data.sentences),
                          ("chunk_vectors.npy", data.chunk_vectors),
                          ("sentence_vectors.npy", data.sentence_vectors)):
            with open(tmp / name, "wb") as f:
                np.save(f, arr, allow_pickle=False)
        import faiss

        try:
            faiss.write_index(faiss_index, str(tmp / "vectors.faiss"))
        except RuntimeError as exc:  # FAISS reports a failed write (disk full) this way
            full = "No space" in str(exc)
            raise OSError(errno.ENOSPC if full else errno.EIO,
                          os.strerror(errno.ENOSPC) if full else f"cannot write ({exc})",
                          str(tmp / "vectors.faiss")) from exc
        bm25_writer(tmp / "bm25")
        names = [*FILES, *sorted(f"bm25/{p.name}" for p in (tmp / "bm25").iterdir())]
        manifest = {**manifest, "schema": SCHEMA_VERSION, "version": version,
                    "files": {name: _file_info(tmp / name) for name in names}}
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


def collect_garbage(index_dir: Path, keep: int = 2) -> None:
    """Remove unfinished temporary versions, versions newer than the live one (a build
    killed after renaming its version into place but before publishing it: under the
    build lock nothing else can have written them), and all but the ``keep`` newest of
    the rest (the live one is always kept). Call only while holding the build lock."""
    index_dir = Path(index_dir)
    live = current_version(index_dir)
    for tmp in index_dir.glob(".tmp-v*"):
        shutil.rmtree(tmp, ignore_errors=True)
    versions = sorted((p for p in index_dir.glob("v*") if p.is_dir()),
                      key=lambda p: _version_time(p.name), reverse=True)
    if live is not None:
        newer = [p for p in versions if p.name != live
                 and _version_time(p.name) > _version_time(live)]
        for orphan in newer:
            shutil.rmtree(orphan, ignore_errors=True)
        versions = [p for p in versions if p not in newer]
    for old in versions[keep:]:
        if old.name != live:
            shutil.rmtree(old, ignore_errors=True)


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
    """One loaded version, complete once constructed: passages, sentences, vectors, the
    FAISS index and the keyword index (``keyword``). Load errors are raised as
    :class:`IndexMismatch`. Read-only; safe to share between threads."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        from .dense import load as load_vectors

        self.path = path
        self.manifest = manifest
        self.version = manifest["version"]
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
        # near-duplicate copies: row -> the row of the article it copies (schema 2)
        self.copy_of: dict[int, int] = {}
        if "copy_of" in self._columns:
            row_of = {aid: i for i, aid in enumerate(self.article_ids)}
            for row, target in self._query("SELECT row, copy_of FROM articles"
                                           " WHERE copy_of IS NOT NULL"):
                if target in row_of:
                    self.copy_of[int(row)] = row_of[target]
        groups: dict[int, list[int]] = {}
        for row, target in self.copy_of.items():
            groups.setdefault(target, [target]).append(row)
        # row -> every row holding the same story (itself included), for rows with copies
        self.copies: dict[int, tuple[int, ...]] = {
            r: tuple(sorted(members)) for members in groups.values() for r in members}
        if n and self.chunks[:, 0].max() >= len(rows):
            raise IndexMismatch(f"index at {path} is inconsistent (articles); {REBUILD_HINT}")
        self._articles: dict[int, Article] = {}
        self._memo: dict[str, Any] = {}
        self._cache_lock = threading.Lock()
        try:  # the keyword index over the same passages (None for an index of no text)
            self.keyword = load_keyword_index(path / "bm25")
        except KEYWORD_LOAD_ERRORS as exc:
            raise IndexMismatch(f"the keyword index in {path / 'bm25'} is damaged ({exc}); "
                                f"{REBUILD_HINT}") from exc

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._db_lock:
            return self._con.execute(sql, params).fetchall()

    @property
    def n_chunks(self) -> int:
        return len(self.chunks)

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

    def list_articles(self) -> list[dict[str, Any]]:
        """id, title, source, url, published, author, file_date, date_source, chunk count
        and ``copy_of`` (the id of the article whose story this one repeats, else None) of
        every article."""
        counts = np.bincount(self.chunks[:, 0], minlength=len(self.article_ids)) \
            if self.n_chunks else np.zeros(len(self.article_ids), int)
        rows = self._query("SELECT row, id, title, source, url, published, author, "
                           f"{self._optional('file_date', 'date_source')}"
                           " FROM articles ORDER BY row")
        return [{"id": r[1], "title": r[2], "source": r[3], "url": r[4], "published": r[5],
                 "author": r[6], "file_date": r[7], "date_source": r[8],
                 "chunks": int(counts[r[0]]),
                 "copy_of": self.article_ids[self.copy_of[r[0]]] if r[0] in self.copy_of
                 else None} for r in rows]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each term over this version's passages
        (1.0 each in an index of no text)."""
        if self.keyword is None:
            return {t: 1.0 for t in terms}
        return self.keyword.idf(terms, self.n_chunks)

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
    default, before an index is loaded) every file listed is checked for its size and
    sha256; ``verify=False`` reads the manifest alone (a status line: cheap however large
    the index)."""
    index_dir = Path(index_dir)
    asked, version = version, version or current_version(index_dir)
    if version is None:
        raise IndexMissing(f"no index in {index_dir}: run `python -m rag.build` first")
    if asked and (not version.startswith("v") or "/" in version or "\\" in version
                  or not (index_dir / version).is_dir()):
        raise IndexMissing(f"no index version {version!r} in {index_dir}")
    path = index_dir / version
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexMismatch(f"index version {version} in {index_dir} is missing its "
                            f"manifest; {REBUILD_HINT}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexMismatch(f"the manifest in {path} is not valid JSON; {REBUILD_HINT}") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") not in READABLE_SCHEMAS:
        found = manifest.get("schema") if isinstance(manifest, dict) else None
        raise IndexMismatch(f"index in {index_dir} has schema {found!r}, this version of rag "
                            f"reads schema {' or '.join(map(str, READABLE_SCHEMAS))}; {REBUILD_HINT}")
    if not verify:
        return path, manifest
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(n in files for n in FILES) \
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
    return path, manifest


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


def open_index(index_dir: Path) -> Index:
    path, manifest = read_manifest(index_dir)
    return Index(path, manifest)


def _load_npy(path: Path, dtype, ndim: int, width: int) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise IndexMismatch(f"index file {path.name} is damaged ({exc}); {REBUILD_HINT}") from exc
    if arr.dtype != dtype or arr.ndim != ndim or (arr.shape[1] != width):
        raise IndexMismatch(f"index file {path.name} has shape {arr.shape} {arr.dtype}, "
                            f"expected (*, {width}) {np.dtype(dtype)}; {REBUILD_HINT}")
    return arr
