"""Question -> ranked passages: dense (FAISS), keyword (BM25, :mod:`rag.index.keyword`),
or both fused.

Hybrid retrieval fuses the two rankings by reciprocal rank fusion (Cormack et al. 2009):
``rrf(chunk) = sum over rankings of 1 / (60 + rank)``. Dense search finds paraphrases;
BM25 finds the names, numbers and rare words that news questions are full of.

Scores in a :class:`Hit`: ``dense`` is the cosine of question and passage in [-1, 1];
``keyword`` is the raw BM25 score (>= 0, unbounded); ``fused`` is the RRF score used for
ordering. All functions here are read-only over an :class:`~rag.index.store.Index` and safe to
call from several threads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..index.dense import dense_search
from ..index.keyword import question_words

RRF_K = 60
# Each ranking is read this much deeper than asked and re-sorted by (score, chunk key), so
# that passages with equal scores (syndicated copies: the same text, the same vector) come
# in one total order whatever FAISS's or the keyword index's tie order, on one index or over
# shards (rag.answer.shards). Exact as long as fewer than this many extra passages tie at
# the cut.
TIE_MARGIN = 16


@dataclass(frozen=True)
class Hit:
    chunk: int
    fused: float
    dense: float
    keyword: float
    dense_rank: int | None
    keyword_rank: int | None


# -- search ---------------------------------------------------------------------

def chunk_key(index, chunk: int) -> tuple[str, int]:
    """A passage's place in the total order of equal scores: (article id, start offset),
    the same on a single index and on any shard of it."""
    row, start = (int(x) for x in index.chunks[chunk][:2])
    return index.article_ids[row], start


def in_order(index, ranking: list[tuple[int, float]], n: int) -> list[tuple[int, float]]:
    """The best ``n`` of ``ranking`` (chunk, score), by score, then :func:`chunk_key`."""
    return sorted(ranking, key=lambda cs: (-cs[1], chunk_key(index, cs[0])))[:n]


def keyword_search(index, words: list[str], n: int, allowed: np.ndarray | None = None,
                   stats=None) -> list[tuple[int, float]]:
    """The top ``n`` (chunk, BM25 score) for the question's terms ``words``
    (:func:`rag.index.keyword.question_words`) among ``allowed`` (sorted chunk ids; None:
    all), scored with the corpus statistics ``stats`` (default: this segment's own), in
    the total order (:func:`in_order`)."""
    if not words or (allowed is not None and not len(allowed)):
        return []
    if stats is None:
        stats = index.keyword.stats(list(dict.fromkeys(words)))
    mask = None
    if allowed is not None:
        mask = np.zeros(index.n_chunks, dtype=bool)
        mask[allowed] = True
    found = index.keyword.search(words, min(n + TIE_MARGIN, index.n_chunks), stats, mask)
    return in_order(index, found, n)


def ranked_dense(index, qvec, n: int, allowed=None) -> list[tuple[int, float]]:
    """The top ``n`` (chunk, cosine) in the total order (:func:`in_order`)."""
    return in_order(index, dense_search(index, qvec, n + TIE_MARGIN, allowed), n)


def fuse(dense: list, keyword: list, n: int, key) -> list[tuple]:
    """Reciprocal rank fusion of two rankings of (item, score), best first: the top ``n``
    items as (item, fused score, dense rank, keyword rank), ties by ``key(item)``."""
    dense_rank = {c: r for r, (c, _) in enumerate(dense)}
    keyword_rank = {c: r for r, (c, _) in enumerate(keyword)}
    fused: dict = {}
    for ranking in (dense, keyword):
        for r, (c, _) in enumerate(ranking):
            fused[c] = fused.get(c, 0.0) + 1.0 / (RRF_K + r + 1)
    order = sorted(fused, key=lambda c: (-fused[c], key(c)))[:n]
    return [(c, fused[c], dense_rank.get(c), keyword_rank.get(c)) for c in order]


def search(index, question: str, qvec: np.ndarray | None, n: int,
           mode: str = "hybrid", allowed: np.ndarray | None = None) -> list[Hit]:
    """The top ``n`` passages for ``question``, best first.

    ``mode`` is ``"hybrid"`` (RRF of dense and keyword), ``"dense"`` or ``"keyword"``.
    ``allowed`` (sorted chunk ids, :func:`rag.answer.filters.allowed_chunks`) restricts
    both rankings to those passages before ranking. The dense cosine is reported for
    every hit (from the stored chunk vectors) so that later stages can use it whatever
    the mode.
    """
    dense = ranked_dense(index, qvec, n, allowed) if mode in ("hybrid", "dense") else []
    keyword = keyword_search(index, question_words(question, index.analyzers), n,
                             allowed) \
        if mode in ("hybrid", "keyword") else []
    keyword_score = dict(keyword)
    fused = fuse(dense, keyword, n, lambda c: chunk_key(index, c))
    order = [c for c, *_ in fused]
    if qvec is not None and order:
        cos = index.chunk_vectors[np.array(order)] @ qvec.astype(np.float32)
    else:
        cos = np.zeros(len(order), dtype=np.float32)
    return [Hit(chunk=c, fused=f, dense=float(cos[i]), keyword=keyword_score.get(c, 0.0),
                dense_rank=dr, keyword_rank=kr) for i, (c, f, dr, kr) in enumerate(fused)]
