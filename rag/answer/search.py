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

RRF_K = 60


@dataclass(frozen=True)
class Hit:
    chunk: int
    fused: float
    dense: float
    keyword: float
    dense_rank: int | None
    keyword_rank: int | None


# -- search ---------------------------------------------------------------------

def keyword_search(index, question: str, n: int,
                   allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
    if index.keyword is None:
        return []
    return index.keyword.search(question, min(n, index.n_chunks), allowed)


def search(index, question: str, qvec: np.ndarray | None, n: int,
           mode: str = "hybrid", allowed: np.ndarray | None = None) -> list[Hit]:
    """The top ``n`` passages for ``question``, best first.

    ``mode`` is ``"hybrid"`` (RRF of dense and keyword), ``"dense"`` or ``"keyword"``.
    ``allowed`` (sorted chunk ids, :func:`rag.answer.filters.allowed_chunks`) restricts
    both rankings to those passages before ranking. The dense cosine is reported for
    every hit (from the stored chunk vectors) so that later stages can use it whatever
    the mode.
    """
    dense = dense_search(index, qvec, n, allowed) if mode in ("hybrid", "dense") else []
    keyword = keyword_search(index, question, n, allowed) \
        if mode in ("hybrid", "keyword") else []
    dense_rank = {c: r for r, (c, _) in enumerate(dense)}
    keyword_rank = {c: r for r, (c, _) in enumerate(keyword)}
    keyword_score = dict(keyword)
    fused: dict[int, float] = {}
    for ranking in (dense, keyword):
        for r, (c, _) in enumerate(ranking):
            fused[c] = fused.get(c, 0.0) + 1.0 / (RRF_K + r + 1)
    order = sorted(fused, key=lambda c: (-fused[c], c))[:n]
    if qvec is not None and order:
        cos = index.chunk_vectors[np.array(order)] @ qvec.astype(np.float32)
    else:
        cos = np.zeros(len(order), dtype=np.float32)
    return [Hit(chunk=c, fused=fused[c], dense=float(cos[i]),
                keyword=keyword_score.get(c, 0.0), dense_rank=dense_rank.get(c),
                keyword_rank=keyword_rank.get(c)) for i, c in enumerate(order)]
