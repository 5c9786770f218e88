"""The keyword index: BM25 over the passages (bm25s), the only module that touches bm25s.

Build (:func:`build_keyword_writer`), load (:func:`load_keyword_index`, memory-mapped
numpy arrays and a JSON vocabulary, never a pickle), search and inverse document
frequency (:class:`KeywordIndex`), and the terms BM25 indexes (:func:`keyword_tokens`:
lower-cased, stemmed, no stop words). Read-only once loaded; safe to share between
threads.
"""

from __future__ import annotations

import math
import re
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_local = threading.local()


def _stemmer():
    """A Snowball English stemmer for this thread (PyStemmer objects are not thread-safe)."""
    stem = getattr(_local, "stem", None)
    if stem is None:
        import Stemmer

        stem = _local.stem = Stemmer.Stemmer("english").stemWords
    return stem


def keyword_tokens(text: str) -> list[str]:
    """The lower-cased, stemmed, stop-word-free terms BM25 indexes for ``text``: exactly
    what ``bm25s.tokenize(..., stemmer=...)`` gives (same pattern, stop words and stemmer),
    without its per-call set-up (~15 ms a question; this takes ~0.05 ms)."""
    return list(_keyword_tokens(text))


@lru_cache(maxsize=1 << 16)
def _keyword_tokens(text: str) -> tuple[str, ...]:
    """Cached: the sentences of popular passages are scored again and again."""
    stop = _STOPWORDS if _STOPWORDS is not None else _stopwords()
    words = [w for w in _TOKEN.findall(text.lower()) if w not in stop]
    return tuple(_stemmer()(words)) if words else ()


def _stopwords() -> frozenset:
    global _STOPWORDS
    if _STOPWORDS is None:
        from bm25s.stopwords import STOPWORDS_EN

        _STOPWORDS = frozenset(STOPWORDS_EN)
    return _STOPWORDS


_STOPWORDS: frozenset | None = None


def build_keyword_writer(texts: list[str]):
    """Index ``texts`` with BM25 now; return a function that saves it into a folder."""
    import bm25s

    retriever = bm25s.BM25()
    if texts:
        tokens = bm25s.tokenize(texts, stemmer=_stemmer(), show_progress=False)
        retriever.index(tokens, show_progress=False)

    def write(folder: Path) -> None:
        folder.mkdir()
        if texts:
            retriever.save(str(folder), show_progress=False)

    return write


# What a damaged keyword index raises while loading (the caller reports it as such).
LOAD_ERRORS = (ValueError, OSError, KeyError, TypeError, EOFError)


def load_keyword_index(folder: Path) -> "KeywordIndex | None":
    """The saved BM25 index in ``folder``, or None when there is none (an index of no
    text). Raises one of :data:`LOAD_ERRORS` when it is damaged."""
    import bm25s

    if not (folder / "params.index.json").exists():
        return None
    # allow_pickle stays False (bm25s's default): an object array is refused
    return KeywordIndex(bm25s.BM25.load(str(folder), mmap=True, show_progress=False))


class KeywordIndex:
    """A loaded BM25 index over the passages (row i = chunk i)."""

    def __init__(self, bm25) -> None:
        self._bm25 = bm25

    def search(self, question: str, n: int, allowed=None) -> list[tuple[int, float]]:
        """(chunk, BM25 score > 0) of the top ``n`` passages for ``question``, best first.
        ``allowed`` (chunk ids) masks every other passage before ranking; the BM25
        statistics stay those of the whole index, so a passage scores the same with or
        without a filter."""
        terms = [t for t in keyword_tokens(question) if t in self._bm25.vocab_dict]
        if not terms or n <= 0:
            return []
        mask = None
        if allowed is not None:
            if not len(allowed):
                return []
            mask = np.zeros(self._bm25.scores["num_docs"], dtype=np.float32)
            mask[allowed] = 1.0
            n = min(n, len(allowed))
        # n_threads=0 scores inline; 1 would start a thread pool on every call (~2 ms)
        ids, scores = self._bm25.retrieve([terms], k=n, show_progress=False, n_threads=0,
                                          weight_mask=mask)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]

    def idf(self, terms: list[str], n_docs: int) -> dict[str, float]:
        """BM25 inverse document frequency of each term over the ``n_docs`` passages."""
        n = max(n_docs, 1)
        indptr = self._bm25.scores["indptr"]
        vocab = self._bm25.vocab_dict
        out = {}
        for t in terms:
            tid = vocab.get(t)
            df = int(indptr[tid + 1] - indptr[tid]) if tid is not None else 0
            out[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return out
