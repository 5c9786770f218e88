"""The metric functions of ``python -m rag.eval``: pure functions, no I/O, no model.

Answer text is scored as in SQuAD (Rajpurkar et al. 2016): both sides are normalised
(lower case, punctuation and the articles a/an/the removed, white space collapsed) and
compared as token bags. Because this system answers with a whole sentence rather than a
minimal span, the headline answer metric is ``contains`` ("hit"): the normalised answer
text contains a normalised gold answer as a run of whole tokens. Token F1 is reported
too; it is low by construction for sentence answers (precision suffers), and is the
figure to watch when making quotes shorter.

Retrieval: a citation is a hit when it is from the gold article and its passage covers
one gold answer span ``[start, start + len(answer))`` completely.

Every function here is deterministic and thread-safe.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from ..index.keyword import UNSPACED_CHAR

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def _other_punct(ch: str) -> bool:
    return not ch.isascii() and unicodedata.category(ch).startswith("P")


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no a/an/the, single spaces.
    ASCII punctuation is removed as SQuAD removes it; any other punctuation (Unicode
    category P: the Arabic comma, CJK full stops, curly quotes, dashes) becomes a space,
    as MLQA's evaluation treats it. Before, XQuAD Arabic quotes such as "... وارسو، ..."
    never held the gold "وارسو" (hit@1 read 0.62 instead of 0.74 on the same quotes); on
    the English sets the same quotes scored within 0.005 of before."""
    text = text.lower()
    text = "".join(" " if _other_punct(ch) else ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0."""
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in golds))


def contains_answer(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction contains a normalised gold answer as whole
    tokens (``"in 1066 ad"`` contains ``"1066"``, not ``"06"``), else 0.0. A gold answer
    that normalises to nothing never matches. A gold answer in a script written without
    spaces (Chinese, Thai...) matches as a run of characters, as MLQA's evaluation does
    for Chinese (whole tokens never matched there: XQuAD zh hit@1 read 0.48 at R@1
    0.91)."""
    plain = normalize_answer(prediction)
    p = f" {plain} "
    unspaced = UNSPACED_CHAR.search(plain) is not None
    for g in golds:
        g = normalize_answer(g)
        if not g:
            continue
        if f" {g} " in p:
            return 1.0
        # between such characters a word ends without a space ("308分"); Latin letters
        # and digits still end only at a non-letter ("1308" does not hold "308")
        if (unspaced or UNSPACED_CHAR.search(g)) and re.search(
                rf"(?<![0-9a-z]){re.escape(g)}(?![0-9a-z])", plain):
            return 1.0
    return 0.0


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD token F1 of ``prediction``, the maximum over ``golds`` (0.0 if none)."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for g in golds:
        gold = normalize_answer(g).split()
        if not pred or not gold:
            best = max(best, float(pred == gold))
            continue
        common = sum((Counter(pred) & Counter(gold)).values())
        if common == 0:
            continue
        precision, recall = common / len(pred), common / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def covers_answer(passage_start: int, passage_end: int,
                  spans: Iterable[tuple[int, int]]) -> bool:
    """True when ``[passage_start, passage_end)`` holds one whole answer span."""
    return any(passage_start <= s and e <= passage_end for s, e in spans)


def first_hit_rank(hits: Sequence[bool]) -> int | None:
    """1-based rank of the first True in ``hits``, or None."""
    for i, h in enumerate(hits, 1):
        if h:
            return i
    return None


def recall_at(hits: Sequence[bool], k: int) -> float:
    """1.0 when one of the first ``k`` results is a hit."""
    return float(any(hits[:k]))


def reciprocal_rank(hits: Sequence[bool], k: int = 10) -> float:
    """1 / rank of the first hit within the first ``k`` results, else 0.0 (MRR@k)."""
    r = first_hit_rank(hits[:k])
    return 0.0 if r is None else 1.0 / r


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation; nan for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; nan for no values (shown as "-" in the table)."""
    xs = list(values)
    return sum(xs) / len(xs) if xs else math.nan


def share(flags: Iterable[bool]) -> float:
    """The share of True values; nan for none."""
    return mean(float(bool(f)) for f in flags)


def summarise(rows: Sequence[dict]) -> dict:
    """The report figures over per-question ``rows`` (as :mod:`rag.eval` makes them).

    A row has ``kind`` ("answerable", "unanswerable" or "offtopic"), ``abstained``,
    ``latency_ms``, ``integrity`` (share of that answer's citations whose quote is exact,
    with ``n_citations``), and for answerable ones ``retrieval_hits`` (one bool per
    citation), ``hit``, ``f1``, ``length``. Answer metrics (hit@1, F1, length) count
    answerable questions that were *answered*; ``hit_at_1_all`` counts an abstention as a
    miss. Figures with no question to count are nan.
    """
    ans = [r for r in rows if r["kind"] == "answerable"]
    answered = [r for r in ans if not r["abstained"]]
    unans = [r for r in rows if r["kind"] == "unanswerable"]
    off = [r for r in rows if r["kind"] == "offtopic"]
    n_cites = sum(r["n_citations"] for r in rows)
    exact = sum(r["integrity"] * r["n_citations"] for r in rows)
    lat = [r["latency_ms"] for r in rows]
    return {
        "questions": len(rows),
        "answerable": len(ans),
        "unanswerable": len(unans),
        "offtopic": len(off),
        "recall@1": mean(recall_at(r["retrieval_hits"], 1) for r in ans),
        "recall@5": mean(recall_at(r["retrieval_hits"], 5) for r in ans),
        "mrr@10": mean(reciprocal_rank(r["retrieval_hits"], 10) for r in ans),
        "hit@1": mean(r["hit"] for r in answered),
        "hit@1_all": mean(r["hit"] if not r["abstained"] else 0.0 for r in ans),
        "f1": mean(r["f1"] for r in answered),
        "answer_chars": mean(r["length"] for r in answered),
        "answerable_abstained": share(r["abstained"] for r in ans),
        "unanswerable_abstained": share(r["abstained"] for r in unans),
        "offtopic_abstained": share(r["abstained"] for r in off),
        "integrity": exact / n_cites if n_cites else math.nan,
        "latency_p50_ms": percentile(lat, 50),
        "latency_p95_ms": percentile(lat, 95),
    }
