"""Article -> passages (chunks) and sentences, each a character span of the article.

Chunks come from LangChain's ``RecursiveCharacterTextSplitter`` (paragraph, then line,
then word, then character boundaries; lengths measured in the embedding model's word
pieces; a modest overlap). LangChain's splitter returns strings only, and recovering
their offsets with ``str.find`` breaks on repeated text, so :class:`OffsetTextSplitter`
runs the same recursive algorithm over *spans* of the original text: every chunk is a
``(start, end)`` pair and its text is ``text[start:end]`` by construction. The test suite
checks that the strings are exactly the ones LangChain's own ``split_text`` produces.

Sentences: lines first (headlines and list items end at a newline even without a full
stop), then BlingFire's sentence breaker inside each line, which returns offsets, then
the sentence ends of scripts BlingFire does not know (Devanagari, Thai...).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ..types import Article, Chunk
from . import thai

SEPARATORS = ("\n\n", "\n", " ", "")
Span = tuple[int, int]


class OffsetTextSplitter(RecursiveCharacterTextSplitter):
    """LangChain's recursive splitter, returning character spans instead of strings.

    Only ``keep_separator=True`` (``"start"``) is supported: with it every chunk is a
    contiguous run of the original text, so a span describes it exactly. ``split_text``
    (inherited) still returns LangChain's strings and serves as the oracle in tests.
    """

    def __init__(self, *, length_function: Callable[[str], int], chunk_size: int,
                 chunk_overlap: int, separators: Sequence[str] = SEPARATORS) -> None:
        super().__init__(separators=list(separators), keep_separator=True,
                         is_separator_regex=False, length_function=length_function,
                         chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                         strip_whitespace=True)

    def split_spans(self, text: str) -> list[Span]:
        """Spans ``(start, end)`` of the chunks of ``text``, in order."""
        return self._split_spans(text, 0, len(text), list(self._separators))

    # The three methods below mirror RecursiveCharacterTextSplitter._split_text,
    # _split_text_with_regex and TextSplitter._merge_splits/_join_docs step for step.
    def _split_spans(self, text: str, lo: int, hi: int, separators: list[str]) -> list[Span]:
        segment = text[lo:hi]
        separator, new_separators = separators[-1], []
        for i, sep in enumerate(separators):
            if not sep:
                separator = sep
                break
            if sep in segment:
                separator, new_separators = sep, separators[i + 1:]
                break
        pieces = _pieces(text, lo, hi, separator)
        out: list[Span] = []
        good: list[tuple[Span, int]] = []
        for piece in pieces:
            n = self._length_function(text[piece[0]:piece[1]])
            if n < self._chunk_size:
                good.append((piece, n))
                continue
            if good:
                out.extend(self._merge(text, good))
                good = []
            if not new_separators:
                out.extend(_strip(text, *piece))
            else:
                out.extend(self._split_spans(text, piece[0], piece[1], new_separators))
        if good:
            out.extend(self._merge(text, good))
        return out

    def _merge(self, text: str, pieces: list[tuple[Span, int]]) -> list[Span]:
        # The separator is "" (kept inside the pieces), so its length is 0.
        size, overlap = self._chunk_size, self._chunk_overlap
        docs: list[Span] = []
        current: list[tuple[Span, int]] = []
        total = 0
        for piece, n in pieces:
            if total + n > size:
                if current:
                    docs.extend(_strip(text, current[0][0][0], current[-1][0][1]))
                    while total > overlap or (total + n > size and total > 0):
                        total -= current[0][1]
                        current = current[1:]
            current.append((piece, n))
            total += n
        if current:
            docs.extend(_strip(text, current[0][0][0], current[-1][0][1]))
        return docs


def _pieces(text: str, lo: int, hi: int, separator: str) -> list[Span]:
    """Spans of ``text[lo:hi]`` cut before every occurrence of ``separator`` (kept at
    the start of the next piece), empty pieces dropped; single characters for ``""``."""
    if not separator:
        return [(i, i + 1) for i in range(lo, hi)]
    cuts = [m.start() + lo for m in re.finditer(re.escape(separator), text[lo:hi])]
    bounds = [lo, *cuts, hi]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _strip(text: str, start: int, end: int) -> list[Span]:
    """The span with surrounding whitespace removed (``str.strip`` semantics); [] if empty."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [(start, end)] if end > start else []


