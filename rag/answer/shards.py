"""Asking one index or many: the coordinator every answer goes through (issue 25's one
path; issue 26's segments), the same answer as one index built fresh over all the
articles, text, offsets, citations and scores.

Two halves, which talk in plain data (lists, dicts, numpy arrays, frozen dataclasses),
so that the shards can live in other processes or on other machines (Ray Serve:
:mod:`rag.distributed.serve`):

* :class:`ShardReader`, one per index folder (the whole index, or one shard): the BM25
  statistics of its live passages, its dense and keyword top ``n`` under the filters
  over every segment of the version it is asked about (:mod:`rag.index.segments`), the
  passages asked for, articles. It loads the version the coordinator names (and keeps
  the last few), so one answer never mixes two versions.
* :class:`ShardedIndex`, the coordinator: embeds nothing itself (the caller passes the
  question vector, computed once), sums the BM25 statistics of every folder (when there
  are several), gathers every folder's top ``n``, merges each ranking by (score, article
  id, start) (the same total order as one index), fuses with the same RRF, fetches the
  fused passages and hands them, as a :class:`GatheredView` (a
  :class:`rag.answer.corpus.View`), to the unchanged answer selection of
  :mod:`rag.answer.extract`. It is the :class:`rag.answer.corpus.Corpus` asking reads,
  over one folder (:func:`one_folder`) or a sharded index's.

Equality holds because every number is computed from the same inputs in the same order:
dense scores by FAISS per vector, BM25 scores per passage from corpus-wide statistics
summed over live passages when asked, the passage cosines and sentence cosines by one
matrix product over the gathered rows in the fused order, inverse document frequencies
from the summed document counts. ``tests/index/test_shards.py`` and
``tests/index/test_segments.py`` check it against fresh builds, in the three retrieval
modes, and that folder-local BM25 statistics break it.

Thread-safe: readers and the coordinator hold only loaded, read-only versions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import Config
from ..index.keyword import ENGLISH, KeywordStats, idf_from, question_words
from ..index.shards import shard_of
from ..index.segments import Version
from ..types import Article, IndexMismatch
from .corpus import Retrieval, in_scope_count, timed
from .filters import allowed_chunks
from .search import TIE_MARGIN, Hit, fuse, keyword_search, ranked_dense


# -- one index folder ----------------------------------------------------------

class ShardReader:
    """One index folder (a whole index, or one shard of a sharded index), read at the
    versions the coordinator names: every live segment of the version, each passage
    named ``(segment position, passage)``. Thread-safe."""

    KEEP = 3  # versions kept loaded: the live one and those in-flight answers still use

    def __init__(self, shard_dir: str | Path, config: Config | None = None) -> None:
        self.dir = Path(shard_dir)
        self.cfg = config or Config.from_env()
        self._loaded: OrderedDict[str, Version] = OrderedDict()
        self._lock = threading.Lock()

    def index(self, version: str) -> Version:
        """The loaded ``version`` (checked against the configured model)."""
        with self._lock:
            if version in self._loaded:
                self._loaded.move_to_end(version)
                return self._loaded[version]
        from ..index.live import load_version

        return self.keep(load_version(self.dir, self.cfg, version))

    def keep(self, loaded: Version) -> Version:
        """Hold ``loaded`` (a version this process already loaded) for later calls."""
        with self._lock:
            loaded = self._loaded.setdefault(loaded.version, loaded)
            while len(self._loaded) > self.KEEP:
                self._loaded.popitem(last=False)
        return loaded

    def stats(self, version: str, question: str, terms: list[str] = ()) -> KeywordStats:
        """This folder's share of the BM25 statistics for the question's terms and
        ``terms`` (live passages only)."""
        ver = self.index(version)
        return ver.stats(_stat_terms(question, terms, ver.analyzers))

    def retrieve(self, version: str, question: str, qvec, n: int, mode: str,
                 filters=None, terms: list[str] = (),
                 stats: KeywordStats | None = None) -> dict[str, Any]:
        """The dense and keyword top ``n`` under ``filters`` over every live segment,
        each as ``(article id, start, score, (segment, passage))`` in the total order;
        the BM25 statistics used (``stats``: the whole corpus's, summed by the caller;
        None: this folder's own, which are the corpus's when it is the whole index);
        with filters, how many passages and articles they allow."""
        ver = self.index(version)
        words = question_words(question, ver.analyzers)
        if stats is None:
            stats = ver.stats(_stat_terms(question, terms, ver.analyzers))
        dense, keyword, in_scope, allowed_n = [], [], 0, 0
        for p, part in enumerate(ver.parts):
            index = part.index
            given = allowed_chunks(index, filters)
            allowed = part.restrict(given)
            if given is not None:
                in_scope += in_scope_count(index, allowed)
                allowed_n += len(allowed)
            if allowed is not None and not len(allowed):
                continue
            if mode in ("hybrid", "dense") and qvec is not None:
                dense += [(*_key(index, c), s, (p, c))
                          for c, s in ranked_dense(index, qvec, n, allowed)]
            if mode in ("hybrid", "keyword"):
                keyword += [(*_key(index, c), s, (p, c))
                            for c, s in keyword_search(index, words, n, allowed, stats)]
        return {"n_chunks": ver.n_chunks, "stats": stats,
                "in_scope": in_scope if filters else None,
                "allowed": allowed_n if filters else None,
                "dense": _in_total_order(dense)[:n], "keyword": _in_total_order(keyword)[:n]}

    def fetch(self, version: str, chunks: list[tuple[int, int]]) -> list[dict[str, Any]]:
        """Each passage's article, offsets, sentences and vectors."""
        ver = self.index(version)
        out = []
        for p, c in chunks:
            index = ver.parts[p].index
            row, start, end, s_lo, s_hi = (int(x) for x in index.chunks[c])
            out.append({"article": index.article(row), "analyzer": index.analyzer(row),
                        "start": start, "end": end,
                        "sentences": np.array(index.sentences[s_lo:s_hi]),
                        "sentence_vectors": np.array(index.sentence_vectors[s_lo:s_hi]),
                        "chunk_vector": np.array(index.chunk_vectors[c])})
        return out

    def doc_freqs(self, version: str, terms: list[str]) -> dict[str, int]:
        return self.index(version).stats(list(terms)).df

    def article(self, version: str, article_id: str) -> Article | None:
        return self.index(version).article(article_id)

    def dated(self, version: str) -> bool:
        """Whether any live article here has a publication date."""
        return self.index(version).dated()


