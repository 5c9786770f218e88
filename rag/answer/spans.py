"""Where a quote starts and ends: whole sentences, with the sentence they depend on.

The index stores each passage's sentences clipped to the passage (a sentence that
straddles two passages is cut in both), and the selector chooses one sentence. Two rules
make the quote a reader can trust on its own (issue 23, item 4):

* :func:`whole_sentences`: a quote cut by a passage boundary is completed to the whole
  sentence(s) it belongs to, found by the same splitter the build uses
  (:func:`rag.ingest.chunking.split_sentences`) on the quote's lines;
* :func:`with_antecedent`: a quote that opens with a pronoun or a reference back ("They
  said...", "The company...", "It is called...") takes in the sentence before it, which
  names what it is about, when that sentence lies in the same passage.

Both return offsets into the article text, so ``text[start:end]`` is still the quote
(the offsets invariant holds by construction). Pure functions of their arguments; safe to
call from any thread.
"""

from __future__ import annotations

import re

# Openings that refer back to something the sentence does not name. Measured on the
# pooled development evidence (python -m rag.eval ... --fit --from-evidence POOL.jsonl,
# article-wise 4-fold CV, the shipped selector): taking in the previous sentence of the
# same passage for these raised hit@1 on the TyDi slice 0.595 -> 0.606, SQuAD 2.0 dev
# 0.840 -> 0.848, SQuADShifts 0.796 -> 0.801, SQuAD 1.1 dev 0.745 -> 0.747, XQuAD en 0.859
# -> 0.861, eval-news 0.247 -> 0.246 (one question of 194), at +10 characters per quote.
# Thai (issue 27) writes no spaces between words, so its openings match as prefixes:
# the relative "ซึ่ง" (which), the conjunctions "และ" (and), "แต่" (but; not "แต่ละ",
# each), "หรือ" (or), "จึง" / "ดังนั้น" (so), "อย่างไรก็ตาม" (however), "นอกจากนี้" (besides),
# "ทั้งนี้" (in this), "โดย" (by which; not "โดยทั่วไป", generally) and the pronouns
# "พวกเขา" (they), "เขา" (he/she; also "hill" in names such as เขาใหญ่, rare as an
# opening), "เธอ", "มัน" (it) and "ท่าน". PyThaiNLP's sentence model cuts at clause
# spaces, so a Thai "sentence" often opens with one of these and needs the clause before
# it. Measured on all 1,190 XQuAD Thai questions (multilingual model, rag.fit
# parameters): hit@1 0.755 -> 0.764 at 227 -> 240 characters a quote; others unchanged.
DEPENDS = re.compile(
    r"(?:(?:He|She|It|They|This|These|That|Those|Its|His|Her|Their|There|Such"
    r"|The (?:company|firm|group|park|move|deal|report|plan|bank|government|city|team|club"
    r"|country|band|film|show|game|minister|president|star|singer|player|court|study))\b"
    r"|ซึ่ง|และ|แต่(?!ละ)|หรือ|จึง|ดังนั้น|อย่างไรก็ตาม|นอกจากนี้|ทั้งนี้|โดย(?!ทั่วไป)"
    r"|พวกเขา|เขา|เธอ|มัน|ท่าน)")

WINDOW = 4000  # characters searched around a quote on a line without line breaks


def depends_on_previous(sentence: str) -> bool:
    """True when ``sentence`` opens with a word that refers back (see :data:`DEPENDS`)."""
    return DEPENDS.match(sentence.lstrip("\"'“‘(")) is not None


def _line_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The lines holding ``text[start:end]``, at most :data:`WINDOW` characters either
    side (a text without line breaks is split near the quote only)."""
    lo = text.rfind("\n", max(0, start - WINDOW), start) + 1 or max(0, start - WINDOW)
    hi = text.find("\n", end, end + WINDOW)
    return lo, (hi if hi != -1 else min(len(text), end + WINDOW))


def whole_sentences(text: str, start: int, end: int,
                    passage: tuple[int, int] | None = None) -> tuple[int, int]:
    """``[start, end)`` widened to the whole sentences it overlaps (a quote cut by a
    passage boundary), by the build's own sentence splitter; unchanged when it already
    is whole sentences or the splitter finds none around it. With ``passage`` (the
    bounds of the passage whose stored sentences ``[start, end)`` are), a quote touching
    neither bound is whole already (passages are whitespace-trimmed, so a sentence the
    build clipped starts or ends exactly at one) and is returned without splitting again."""
    if passage is not None and passage[0] < start and end < passage[1]:
        return start, end
    from ..ingest.chunking import split_sentences

    lo, hi = _line_bounds(text, start, end)
    spans = [(a, b) for a, b in split_sentences(text, lo, hi) if b > start and a < end]
    if not spans:
        return start, end
    return min(start, spans[0][0]), max(end, spans[-1][1])


def with_antecedent(text: str, start: int, end: int, floor: int,
                    sentences: list[tuple[int, int]]) -> int:
    """The quote's start moved back to the previous sentence when the quote depends on
    it (:func:`depends_on_previous`) and that sentence starts at or after ``floor`` (the
    passage start); ``sentences`` are the passage's sentence spans in order."""
    if not depends_on_previous(text[start:end]):
        return start
    before = [a for a, b in sentences if b <= start and a >= floor]
    return before[-1] if before else start
