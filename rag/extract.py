"""Passages -> the sentence that answers, its confidence, and the numbered citations.

Every sentence of the candidate passages is described by a few pieces of evidence
(:data:`FEATURES`), all cheap to compute at question time (no model call: the sentence
vectors were computed at build time; tokens come from a cached tokeniser). Question
terms are the BM25 terms of the question minus :data:`QUESTION_WORDS` (who, how, much...):

* ``cos_s``: cosine of the question and the sentence's own vector (late-chunked, so it
  reads the sentence in the context of its passage), in [-1, 1];
* ``cos_p``: cosine of the question and the whole passage, in [-1, 1];
* ``lex``: the share of the question's terms, weighted by their BM25 inverse document
  frequency, that the sentence contains (names, numbers and rare words weigh most), [0, 1];
* ``lex_p``: the same share over the whole passage, [0, 1];
* ``miss_p``: the inverse document frequency of the most specific question term that the
  passage does not contain, divided by the largest possible one, [0, 1]: a question about
  a name, number or rare word the passage never mentions is probably not answered there;
* ``rank``: ``1 / (1 + r)`` for the passage's retrieval rank ``r`` (0 = best), (0, 1];
* ``type_miss``: 1 when the question asks for a kind of answer (a number or a date for
  *how many / how much / when / what year*, a name for *who*) and the sentence holds none
  that the question does not already contain, else 0. A sentence that merely repeats the
  question cannot answer it.

Selection: the sentence with the highest weighted sum ``SELECT . features`` is the
answer (0.5 ``cos_s`` + 0.3 ``lex`` + 0.2 ``cos_p`` + 0.2 ``lex_p``; a logistic regression over all the
features, ``python -m rag.eval --fit``, did not do better on the development set). When
the chosen sentence lacks the kind of answer asked for and its neighbour in the same passage has it, the quote spans
both (the answer straddles two sentences).

Confidence: ``answer.score`` is ``1 / (1 + exp(-(CALIBRATION . features)))`` of the chosen
quote, a probability-like value in [0, 1] that the quote answers the question (fitted
by logistic regression of "the quote contains a gold answer" on answerable, unanswerable
and off-topic questions of the development set). Below ``Config.abstain_threshold`` the
system abstains.

Everything here is a pure function of an immutable index: thread-safe.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import numpy as np

from .retrieve import Hit
from .types import Citation

# Show the neighbouring sentence too when the answer straddles two (see _widen).
WIDEN = True

FEATURES = ("cos_s", "cos_p", "lex", "lex_p", "miss_p", "rank", "type_miss")

# Selection: a weighted sum of the evidence. A logistic regression of "this sentence holds
# a gold answer" over all FEATURES was fitted on the development set (`python -m rag.eval
# --fit`) and did NOT beat hand weights (hit@1 0.691 vs 0.699 on 1,228 answerable
# questions), so a simple rule stays; unlisted features weigh 0. ``lex_p`` (the passage
# holds the question's terms) was added at 0.2 after a sweep on every other question
# (0.1/0.2/0.3): on all 2,600 questions, half of them unseen by the sweep, R@1 0.835 ->
# 0.850, R@5 0.965 -> 0.972, hit@1 0.719 -> 0.732 (no abstention).
SELECT = {"cos_s": 0.5, "lex": 0.3, "cos_p": 0.2, "lex_p": 0.2}
# Confidence of the chosen quote: p = sigmoid(bias + sum(w * feature)), a logistic
# regression of "the quote contains a gold answer" (answerable questions; unanswerable and
# off-topic ones count as wrong) on 1,497 development questions. Reliability on that set:
# mean p 0.13/0.32/0.51/0.70/0.84 per band vs 0.02/0.37/0.52/0.69/0.83 correct.
CALIBRATION = {"bias": -3.576, "cos_s": 3.109, "lex": 2.582, "lex_p": 0.856,
               "type_miss": -1.677}


@dataclass(frozen=True)
class Candidate:
    """One sentence (or two neighbouring ones) of a retrieved passage, with its evidence.

    ``start``/``end`` are offsets in the article text. ``score`` is the selection score
    (unbounded, only its order matters); ``features`` holds :data:`FEATURES` plus
    ``margin`` (the best score minus the next passage's best, set on the first candidate).
    """

    hit_rank: int
    chunk: int
    sentence: int  # row in index.sentences
    start: int
    end: int
    score: float
    features: dict

    def __getattr__(self, name):  # c.cos_s etc.
        feats = self.__dict__.get("features")
        if feats is not None and name in feats:
            return feats[name]
        raise AttributeError(name)


# -- answer types -------------------------------------------------------------

_NUMBER_Q = re.compile(
    r"\b(how (many|much|long|old|far|large|big|tall|high|wide|deep|often|fast|heavy)|"
    r"what (percentage|percent|proportion|number|amount|size|age)|"
    r"(what|which) (year|years|date|decade|century|month|day|time period|period))\b"
    r"|^\s*when\b|\bwhen (was|were|did|does|do|is|will|had|has)\b", re.I)
_PERSON_Q = re.compile(r"^\s*(who|whom|whose)\b|\b(by|to|of) whom\b|"
                       r"^\s*(what|which) (person|company|organi[sz]ation|team|group)\b",
                       re.I)
_NUMBER_WORDS = ("one two three four five six seven eight nine ten eleven twelve "
                 "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty "
                 "thirty forty fifty sixty seventy eighty ninety hundred thousand million "
                 "billion trillion dozen dozens hundreds thousands millions billions half "
                 "quarter once twice january february march april may june july august "
                 "september october november december century centuries decade decades "
                 "spring summer autumn winter")
_NUMBERISH = re.compile(r"\d|\b(" + "|".join(_NUMBER_WORDS.split()) + r")\b", re.I)
_NUMBER_TOKEN = re.compile(r"\d[\d,.]*|\b(?:" + "|".join(_NUMBER_WORDS.split()) + r")\b",
                           re.I)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'’-]+")


def answer_type(question: str) -> str | None:
    """"number" (numbers and dates), "name" or None: the kind of answer asked for."""
    if _NUMBER_Q.search(question):
        return "number"
    if _PERSON_Q.search(question):
        return "name"
    return None


def has_type(kind: str | None, sentence: str, question_lower: str) -> bool:
    """True when ``sentence`` holds an answer of ``kind`` the question does not contain."""
    if kind is None:
        return True
    if kind == "number":
        return any(m.group(0).lower().rstrip(".,") not in question_lower
                   for m in _NUMBER_TOKEN.finditer(sentence))
    return any(m.group(0).lower() not in question_lower for m in _NAME.finditer(sentence))


# -- evidence -----------------------------------------------------------------

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


def _tokenize_all(texts: list[str]) -> list[list[str]]:
    """The BM25 terms of each text (stemmed, no stop words): the same terms as
    ``bm25s.tokenize``, without its per-call set-up (~17 ms for 90 sentences -> ~2 ms)."""
    from .retrieve import keyword_tokens

    return [keyword_tokens(t) for t in texts]


# Words that shape a question but are not its content (BM25's stop-word list keeps some of
# them). They must not count as evidence: in a small index "who" or "much" is rare, so it
# would weigh like a name.
QUESTION_WORDS = ("who whom whose what which when where why how much many long did does do "
                  "doing done is are was were be been being has have had can could would "
                  "should will shall may might must tell name give list describe explain")


@functools.cache
def _question_words() -> frozenset:
    from .retrieve import keyword_tokens

    return frozenset(keyword_tokens(QUESTION_WORDS))


def sentence_evidence(index, question: str, qvec: np.ndarray, hits: list[Hit]
                      ) -> list[tuple[int, int, int, int, int, dict]]:
    """(hit rank, chunk, sentence row, start, end, features) of every distinct sentence
    of the hit passages, in passage order."""
    rows = []  # (rank, chunk, sentence row, start, end, article row)
    seen: set[tuple[int, int, int]] = set()
    for rank, hit in enumerate(hits):
        art, _, _, s_lo, s_hi = (int(x) for x in index.chunks[hit.chunk])
        for j, (a, b) in enumerate(index.sentences[s_lo:s_hi].tolist()):
            if (art, a, b) in seen:
                continue  # the same sentence in an overlapping passage
            seen.add((art, a, b))
            rows.append((rank, hit.chunk, s_lo + j, a, b, art))
    if not rows:
        return []
    texts = [index.article(r[5]).text[r[3]:r[4]] for r in rows]
    tokens = _tokenize_all([question] + texts)
    skip = _question_words()
    terms = list(dict.fromkeys(t for t in tokens[0] if t and t not in skip))
    idf = idf_weights(index, terms)
    total = sum(idf.values()) or 1.0
    n = max(index.n_chunks, 1)
    top_idf = math.log(1 + (n + 0.5) / 0.5)
    sv = np.asarray(index.sentence_vectors[[r[2] for r in rows]], dtype=np.float32)
    cos = sv @ np.asarray(qvec, dtype=np.float32)
    present = [set(t) for t in tokens[1:]]
    per_chunk: dict[int, set] = {}
    for r, p in zip(rows, present):
        per_chunk.setdefault(r[1], set()).update(p)
    kind = answer_type(question)
    q_lower = question.lower()
    out = []
    for i, r in enumerate(rows):
        lex = sum(idf[t] for t in terms if t in present[i]) / total if terms else 0.0
        lex_p = sum(idf[t] for t in terms if t in per_chunk[r[1]]) / total if terms else 0.0
        miss = max((idf[t] for t in terms if t not in per_chunk[r[1]]), default=0.0)
        feats = {"cos_s": float(cos[i]), "cos_p": hits[r[0]].dense, "lex": lex,
                 "lex_p": lex_p, "miss_p": miss / top_idf, "rank": 1.0 / (1.0 + r[0]),
                 "type_miss": 0.0 if has_type(kind, texts[i], q_lower) else 1.0}
        out.append((r[0], r[1], r[2], r[3], r[4], feats))
    return out


def selection_score(features: dict, weights: dict | None = None) -> float:
    """The linear selection score (log-odds that the sentence holds the answer)."""
    w = SELECT if weights is None else weights
    return w.get("bias", 0.0) + sum(w.get(k, 0.0) * features[k] for k in FEATURES)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


def score_sentences(index, question: str, qvec: np.ndarray, hits: list[Hit]
                    ) -> list[Candidate]:
    """Every sentence of the hit passages with its evidence, best first. The first
    candidate may be widened to its neighbour sentence (see the module docstring) and
    carries the ``margin`` feature used by :func:`confidence`."""
    return rank_candidates(sentence_evidence(index, question, qvec, hits))


def rank_candidates(ev) -> list[Candidate]:
    """Candidates from :func:`sentence_evidence` rows, best first (the first widened to
    its neighbour when the answer straddles two sentences, with its ``margin``)."""
    out = [Candidate(rank, chunk, srow, a, b, selection_score(f), f)
           for rank, chunk, srow, a, b, f in ev]
    out.sort(key=lambda c: (-c.score, c.hit_rank, c.start))
    if not out:
        return out
    best = out[0]
    other = next((c.score for c in out[1:] if c.chunk != best.chunk), best.score - 1.0)
    best = _widen(best, ev)
    out[0] = Candidate(best.hit_rank, best.chunk, best.sentence, best.start, best.end,
                       best.score, {**best.features, "margin": best.score - other})
    return out


def _widen(best: Candidate, ev) -> Candidate:
    """``best`` spanning its neighbour too when it lacks the kind of answer asked for and
    the neighbour (next first, then previous) in the same passage has it."""
    if not WIDEN or best.features["type_miss"] == 0.0:
        return best
    for step in (1, -1):
        row = best.sentence + step
        for rank, chunk, srow, a, b, f in ev:
            if srow == row and chunk == best.chunk and f["type_miss"] == 0.0:
                start, end = min(a, best.start), max(b, best.end)
                return Candidate(best.hit_rank, best.chunk, best.sentence, start, end,
                                 best.score, {**best.features, "type_miss": 0.0})
    return best


def confidence(c: Candidate) -> float:
    """Probability-like confidence in [0, 1] that candidate ``c`` answers the question."""
    z = CALIBRATION["bias"] + sum(w * c.features.get(k, 0.0)
                                  for k, w in CALIBRATION.items() if k != "bias")
    return sigmoid(z)


def make_citations(index, candidates: list[Candidate], k: int, answers: bool
                   ) -> list[Citation]:
    """Up to ``k`` citations, one per passage, each quoting that passage's best sentence;
    ordered by that sentence's score (the first holds the answer). A citation's
    ``score`` is the selection score clipped to [0, 1] (a weighted sum of cosines and
    keyword coverage: higher is better, comparable within one answer)."""
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
            score=round(min(1.0, max(0.0, c.score)), 4),
            url=art.url, published=art.published, answers=answers))
    return cites