def _stat_terms(question: str, terms: Sequence[str], analyzers: Sequence[str]
                ) -> list[str]:
    return list(dict.fromkeys([*question_words(question, analyzers), *terms]))


def _key(index, chunk: int) -> tuple[str, int]:
    row, start = (int(x) for x in index.chunks[chunk][:2])
    return index.article_ids[row], start


def _in_total_order(items: list[tuple]) -> list[tuple]:
    return sorted(items, key=lambda r: (-r[2], r[0], r[1]))


# -- the coordinator --------------------------------------------------------------

class LocalShards:
    """Index folders read in this process: ``call(method, per-folder args)`` runs each in
    turn."""

    def __init__(self, readers: list[ShardReader]) -> None:
        self.readers = readers

    @classmethod
    def of(cls, dirs: list[Path], config: Config) -> "LocalShards":
        return cls([ShardReader(d, config) for d in dirs])

    def call(self, method: str, args: list[tuple], shards: list[int] | None = None) -> list:
        shards = range(len(self.readers)) if shards is None else shards
        return [getattr(self.readers[i], method)(*a) for i, a in zip(shards, args)]


def one_folder(index_dir: Path, version: Version, reader: ShardReader) -> "ShardedIndex":
    """The coordinator over one index folder at its loaded ``version`` (held by
    ``reader``): the Corpus of a plain index."""
    reader.keep(version)
    manifest = {"shards": 1, "shard_versions": [{"version": version.version}],
                "counts": {"chunks": version.n_chunks}, "copy_groups": version.groups,
                "dim": version.manifest["dim"]}
    return ShardedIndex(version.version, manifest, LocalShards([reader]))


