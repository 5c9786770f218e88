"""Answers over a sharded index (:mod:`rag.index.shards`): the same answer as one index
over all the articles, text, offsets, citations and scores.

Two halves, which talk in plain data (lists, dicts, numpy arrays, frozen dataclasses),
so that the shards can live in other processes or on other machines (Ray Serve:
:mod:`rag.distributed.serve`):

* :class:`ShardReader`, one per shard: its dense and keyword top ``n`` under the
  filters, the passages asked for, document frequencies, articles. It loads the shard
  version the coordinator names (and keeps the last few), so one answer never mixes two
  versions of a shard.
* :class:`ShardedIndex`, the coordinator: embeds nothing itself (the caller passes the
  question vector, computed once), gathers every shard's top ``n``, merges each ranking
  by (score, article id, start) (:func:`rag.answer.search.in_order`: the same total order
  as one index), fuses with the same RRF, fetches the fused passages and hands them,
  as a :class:`GatheredView` (a :class:`rag.answer.corpus.View`, as a loaded index is), to
  the unchanged answer selection of :mod:`rag.answer.extract`. It is a
  :class:`rag.answer.corpus.Corpus`, as :class:`rag.answer.corpus.LocalCorpus` is.

Equality holds because every number is computed from the same inputs in the same order:
dense scores by FAISS per vector, BM25 scores from corpus-wide statistics baked into
every shard, the passage cosines and sentence cosines by one matrix product over the
gathered rows in the fused order, inverse document frequencies from the summed document
counts. ``tests/index/test_shards.py`` checks it on every question of the test sets, in the
three retrieval modes, and that shard-local BM25 statistics break it.

Thread-safe: readers and the coordinator hold only loaded, read-only versions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import Config
from ..index.keyword import idf_from
from ..index.live import _settings
from ..index.shards import shard_of
from ..index.store import Index, check_compatible, read_manifest
from ..types import Article, IndexMismatch
from .corpus import Retrieval, in_scope_count, index_has_dates, timed
from .filters import allowed_chunks
from .search import TIE_MARGIN, Hit, fuse, keyword_search, ranked_dense


# -- one shard ----------------------------------------------------------------

class ShardReader:
    """One shard folder, read at the versions the coordinator names. Thread-safe."""

    KEEP = 3  # versions kept loaded: the live one and those in-flight answers still use

    def __init__(self, shard_dir: str | Path, config: Config | None = None) -> None:
        self.dir = Path(shard_dir)
        self.cfg = config or Config.from_env()
        self._loaded: OrderedDict[str, Index] = OrderedDict()
        self._lock = threading.Lock()

    def index(self, version: str) -> Index:
        """The loaded shard ``version`` (checked against the configured model)."""
        with self._lock:
            if version in self._loaded:
                self._loaded.move_to_end(version)
                return self._loaded[version]
        from ..embedding.model import get_embedder

        path, manifest = read_manifest(self.dir, version)
        check_compatible(manifest, get_embedder(self.cfg).model_id,
                         _settings(self.cfg, manifest))
        index = Index(path, manifest)
        with self._lock:
            index = self._loaded.setdefault(version, index)
            while len(self._loaded) > self.KEEP:
                self._loaded.popitem(last=False)
        return index

    def retrieve(self, version: str, question: str, qvec, n: int, mode: str,
                 filters=None, terms: list[str] = ()) -> dict[str, Any]:
        """This shard's dense and keyword top ``n`` under ``filters``, each as
        ``(article id, start, score, chunk)`` in the total order; the document
        frequencies of ``terms``; its passage count; and, with filters, how many of its
        passages and articles they allow."""
        index = self.index(version)
        allowed = allowed_chunks(index, filters)
        out: dict[str, Any] = {"n_chunks": index.n_chunks, "in_scope": in_scope_count(
            index, allowed), "allowed": None if allowed is None else int(len(allowed))}
        empty = allowed is not None and not len(allowed)
        dense = ranked_dense(index, qvec, n, allowed) \
            if mode in ("hybrid", "dense") and qvec is not None and not empty else []
        keyword = keyword_search(index, question, n, allowed) \
            if mode in ("hybrid", "keyword") and not empty else []
        out["dense"] = [(*_key(index, c), s, c) for c, s in dense]
        out["keyword"] = [(*_key(index, c), s, c) for c, s in keyword]
        out["df"] = index.keyword.doc_freqs(list(terms)) if index.keyword is not None \
            else {t: 0 for t in terms}
        return out

    def fetch(self, version: str, chunks: list[int]) -> list[dict[str, Any]]:
        """Each passage's article, offsets, sentences and vectors."""
        index = self.index(version)
        out = []
        for c in chunks:
            row, start, end, s_lo, s_hi = (int(x) for x in index.chunks[c])
            out.append({"article": index.article(row), "start": start, "end": end,
                        "sentences": np.array(index.sentences[s_lo:s_hi]),
                        "sentence_vectors": np.array(index.sentence_vectors[s_lo:s_hi]),
                        "chunk_vector": np.array(index.chunk_vectors[c])})
        return out

    def doc_freqs(self, version: str, terms: list[str]) -> dict[str, int]:
        index = self.index(version)
        return index.keyword.doc_freqs(list(terms)) if index.keyword is not None \
            else {t: 0 for t in terms}

    def article(self, version: str, article_id: str) -> Article | None:
        index = self.index(version)
        row = index.row_of(article_id)
        return None if row is None else index.article(row)

    def dated(self, version: str) -> bool:
        """Whether any article of this shard has a publication date."""
        return index_has_dates(self.index(version))


def _key(index: Index, chunk: int) -> tuple[str, int]:
    row, start = (int(x) for x in index.chunks[chunk][:2])
    return index.article_ids[row], start


# -- the coordinator --------------------------------------------------------------

class LocalShards:
    """Shards read in this process: ``call(method, per-shard args)`` runs each in turn."""

    def __init__(self, dirs: list[Path], config: Config) -> None:
        self.readers = [ShardReader(d, config) for d in dirs]

    def call(self, method: str, args: list[tuple], shards: list[int] | None = None) -> list:
        shards = range(len(self.readers)) if shards is None else shards
        return [getattr(self.readers[i], method)(*a) for i, a in zip(shards, args)]


class ShardedIndex:
    """A sharded index at one cluster version, read through ``shards`` (an object with
    ``call(method, args, shards=None) -> results``: :class:`LocalShards`, or Ray Serve
    handles in :mod:`rag.distributed.serve`)."""

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
        got = self.shards.call("retrieve", [(v, query, qvec, n + TIE_MARGIN, mode,
                                             filters, list(terms)) for v in self.versions])
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
        df: dict[str, int] = {t: 0 for t in terms}
        for g in got:
            for t, d in g["df"].items():
                df[t] += d
        view = GatheredView(self, fetched, idf_from(df, self.n_chunks))
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
        chunks, sentences, svecs, cvecs = [], [], [], []
        n_sent = 0
        for f in fetched:
            row = self._add(f["article"])
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

    def idf(self, terms: list[str]) -> dict[str, float]:
        """Inverse document frequencies over the whole corpus."""
        missing = [t for t in terms if t not in self._idf]
        if missing:  # not asked for with the passages: a term no shard was asked about
            self._idf.update(idf_from(self._sharded.doc_freqs(missing), self.n_chunks))
        return {t: self._idf[t] for t in terms}
