"""Thai sentence ends, by PyThaiNLP's CRF sentence segmenter (``crfcut``) where installed.

Thai writes no full stop: a space ends a sentence, and spaces also stand around names,
numbers and between clauses (XQuAD's Thai articles: 4,155 spaces between Thai letters
for the 1,176 sentences of the English originals). PyThaiNLP (Apache-2.0, ``pip install
rag-quotes[multilingual]``) ships a CRF model trained on TED transcripts that tells the
spaces that end a sentence from the others (space-correct accuracy 0.87 on ORCHID, by its
authors). :func:`sentence_cuts` keeps its cuts at whitespace only (its cuts after a full
stop split abbreviations: "อี.ไอ.ดูปองต์", "ตร.กม."), and :mod:`rag.ingest.chunking`
joins the pieces into sentences of at least :data:`MIN_CHARS` characters. Without
PyThaiNLP, :mod:`rag.ingest.chunking` keeps its rule (a Thai space after 100 characters),
and the index records which one cut its sentences (:data:`SPLITTER`).

Pure functions of their text; the cache (:func:`functools.lru_cache`) is thread-safe.
"""

from __future__ import annotations

import functools
import importlib.util
import os

# Sentences shorter than this join the next. Chosen as the one that gives the Thai
# XQuAD articles as many sentences as their English originals have (1,213 against
# 1,176; 40: 1,412, 80: 1,048); the quotes are then as long as English ones (mean 224
# characters against 231, for text 0.94 times as long). XQuAD th, the multilingual
# model: hit@1 0.656 (the 100-character rule) -> 0.759 on 400 questions, 0.646 -> 0.755
# on all 1,190 (English 0.861); crfcut with every cut and no minimum 0.697 (400).
MIN_CHARS = 60

SPLITTER = f"th-crfcut-{MIN_CHARS}"  # recorded in the index's settings when used


@functools.cache
def available() -> bool:
    """True when PyThaiNLP and its CRF runtime (python-crfsuite) can be imported."""
    return all(importlib.util.find_spec(m) is not None for m in ("pythainlp", "pycrfsuite"))


@functools.cache
def _segmenter():
    """crfcut's ``segment``, imported once (it loads its dictionary and CRF model, ~1 s)."""
    # PyThaiNLP's bundled model only: no implicit downloads or writes (it would make
    # ~/pythainlp-data at import, which may not be writable on a server)
    os.environ.setdefault("PYTHAINLP_READ_ONLY", "1")
    from pythainlp.tokenize.crfcut import segment

    return segment


@functools.lru_cache(maxsize=4096)
def sentence_cuts(piece: str) -> tuple[tuple[int, int], ...]:
    """The sentence ends crfcut finds in ``piece``, as (end, next start) offsets into it:
    the whitespace run between them is left out of both sentences. Only cuts at
    whitespace count. Needs :func:`available`. Cached: at question time a quote's
    paragraph is cut again to complete a sentence a passage boundary cut."""
    parts = _segmenter()(piece)
    if "".join(parts) != piece:  # not a cover of the text: no cuts rather than wrong ones
        return ()
    cuts, pos = [], 0
    for part in parts[:-1]:
        pos += len(part)
        if not (piece[pos - 1].isspace() or piece[pos].isspace()):
            continue
        end, start = pos, pos
        while end > 0 and piece[end - 1].isspace():
            end -= 1
        while start < len(piece) and piece[start].isspace():
            start += 1
        if 0 < end and start < len(piece):
            cuts.append((end, start))
    return tuple(cuts)
