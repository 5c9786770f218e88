"""Passages -> the sentence that answers, its confidence, and the numbered citations.

Every sentence of the candidate passages is scored from three pieces of evidence:

* ``cos_s``: cosine of the question and the sentence's own vector (late-chunked, so it
  reads the sentence in the context of its passage);
* ``lex``: the share of the question's terms, weighted by their BM25 inverse document
  frequency, that the sentence contains (names, numbers and rare words weigh most);
* ``cos_p``: cosine of the question and the whole passage.

The sentence with the best weighted sum is the answer. Its confidence is a logistic
function of the same evidence (coefficients in :data:`CALIBRATION`, fitted on the
development set by ``python -m rag.eval --calibrate``), read as the probability that
the quote answers the question; below ``Config.abstain_threshold`` the answer abstains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .retrieve import Hit, keyword_tokens
from .types import Citation

# Weights of the evidence for choosing a sentence, and the logistic calibration of the
# chosen sentence's confidence: p = 1 / (1 + exp(-(b0 + b . features))).
SELECT_WEIGHTS = {"cos_s": 0.5, "lex": 0.3, "cos_p": 0.2}
CALIBRATION = {"bias": -6.0, "cos_s": 6.0, "lex": 3.0, "cos_p": 5.0}


@dataclass(frozen=True)
class Candidate:
    hit_rank: int
    chunk: int
    sentence: int  # row in index.sentences
    start: int
    end: int
    cos_s: float
    lex: float
    cos_p: float
    score: float


def idf_weights(index, terms: list[str]) -> dict[str, float]:
    """BM25 inverse document frequency of each term over the indexed passages."""
    bm25 = index.bm25
    if bm25 is None:
        return {t: 1.0 for t in terms}
    n = max(index.n_chunks, 1)
    indptr = bm25.scores["indptr"]
    out = {}
    for t in terms:
        tid = bm25.vocab_dict.get(t)
        df = int(indptr[tid + 1] - indptr[tid]) if tid is not None else 0
        out[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return out


def score_sentences(index, question: str, qvec: np.ndarray, hits: list[Hit]) -> list[Candidate]:
    """Every sentence of the hit passages with its evidence, best first."""
    terms = list(dict.fromkeys(keyword_tokens(question)))
    idf = idf_weights(index, terms)
    total_idf = sum(idf.values()) or 1.0
    out: list[Candidate] = []
    for rank, hit in enumerate(hits):
        row, _, _, s_lo, s_hi = (int(x) for x in index.chunks[hit.chunk])
        if s_hi <= s_lo:
            continue
        vecs = np.asarray(index.sentence_vectors[s_lo:s_hi], dtype=np.float32)
        cos = vecs @ qvec.astype(np.float32)
        text = index.article(row).text
        for j, (a, b) in enumerate(index.sentences[s_lo:s_hi].tolist()):
            present = set(keyword_tokens(text[a:b])) if terms else set()
            lex = sum(idf[t] for t in terms if t in present) / total_idf if terms else 0.0
            feats = {"cos_s": float(cos[j]), "lex": lex, "cos_p": hit.dense}
            score = sum(SELECT_WEIGHTS[k] * v for k, v in feats.items())
            out.append(Candidate(rank, hit.chunk, s_lo + j, a, b, feats["cos_s"], lex,
                                 hit.dense, score))
    out.sort(key=lambda c: (-c.score, c.hit_rank, c.start))
    return out


def confidence(c: Candidate) -> float:
    """Probability-like confidence in [0, 1] that candidate ``c`` answers the question."""
    z = CALIBRATION["bias"] + sum(CALIBRATION[k] * getattr(c, k) for k in ("cos_s", "lex",
                                                                            "cos_p"))
    return 1.0 / (1.0 + math.exp(-z))


def make_citations(index, candidates: list[Candidate], k: int, answers: bool
                   ) -> list[Citation]:
    """Up to ``k`` citations, one per passage, each quoting that passage's best sentence;
    ordered by that sentence's score (the first holds the answer)."""
    best_per_chunk: dict[int, Candidate] = {}
    for c in candidates:  # already best first
        best_per_chunk.setdefault(c.chunk, c)
    chosen = sorted(best_per_chunk.values(), key=lambda c: (-c.score, c.hit_rank))[:k]
    cites = []
    for n, c in enumerate(chosen, 1):
        row, p_start, p_end = (int(x) for x in index.chunks[c.chunk][:3])
        art = index.article(row)
        cites.append(Citation(
            n=n, article_id=art.id, title=art.title, source=art.source, start=c.start,
            end=c.end, quote=art.text[c.start:c.end], passage=art.text[p_start:p_end],
            passage_start=p_start, passage_end=p_end,
            score=round(min(1.0, max(0.0, c.score)), 4), url=art.url,
            published=art.published, answers=answers))
    return cites