def chunk_article(article: Article, splitter: OffsetTextSplitter) -> list[Chunk]:
    """The article's chunks; ``chunk.text == article.text[chunk.start:chunk.end]``."""
    text = article.text
    return [Chunk(article.id, s, e, text[s:e]) for s, e in splitter.split_spans(text)]


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans inside ``text[start:end]``, whitespace-trimmed, in order.

    Lines are split first, then each line by BlingFire. Offsets are absolute in ``text``.
    """
    import blingfire  # a small C library; imported here so `--help` stays fast

    end = len(text) if end is None else end
    spans: list[Span] = []
    pos = start
    for line in text[start:end].split("\n"):
        line_start, pos = pos, pos + len(line) + 1
        if not line.strip():
            continue
        _, offsets = blingfire.text_to_sentences_and_offsets(line)
        if not offsets:  # BlingFire found nothing: keep the whole line
            offsets = [(0, len(line))]
        for a, b in offsets:
            for x, y in _script_breaks(line, a, b):
                spans.extend(_strip(text, line_start + x, line_start + y))
    return spans


# Sentence ends BlingFire does not know (measured on XQuAD: a Hindi or Thai paragraph
# came back as one 1,100-1,400 character "sentence"): the Devanagari danda and double
# danda, the Urdu full stop, the Armenian, Ethiopic, Burmese and Khmer full stops, each
# ending its sentence; and Thai, which ends a sentence with a space: with PyThaiNLP
# installed, the spaces its CRF model says end one (rag.ingest.thai), else a space
# between two Thai letters (not next to digits or Latin text: "24 ครั้ง" stays whole).
_SCRIPT_END = re.compile(r"[\u0964\u0965\u06D4\u0589\u1362\u104B\u17D4]+"
                         r"|(?<=[\u0E01-\u0E4E])[ \t\u00A0]+(?=[\u0E01-\u0E4E])")
_THAI = re.compile(r"[\u0E01-\u0E4E]")


MIN_THAI_SENTENCE = 100  # characters, without PyThaiNLP (40 gave clauses: quotes of 82
# characters, median, on XQuAD th against 191 in English, and hit@1 0.39)


def _script_ends(piece: str) -> tuple[list[tuple[int, int, bool]], int, bool]:
    """The sentence ends in ``piece`` BlingFire does not know, as (end, next start, is a
    space) in order; the fewest characters a sentence ending at a space must have; and
    whether a shorter last sentence joins the one before (PyThaiNLP's cuts)."""
    ends = [(m.start(), m.end(), m.group().isspace()) for m in _SCRIPT_END.finditer(piece)]
    if not _THAI.search(piece) or not thai.available():
        return ends, MIN_THAI_SENTENCE, False
    crf = [(end, start, True) for end, start in thai.sentence_cuts(piece)]
    return sorted([e for e in ends if not e[2]] + crf), thai.MIN_CHARS, True


def _script_breaks(line: str, a: int, b: int) -> list[Span]:
    """``line[a:b]`` cut after each sentence end of :func:`_script_ends` (a space end is
    left out of both sides, and cuts only a sentence of the minimum length, else the text
    joins the next sentence; with PyThaiNLP a short last one joins the one before); the
    one span when there is none (the usual case)."""
    piece = line[a:b]
    if piece.isascii():
        return [(a, b)]
    ends, minimum, join_tail = _script_ends(piece)
    out, pos = [], a
    for end, resume, space in ends:
        stop = a + end if space else a + resume
        if space and stop - pos < minimum:
            continue  # a Thai space inside a clause list, not a sentence end
        if stop > pos:
            out.append((pos, stop))
        pos = a + resume
    if pos < b:
        tail = len(line[pos:b].rstrip())
        if join_tail and out and tail < minimum:
            out[-1] = (out[-1][0], pos + tail)
        else:
            out.append((pos, b))
    return out or [(a, b)]


def sentences_in(sentences: Sequence[Span], start: int, end: int) -> list[Span]:
    """The sentence spans overlapping ``[start, end)``, clipped to it (for a chunk)."""
    out = []
    for a, b in sentences:
        if b <= start or a >= end:
            continue
        out.extend(_strip_clip(a, b, start, end))
    return out


def _strip_clip(a: int, b: int, start: int, end: int) -> list[Span]:
    a, b = max(a, start), min(b, end)
    return [(a, b)] if b > a else []
