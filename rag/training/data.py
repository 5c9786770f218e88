"""Training pairs for the answer selector from ``shared/train/sentences.jsonl``.

A line of that file is one question with candidate sentences and 0/1 labels (SQuAD v1.1
train, SelQA, QED; see its README). Train and validation are split by ``group`` (the
article or page), never by question: questions about one article share sentences.

What the selector reads (built by the runtime's own :func:`rag.answer.selector.pair_text`
and :func:`~rag.answer.selector.make_context`, so training and question time agree): the question, and the sentence followed by a little context, the article title and
the sentence before it. SelQA and QED give their candidates in document order with the
article title as ``group``, so both are known there; the SQuAD lines are shuffled sentences
without a title, so they carry no context. Context is also dropped at random
(``drop_context``) so that the model does not rely on it.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from rag.answer.selector import make_context, pair_text  # noqa: F401 (what the runtime reads)

SQUAD_PREFIX = "squad"


@dataclass(frozen=True)
class Pair:
    question: str
    sentence: str
    context: str
    label: int
    qid: str


def read_questions(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def is_validation(group: str, share: int = 20) -> bool:
    """About 1/``share`` of the groups, chosen by a stable hash of the group name."""
    return int(hashlib.sha256(group.encode("utf-8")).hexdigest(), 16) % share == 0


def has_order(record: dict) -> bool:
    """True when the candidates are in document order under a real title (SelQA, QED)."""
    return not record["id"].startswith(SQUAD_PREFIX)


def context_of(record: dict, j: int) -> str:
    if not has_order(record):
        return ""
    prev = record["candidates"][j - 1] if j > 0 else ""
    return make_context(record["group"], prev)


def make_pairs(records: list[dict], negatives: int, seed: int,
               drop_context: float = 0.0) -> list[Pair]:
    """Every positive of every question plus up to ``negatives`` sampled negatives (all of
    them when ``negatives`` < 0). Questions without a positive keep their negatives (a
    weak "no answer" signal)."""
    rnd = random.Random(seed)
    out = []
    for r in records:
        pos = [j for j, y in enumerate(r["labels"]) if y]
        neg = [j for j, y in enumerate(r["labels"]) if not y]
        if 0 <= negatives < len(neg):
            neg = rnd.sample(neg, negatives)
        for j in pos + neg:
            ctx = context_of(r, j)
            if ctx and drop_context and rnd.random() < drop_context:
                ctx = ""
            out.append(Pair(r["question"], r["candidates"][j], ctx, int(r["labels"][j]),
                            r["id"]))
    rnd.shuffle(out)
    return out


def split(records: list[dict]) -> tuple[list[dict], list[dict]]:
    train = [r for r in records if not is_validation(r["group"])]
    val = [r for r in records if is_validation(r["group"])]
    return train, val