class ShardedIndex:
    """A sharded index at one cluster version, read through ``shards`` (an object with
    ``call(method, args, shards=None) -> results``: :class:`LocalShards`, or Ray Serve
    handles in :mod:`rag.distributed.serve`)."""

    # each folder scores BM25 with its own statistics: wrong on purpose (answers then
    # differ from one index's), for the test that shows the summed statistics matter
    local_stats = False

    def __init__(self, name: str, manifest: dict[str, Any], shards) -> None:
        self.version = name
        self.manifest = manifest
        self.shards = shards
        self.n_shards = int(manifest["shards"])
        self.versions = [e["version"] for e in manifest["shard_versions"]]
        self.n_chunks = int(manifest["counts"]["chunks"])
        self.groups = [list(g) for g in manifest.get("copy_groups", ())]
        self._dated: bool | None = None

    def has_dates(self) -> bool:
        """Whether any article of any shard has a publication date."""
        if self._dated is None:
            self._dated = any(self.shards.call("dated", [(v,) for v in self.versions]))
        return self._dated

    def article(self, article_id: str) -> Article | None:
        shard = shard_of(article_id, self.n_shards)
        return self.shards.call("article", [(self.versions[shard], article_id)],
                                shards=[shard])[0]

    def retrieve(self, query: str, embed, n: int, mode: str, filters=None,
                 terms: Sequence[str] = ()) -> Retrieval:
        """The fused top ``n`` over every shard as the single index ranks them
        (:class:`rag.answer.corpus.Corpus`); the view is a :class:`GatheredView`."""
        qvec, ms = timed(embed)  # before the shards are asked: they rank by it
        stats = None  # one folder: its own statistics are the corpus's
        if len(self.versions) > 1 and not self.local_stats:  # the whole corpus's BM25
            stats = KeywordStats(0, 0, {})
            for part in self.shards.call("stats", [(v, query, list(terms))
                                                   for v in self.versions]):
                stats = stats.plus(part)
        got = self.shards.call("retrieve", [(v, query, qvec, n + TIE_MARGIN, mode,
                                             filters, list(terms), stats)
                                            for v in self.versions])
        if stats is None:
            stats = KeywordStats(0, 0, {})
            for g in got:
                stats = stats.plus(g["stats"])
        in_scope = None
        if filters:
            in_scope = sum(g["in_scope"] for g in got)
            if not sum(g["allowed"] for g in got):
                return Retrieval(None, [], 0, ms)
        dense = _merge([g["dense"] for g in got], n)
        keyword = _merge([g["keyword"] for g in got], n)
        keys = {item: key for item, _, key in dense + keyword}
        keyword_score = {item: x for item, x, _ in keyword}
        fused = fuse([(item, x) for item, x, _ in dense], [(item, x) for item, x, _ in keyword],
                     n, key=keys.__getitem__)
        # fetch the fused passages from their shards, one call per shard
        where: dict[int, list[tuple[int, int]]] = {}
        for pos, ((shard, chunk), *_rest) in enumerate(fused):
            where.setdefault(shard, []).append((pos, chunk))
        shards = sorted(where)
        fetched: list = [None] * len(fused)
        for shard, rows in zip(shards, self.shards.call(
                "fetch", [(self.versions[s], [c for _, c in where[s]]) for s in shards],
                shards=shards)):
            for (pos, _), row in zip(where[shard], rows):
                fetched[pos] = row
        view = GatheredView(self, fetched, stats.idf_all(list(stats.df)))
        qv = np.asarray(qvec, dtype=np.float32) if qvec is not None else None
        cos = view.chunk_vectors @ qv if qv is not None and len(fused) \
            else np.zeros(len(fused), dtype=np.float32)
        hits = [Hit(chunk=i, fused=f, dense=float(cos[i]), keyword=keyword_score.get(sc, 0.0),
                    dense_rank=dr, keyword_rank=kr)
                for i, (sc, f, dr, kr) in enumerate(fused)]
        return Retrieval(view, hits, in_scope, ms)

    def doc_freqs(self, terms: list[str]) -> dict[str, int]:
        """Each term's document frequency over the whole corpus (the shards' sum)."""
        df = {t: 0 for t in terms}
        for got in self.shards.call("doc_freqs", [(v, list(terms)) for v in self.versions]):
            for t, d in got.items():
                df[t] += d
        return df


