"""Question -> ranked passages: dense (FAISS), keyword (BM25 via bm25s), or both fused.

Hybrid retrieval fuses the two rankings by reciprocal rank fusion (Cormack et al. 2009):
``rrf(chunk) = sum over rankings of 1 / (60 + rank)``. Dense search finds paraphrases;
BM25 finds the names, numbers and rare words that news questions are full of.

Scores in a :class:`Hit`: ``dense`` is the cosine of question and passage in [-1, 1];
``keyword`` is the raw BM25 score (>= 0, unbounded); ``fused`` is the RRF score used for
ordering. All functions here are read-only over an :class:`~rag.store.Index` and safe to
call from several threads.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

RRF_K = 60
_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@dataclass(frozen=True)
class Hit:
    chunk: int
    fused: float
    dense: float
    keyword: float
    dense_rank: int | None
    keyword_rank: int | None


# -- keyword index ------------------------------------------------------------

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


def load_keyword_index(folder: Path):
    """The saved BM25 index (memory-mapped numpy arrays and a JSON vocabulary), or None."""
    import bm25s

    if not (folder / "params.index.json").exists():
        return None
    try:  # allow_pickle stays False (bm25s's default): an object array is refused
        return bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
    except (ValueError, OSError, KeyError, TypeError, EOFError) as exc:
        from .store import REBUILD_HINT
        from .types import IndexMismatch

        raise IndexMismatch(f"the keyword index in {folder} is damaged ({exc}); "
                            f"{REBUILD_HINT}") from exc


# -- search ---------------------------------------------------------------------

def dense_search(index, qvec: np.ndarray, n: int) -> list[tuple[int, float]]:
    n = min(n, index.n_chunks)
    if n <= 0:
        return []
    scores, ids = index.faiss.search(qvec.reshape(1, -1).astype(np.float32), n)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def keyword_search(index, question: str, n: int) -> list[tuple[int, float]]:
    bm25 = index.bm25
    n = min(n, index.n_chunks)
    if bm25 is None or n <= 0:
        return []
    terms = [t for t in keyword_tokens(question) if t in bm25.vocab_dict]
    if not terms:
        return []
    # n_threads=0 scores inline; 1 would start a thread pool on every call (~2 ms)
    ids, scores = bm25.retrieve([terms], k=n, show_progress=False, n_threads=0)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]


def search(index, question: str, qvec: np.ndarray | None, n: int,
           mode: str = "hybrid") -> list[Hit]:
    """The top ``n`` passages for ``question``, best first.

    ``mode`` is ``"hybrid"`` (RRF of dense and keyword), ``"dense"`` or ``"keyword"``.
    The dense cosine is reported for every hit (from the stored chunk vectors) so that
    later stages can use it whatever the mode.
    """
    dense = dense_search(index, qvec, n) if mode in ("hybrid", "dense") else []
    keyword = keyword_search(index, question, n) if mode in ("hybrid", "keyword") else []
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
