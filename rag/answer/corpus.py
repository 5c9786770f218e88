"""What asking reads: one protocol for one index and many (issue 25, item 1).

Asking, searching and reading an article go through a :class:`Corpus`; the answer
pipeline never asks which kind it holds:

* :class:`~rag.answer.shards.ShardedIndex` over one folder
  (:func:`~rag.answer.shards.one_folder`): a plain index, its segments gathered into
  one total order;
* :class:`~rag.answer.shards.ShardedIndex` over a sharded index: its shards (each a
  list of segments) read in this process or through Ray Serve.

``Corpus.retrieve`` returns a :class:`Retrieval`: the hits and a :class:`View`, the
passages extraction reads (:mod:`rag.answer.extract`: chunks, sentences and their
vectors, articles by view row, inverse document frequencies over the whole corpus,
syndicated copies). The coordinator gathers one per question
(:class:`~rag.answer.shards.GatheredView`); a loaded segment (``Index``) is one too, for
the evaluation tools that read a one-segment index directly.

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
from .filters import Filters
from .search import Hit


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

    def analyzer(self, row: int) -> str:
        """The keyword analyzer the article at ``row`` was indexed with (its sentences
        are matched with the question's terms under it: :mod:`rag.index.keyword`)."""
        ...

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
