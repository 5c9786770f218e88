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

The data has no question written to look answerable when it is not (SQuAD 2.0 style), so
the selector also learns from made ones (``swaps``, :func:`swapped_question`): a question
whose key word, one it shares with its answering sentence, is replaced by another word of
the same article that the sentence lacks ("How many downloads does the app have?" ->
"How many employees does the app have?"), paired with that sentence as a negative.

Measured, and off by default: with ``--swaps`` (52,683 pairs, 22.9 min on 2 cores) the
selector told a validation question from its swapped twin far better (AUC of the best
candidate's score 0.83 vs 0.70 for the shipped model, int8 ONNX both) but picked the
answering sentence less often (validation top-1 0.865 vs 0.886), and on the development
set the whole pipeline lost (hit@1 0.791 vs 0.819, CV 0.799 vs 0.816) without abstaining
on more unanswerable questions (CV 12.8 % vs 14.1 %): SQuAD 2.0's unanswerable questions
are not one-word swaps.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
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


_WORD = re.compile(r"[^\W\d_][\w'-]*|\d[\d,.]*\d|\d")
# Words too common to carry a question (swapping them would not change what it asks).
_STOP = frozenset("""
about above after again against also among another because been before being below
between both came come could does doing done down during each either else even ever every
from have having here however into just know known last least less like made make many
more most much must name named never next only other over said same several should since
some such than that their them then there these they this those though through under
until upon used very was were what when where whether which while whom whose will with
within without would year years your first second called call""".split())


def _kind(word: str) -> str:
    return "num" if word[0].isdigit() else "cap" if word[0].isupper() else "low"


def _content(word: str) -> bool:
    return word[0].isdigit() or (len(word) >= 4 and word.lower() not in _STOP)


def _shape(word: str) -> tuple[str, str]:
    """A crude part of speech: the kind and the inflection ending, so that a swap keeps
    the question grammatical ("seventh season" -> "seventh meyer" teaches grammar, not
    answering)."""
    low = word.lower()
    end = next((e for e in ("ing", "ed", "ly", "s") if low.endswith(e)), "")
    return _kind(word), end


def _answer_words(record: dict) -> set[str]:
    """The lower-cased words of the question's answering sentence(s) (empty: none)."""
    return {w.lower() for c, y in zip(record["candidates"], record["labels"]) if y
            for w in _WORD.findall(c)}


def _anchors(record: dict, answer_words: set[str]) -> list[re.Match]:
    """The content words of the question that its answering sentence(s) contain."""
    return [m for m in _WORD.finditer(record["question"])
            if _content(m.group()) and m.group().lower() in answer_words]


def word_pools(records: list[dict]) -> dict[str, list[str]]:
    """Per group, the words its questions share with their answering sentences (mostly
    the names and nouns a question turns on), sorted so that sampling is deterministic."""
    pools: dict[str, set[str]] = {}
    for r in records:
        pools.setdefault(r["group"], set()).update(m.group()
                                                   for m in _anchors(r, _answer_words(r)))
    return {g: sorted(ws) for g, ws in pools.items()}


def swapped_question(record: dict, pool: list[str], rnd: random.Random) -> str | None:
    """The question with one of its content words that its answering sentence(s) contain
    (a name or number when it has one) replaced by a word of the same shape (number,
    capitalised or lower case; same inflection ending) from ``pool`` that neither the
    answering sentences nor the question contain; None when there is no such word for the
    one anchor drawn, or the question has no answering sentence. The result is a question
    about the same article that the answering sentence does not answer."""
    pos_words = _answer_words(record)
    if not pos_words:
        return None
    q = record["question"]
    q_words = {w.lower() for w in _WORD.findall(q)}
    anchors = _anchors(record, pos_words)
    names = [m for m in anchors if _kind(m.group()) != "low"]
    if not (anchors := names or anchors):  # swap a name or number when there is one
        return None
    m = rnd.choice(anchors)
    shape = _shape(m.group())
    options = [w for w in pool if _shape(w) == shape and w.lower() not in pos_words
               and w.lower() not in q_words]
    if not options:
        return None
    return q[:m.start()] + rnd.choice(options) + q[m.end():]


def make_pairs(records: list[dict], negatives: int, seed: int,
               drop_context: float = 0.0, swaps: bool = False) -> list[Pair]:
    """Every positive of every question plus up to ``negatives`` sampled negatives (all of
    them when ``negatives`` < 0). Questions without a positive keep their negatives (a
    weak "no answer" signal). With ``swaps``, each question that has an answering sentence
    also gives one made negative: :func:`swapped_question` paired with that sentence
    (qid ``<id>~swap``)."""
    rnd = random.Random(seed)
    pools = word_pools(records) if swaps else {}
    out = []
    for r in records:
        if swaps and (q2 := swapped_question(r, pools[r["group"]], rnd)) is not None:
            j = rnd.choice([j for j, y in enumerate(r["labels"]) if y])
            out.append(Pair(q2, r["candidates"][j], context_of(r, j), 0, r["id"] + "~swap"))
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