def _merge(lists: list[list[tuple]], n: int) -> list[tuple[tuple[int, int], float, tuple]]:
    """Every shard's ranking of ``(article id, start, score, chunk)`` merged into the top
    ``n`` ``((shard, chunk), score, (article id, start))``, in the total order."""
    rows = sorted(((-s, (aid, start), shard, chunk) for shard, items in enumerate(lists)
                   for aid, start, s, chunk in items), key=lambda r: (r[0], r[1]))
    return [((shard, chunk), -neg, key) for neg, key, shard, chunk in rows[:n]]


class GatheredView:
    """The fused passages of one question, a :class:`rag.answer.corpus.View` read by
    :mod:`rag.answer.extract` (chunks, sentences and their vectors, articles, inverse
    document frequencies over the whole corpus, syndicated copies). Rows are numbered in
    the fused order; articles that only appear as copies are fetched when asked for."""

    def __init__(self, sharded: ShardedIndex, fetched: list[dict], idf: dict[str, float]):
        self._sharded = sharded
        self.n_chunks = sharded.n_chunks
        self._idf = idf
        self._articles: list[Article] = []
        self._row_of: dict[str, int] = {}
        self._analyzers: dict[int, str] = {}
        chunks, sentences, svecs, cvecs = [], [], [], []
        n_sent = 0
        for f in fetched:
            row = self._add(f["article"])
            self._analyzers[row] = f.get("analyzer", ENGLISH)
            m = len(f["sentences"])
            chunks.append((row, f["start"], f["end"], n_sent, n_sent + m))
            sentences.append(np.asarray(f["sentences"], dtype=np.int32).reshape(-1, 2))
            svecs.append(np.asarray(f["sentence_vectors"]))
            cvecs.append(np.asarray(f["chunk_vector"], dtype=np.float32))
            n_sent += m
        dim = int(sharded.manifest["dim"])
        self.chunks = np.array(chunks, dtype=np.int32).reshape(-1, 5)
        self.sentences = np.concatenate(sentences) if sentences else np.zeros((0, 2), np.int32)
        self.sentence_vectors = np.concatenate(svecs) if svecs \
            else np.zeros((0, dim), np.float16)
        self.chunk_vectors = np.stack(cvecs) if cvecs else np.zeros((0, dim), np.float32)
        self.article_ids = [a.id for a in self._articles]
        self.copies: dict[int, tuple[int, ...]] = {}
        members = {aid: g for g in sharded.groups for aid in g}
        for aid in list(self._row_of):
            group = members.get(aid)
            if group:
                rows = tuple(self._row_for(x) for x in group)
                self.copies[self._row_of[aid]] = rows

    def _add(self, art: Article) -> int:
        row = self._row_of.get(art.id)
        if row is None:
            row = self._row_of[art.id] = len(self._articles)
            self._articles.append(art)
        return row

    def _row_for(self, article_id: str) -> int:
        if article_id not in self._row_of:
            art = self._sharded.article(article_id)
            if art is None:
                raise IndexMismatch(f"article {article_id!r} of a copy group is missing "
                                    "from its shard; rebuild the sharded index")
            return self._add(art)
        return self._row_of[article_id]

    def article(self, row: int) -> Article:
        return self._articles[row]

    def analyzer(self, row: int) -> str:
        """The keyword analyzer of a fetched passage's article (copies fetched only as
        such are never scored: English)."""
        return self._analyzers.get(row, ENGLISH)

    def idf(self, terms: list[str]) -> dict[str, float]:
        """Inverse document frequencies over the whole corpus."""
        missing = [t for t in terms if t not in self._idf]
        if missing:  # not asked for with the passages: a term no shard was asked about
            self._idf.update(idf_from(self._sharded.doc_freqs(missing), self.n_chunks))
        return {t: self._idf[t] for t in terms}
