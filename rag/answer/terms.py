"""How much a question term says about which sentence answers: its rarity in the indexed
passages (BM25's IDF), discounted when the word is common in its language at large
(English; and, issue 27, the languages with their own keyword analyzer, whose terms are
prefixed, and Arabic, Russian, Greek and Hindi, whose stems are in their own script:
``stems-other.tsv.gz``).

Why: the IDF of a small folder is a poor guide. In the one-article seed index a word no
passage holds gets the highest weight there is, so a reader's own "say", "call", "need"
or "lose" outweighed "Truist" or "Andreessen", and a quote that held every name of the
question but paraphrased its verb ("remarked" for "say") lost most of its keyword
coverage and abstained. General-English frequency (wordfreq, shipped as a table of the
project's own BM25 terms, ``rag/models/wordfreq/``) tells those words apart at any
folder size: a term whose frequency ``f`` (per word of running text) is at most
:data:`RARE` keeps its weight, a more common one is multiplied by
``ln(1 + 1/(L f)) / ln(1 + 1/(L RARE))`` (``L`` = :data:`PASSAGE_WORDS`: roughly the IDF the
word would have among general-English passages, relative to a rare word's). Numbers and
words not in the table (names, jargon) keep their weight.

The confidence reads these weights (features ``lex_c``, ``lex_cp``); selection keeps the
plain IDF, which chose better on the development set (fast path, one sentence, CV 0.740
vs 0.723). Measured with the previous selector, confidence refitted: the seed article's
reader questions (``tests/data/seed_questions.jsonl``) 15 -> 17 of 23 right, 5 of 6
unanswerable ones still abstained; development set, whole pipeline CV by article: hit@1
0.816 -> 0.813, abstained answerable / unanswerable / off-topic 4.8 / 14.1 / 92.9 % ->
4.6 / 13.8 / 94.0 % (fast path: 0.793 -> 0.790, 4.3 / 11.9 / 92.4 -> 4.5 / 12.5 /
94.6 %).

The tables are read once per process (~63k English terms, 0.05 s; ~260k of 20 other
languages, 0.25 s more, only once a question term is prefixed or not ASCII) and checked
against their sha256. Pure functions otherwise; thread-safe.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
from collections.abc import Mapping
from pathlib import Path

from ..index.store import file_sha256
from ..types import IndexMismatch

WORDFREQ_DIR = Path(__file__).resolve().parents[1] / "models" / "wordfreq"
TABLE = "stems-en.tsv.gz"
# the other languages' terms: prefixed ("de:punkt") or in another script ("пантер")
OTHER_TABLE = "stems-other.tsv.gz"
RARE = 1e-6  # one per million words (wordfreq Zipf 3): rarer words keep their full weight
PASSAGE_WORDS = 150  # words in a passage of ~200 word pieces (Config.chunk_tokens)
_RARE_IDF = math.log1p(1.0 / (PASSAGE_WORDS * RARE))  # what a RARE word's discount divides by


@functools.cache
def english_frequencies(folder: Path = WORDFREQ_DIR) -> Mapping[str, float]:
    """BM25 term -> its general-English frequency per word (see the module doc)."""
    return _read_table(folder, TABLE)


@functools.cache
def frequencies(folder: Path = WORDFREQ_DIR) -> Mapping[str, float]:
    """BM25 term -> its frequency per word in its language: English terms, the prefixed
    terms of the other analyzers and the stems of the other scripts, in one mapping (the
    few English-list words in other scripts take their own language's frequency)."""
    return {**english_frequencies(folder), **_read_table(folder, OTHER_TABLE)}


def _read_table(folder: Path, name: str) -> dict[str, float]:
    meta = json.loads((folder / "WORDFREQ.json").read_text(encoding="utf-8"))
    path = folder / name
    if not path.is_file() or file_sha256(path) != meta["sha256"].get(name):
        raise IndexMismatch(f"{path} is missing or does not match its checksum in "
                            f"WORDFREQ.json; reinstall rag")
    out = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            term, freq = line.rstrip("\n").split("\t")
            out[term] = float(freq)
    return out


def generality_discount(term: str, freqs: Mapping[str, float]) -> float:
    """In (0, 1]: 1 for rare, unknown and numeric terms, less the more common the term
    is in its language at large."""
    f = freqs.get(term)
    if f is None or f <= RARE:
        return 1.0
    return math.log1p(1.0 / (PASSAGE_WORDS * f)) / _RARE_IDF


def term_weights(idf: Mapping[str, float]) -> dict[str, float]:
    """Each term's IDF times its :func:`generality_discount`."""
    # the other languages' table (~0.25 s to read) only once such a term is asked
    freqs = frequencies() if any(":" in t or not t.isascii() for t in idf) \
        else english_frequencies()
    return {t: v * generality_discount(t, freqs) for t, v in idf.items()}
