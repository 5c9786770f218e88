"""What asking reads: one protocol for one index and many (issue 25, item 1).

Asking, searching and reading an article go through a :class:`Corpus`; the answer
pipeline never asks which kind it holds:

* :class:`LocalCorpus`: one index folder, loaded in this process
  (:class:`~rag.index.store.Index`);
* :class:`~rag.answer.shards.ShardedIndex`: a sharded index, its shards read in this
  process or through Ray Serve, gathered into the same total order as one index.

``Corpus.retrieve`` returns a :class:`Retrieval`: the hits and a :class:`View`, the
passages extraction reads (:mod:`rag.answer.extract`: chunks, sentences and their
vectors, articles by view row, inverse document frequencies over the whole corpus,
syndicated copies). A loaded ``Index`` is its own view; the sharded coordinator gathers
one per question (:class:`~rag.answer.shards.GatheredView`).

Every implementation runs the same contract suite (``tests/answer/test_corpus.py``): same
answers, passages and articles as a single index over the same articles.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from ..index.store import Index
from ..types import Article
from .filters import Filters, allowed_chunks, article_metadata
from .search import Hit, search


class View(Protocol):
    """The passages one question's extraction reads. Rows of ``chunks`` are
    ``(article row, start, end, first sentence, end sentence)``; ``sentences`` are
    ``(start, end)`` offsets into the article's text; ``copies`` maps an article row to
    every row holding the same story. Read-only."""

    chunks: np.ndarray
    sentences: np.ndarray
    sentence_vectors: np.ndarray
    chunk_vectors: np.ndarray
    copies: dict[int, tuple[int, ...]]

    @property
    def n_chunks(self) -> int: ...

    def article(self, row: int) -> Article: ...

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25 inverse document frequency of each term over the whole corpus."""
        ...


@dataclass(frozen=True)
class Retrieval:
    """The passages found for one question: ``view`` is None when the filters allow no
    passage; ``hits`` index ``view.chunks``, best first; ``in_scope`` is the number of
    articles the filters allow (None: no filter); ``embed_ms`` the time spent embedding
    the question (0 when the mode needs no vector or nothing was searched)."""

    view: View | None
    hits: list[Hit]
    in_scope: int | None
    embed_ms: float = 0.0


class Corpus(Protocol):
    """An index to ask, at one version for the whole of one answer. Thread-safe."""

    version: str

    def retrieve(self, query: str, embed: Callable[[], np.ndarray | None], n: int,
                 mode: str, filters: Filters | None = None,
                 terms: Sequence[str] = ()) -> Retrieval:
        """The top ``n`` passages for ``query`` under ``filters`` (``mode``: hybrid, dense
        or keyword); ``embed()`` gives the question's vector (or None: no dense scores)
        and is called at most once (a single index calls it only when the filters allow
        some passage; shards rank by it, so a sharded index calls it first); ``terms``
        are the question's BM25 terms (their document frequencies are gathered with the
        passages)."""
        ...

    def article(self, article_id: str) -> Article | None:
        """The article with this id, or None."""
        ...

    def has_dates(self) -> bool:
        """Whether any article has a publication date."""
        ...


def timed(embed: Callable[[], np.ndarray | None]) -> tuple[np.ndarray | None, float]:
    """``embed()`` and the milliseconds it took."""
    t = time.perf_counter()
    vec = embed()
    return vec, (time.perf_counter() - t) * 1e3


def in_scope_count(index: Index, allowed: np.ndarray | None) -> int | None:
    """How many articles of ``index`` the allowed passages belong to (None: no filter)."""
    if allowed is None:
        return None
    return int(np.unique(np.asarray(index.chunks[allowed, 0])).size) if len(allowed) else 0


def index_has_dates(index: Index) -> bool:
    """Whether any article of ``index`` has a publication date (memoised per version)."""
    return any(d is not None for d in index.memo(
        "filter-metadata", lambda: article_metadata(index.article_rows()))["dates"])


class LocalCorpus:
    """One loaded index version (:class:`~rag.index.store.Index`), its own view."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.version = index.version

    def retrieve(self, query: str, embed: Callable[[], np.ndarray | None], n: int,
                 mode: str, filters: Filters | None = None,
                 terms: Sequence[str] = ()) -> Retrieval:
        allowed = allowed_chunks(self.index, filters)
        in_scope = in_scope_count(self.index, allowed)
        if allowed is not None and not len(allowed):
            return Retrieval(None, [], 0)
        qvec, ms = timed(embed)
        return Retrieval(self.index, search(self.index, query, qvec, n, mode, allowed),
                         in_scope, ms)

    def article(self, article_id: str) -> Article | None:
        row = self.index.row_of(article_id)
        return None if row is None else self.index.article(row)

    def has_dates(self) -> bool:
        return index_has_dates(self.index)
