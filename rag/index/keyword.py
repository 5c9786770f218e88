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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class KeywordStats:
    """The corpus statistics BM25 scores with: passages, their total length in terms, and
    each term's document frequency. Shards of one corpus add theirs up (:meth:`plus`) so
    that every shard scores with the whole corpus's statistics (``rag.index.shards``)."""

    n_docs: int
    total_len: int
    df: dict[str, int]

    def plus(self, other: "KeywordStats") -> "KeywordStats":
        df = dict(self.df)
        for t, n in other.df.items():
            df[t] = df.get(t, 0) + n
        return KeywordStats(self.n_docs + other.n_docs, self.total_len + other.total_len, df)

    @property
    def avg_len(self):
        """The mean passage length, as bm25s computes it (``np.mean`` of the lengths: an
        exact integer sum, one division) and of its type: an np.float64 makes numpy score
        in float64 before storing float32, where a Python float would score in float32."""
        return np.float64(self.total_len) / self.n_docs if self.n_docs else np.float64(0)


def _tokenize(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stemmer=_stemmer(), show_progress=False)


def keyword_stats(texts: list[str]) -> KeywordStats:
    """The BM25 statistics of ``texts`` alone (one shard's share of a corpus)."""
    if not texts:
        return KeywordStats(0, 0, {})
    tokens = _tokenize(texts)
    words = {i: t for t, i in tokens.vocab.items()}
    df: dict[str, int] = {}
    total = 0
    for doc in tokens.ids:
        total += len(doc)
        for i in set(doc):
            df[words[i]] = df.get(words[i], 0) + 1
    return KeywordStats(len(tokens.ids), total, df)


def build_keyword_writer(texts: list[str], stats: KeywordStats | None = None):
    """Index ``texts`` with BM25 now; return a function that saves it into a folder.

    ``stats``: score with these corpus statistics instead of those of ``texts`` (a shard
    of a larger corpus, whose statistics are the sum of every shard's; see
    :class:`KeywordStats`). With ``stats`` equal to ``keyword_stats(texts)`` the saved
    index is byte for byte bm25s's own (tested)."""
    import bm25s

    retriever = bm25s.BM25() if stats is None else _CorpusBM25(stats)
    if texts:
        tokens = _tokenize(texts)
        if stats is not None:
            retriever.words = {i: t for t, i in tokens.vocab.items()}
        retriever.index(tokens, show_progress=False)

    def write(folder: Path) -> None:
        folder.mkdir()
        if texts:
            retriever.save(str(folder), show_progress=False)

    return write


def _corpus_bm25_class():
    import bm25s
    import bm25s.scoring as sc

    class CorpusBM25(bm25s.BM25):
        """bm25s's BM25 whose document count, average length and document frequencies are
        given (a corpus's) rather than counted over the texts indexed (a shard's). The
        body is bm25s 0.2's ``build_index_from_ids`` (method "lucene") with those three
        numbers swapped in; everything else is bm25s's own code."""

        def __init__(self, stats: KeywordStats) -> None:
            super().__init__()
            self.corpus_stats = stats
            self.words: dict[int, str] = {}

        def build_index_from_ids(self, unique_token_ids, corpus_token_ids,
                                 show_progress=True, leave_progress=False):
            st = self.corpus_stats
            self.nonoccurrence_array = None  # "lucene" needs none
            n_docs_here = len(corpus_token_ids)
            here = sc._calculate_doc_freqs(corpus_token_ids, unique_token_ids,
                                           show_progress=False)
            doc_frequencies = {i: st.df.get(self.words[i], 0) for i in unique_token_ids}
            missing = [self.words[i] for i, d in doc_frequencies.items()
                       if d == 0 and here[i] > 0]
            if missing:
                raise ValueError(f"corpus statistics lack terms of this shard: {missing[:5]}")
            idf_array = sc._build_idf_array(
                doc_frequencies=doc_frequencies, n_docs=st.n_docs,
                compute_idf_fn=sc._select_idf_scorer(self.idf_method), dtype=self.dtype)
            scores_flat, doc_idx, vocab_idx = sc._build_scores_and_indices_for_matrix(
                corpus_token_ids=corpus_token_ids, idf_array=idf_array,
                avg_doc_len=st.avg_len, doc_frequencies=here, k1=self.k1,  # sizes arrays
                b=self.b, delta=self.delta, show_progress=False, leave_progress=False,
                dtype=self.dtype, int_dtype=self.int_dtype, method=self.method,
                nonoccurrence_array=None)
            data, indices, indptr = self._np_csc(
                data=scores_flat, rows=doc_idx, cols=vocab_idx,
                shape=(n_docs_here, len(unique_token_ids)))
            return {"data": data.astype(self.dtype), "indices": indices, "indptr": indptr,
                    "num_docs": n_docs_here}

    return CorpusBM25


def _CorpusBM25(stats: KeywordStats):
    global _CORPUS_BM25
    if _CORPUS_BM25 is None:
        _CORPUS_BM25 = _corpus_bm25_class()
    return _CORPUS_BM25(stats)


_CORPUS_BM25 = None


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

    def doc_freqs(self, terms: list[str]) -> dict[str, int]:
        """How many passages of this index hold each term (0 for unknown terms)."""
        indptr = self._bm25.scores["indptr"]
        vocab = self._bm25.vocab_dict
        out = {}
        for t in terms:
            tid = vocab.get(t)
            out[t] = int(indptr[tid + 1] - indptr[tid]) \
                if tid is not None and tid + 1 < len(indptr) else 0
        return out

    def idf(self, terms: list[str], n_docs: int) -> dict[str, float]:
        """BM25 inverse document frequency of each term over the ``n_docs`` passages."""
        return idf_from(self.doc_freqs(terms), n_docs)


def idf_from(df: dict[str, int], n_docs: int) -> dict[str, float]:
    """BM25 (Lucene) inverse document frequency of each term of ``df`` (its document
    frequency) among ``n_docs`` passages."""
    n = max(n_docs, 1)
    return {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
