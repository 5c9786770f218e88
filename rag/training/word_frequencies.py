"""Write the term frequencies the answer evidence discounts common words by.

    pip install wordfreq==3.1.1      # only here; nothing at question time needs it
    python -m rag.training.word_frequencies [--words 100000] [--out rag/models/wordfreq]

For each of the ``--words`` most frequent English words of wordfreq 3.1.1 (Robyn Speer;
data CC BY-SA 4.0, built from Wikipedia, subtitles, news, books, web text and social
media), the project's own BM25 term (:func:`rag.index.keyword.keyword_tokens`: lower case,
stop words dropped, Snowball-stemmed) gets the word's frequency (per word of running text)
added to it, so ``say``, ``says`` and ``saying`` count together as ``say``. Written as
``stems-en.tsv.gz`` (``term<TAB>frequency``, sorted by term; gzip with a fixed mtime, so the
bytes are reproducible), with ``WORDFREQ.json`` (source, settings, sha256), checked on load
by :mod:`rag.answer.terms`. Numbers are left out (a number in a question keeps its weight).

The same for every other language with a keyword analyzer that wordfreq has (issue 27;
:data:`rag.index.keyword.LATIN_STEMMERS`, Norwegian as wordfreq's "nb"; 16 of 18): its
words more frequent than :data:`MIN_FREQ`, under that analyzer's prefixed terms; and for
Arabic, Russian, Greek and Hindi (:data:`SCRIPTS`), their words' stems in their own
script (the terms every analyzer gives them). All in ``stems-other.tsv.gz`` (rarer words
would keep ~all their weight anyway: the discount at 2e-6 is 0.92, at 1e-6 none).
Chinese and Thai are indexed as character pairs, not words, and Vietnamese words are
English-analyzed Latin syllables: they have none.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import io
import json
import re
import sys
from pathlib import Path

from rag.answer.terms import OTHER_TABLE, TABLE, WORDFREQ_DIR
from rag.index.keyword import LATIN_STEMMERS, keyword_tokens
from rag.index.store import file_sha256


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rag.training.word_frequencies",
                                description=__doc__.split("\n")[0])
    p.add_argument("--words", type=int, default=100_000)
    p.add_argument("--out", type=Path, default=WORDFREQ_DIR)
    args = p.parse_args(argv)
    try:
        import wordfreq
    except ImportError:
        p.error("needs wordfreq: pip install wordfreq==3.1.1")
    english = _frequencies(wordfreq, "en", "en", args.words, 0.0)
    available = set(wordfreq.available_languages())
    others: dict[str, dict[str, float]] = {}
    for code in LATIN_STEMMERS:
        lang = _WORDFREQ_CODES.get(code, code)
        if lang in available:
            others[code] = _frequencies(wordfreq, lang, code, args.words, MIN_FREQ)
    for lang, script in SCRIPTS.items():
        others[lang] = _frequencies(wordfreq, lang, "en", args.words, MIN_FREQ,
                                    re.compile(script))
    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / TABLE, english)
    _write(args.out / OTHER_TABLE, {t: f for table in others.values()
                                    for t, f in table.items()})
    meta = {"name": "term-frequencies",
            "source": f"wordfreq {importlib.metadata.version('wordfreq')}",
            "licence": "CC BY-SA 4.0 (wordfreq's data; Robyn Speer)",
            "words": args.words, "terms": len(english),
            "other_languages": {code: len(t) for code, t in others.items()},
            "min_frequency_other_languages": MIN_FREQ,
            "command": "python -m rag.training.word_frequencies",
            "sha256": {TABLE: file_sha256(args.out / TABLE),
                       OTHER_TABLE: file_sha256(args.out / OTHER_TABLE)}}
    (args.out / "WORDFREQ.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    return 0


MIN_FREQ = 2e-6  # other languages: words rarer than this are left out (see above)
_WORDFREQ_CODES = {"no": "nb"}  # an analyzer's code -> wordfreq's language code
# languages whose words keep their script's terms under every analyzer: their script
SCRIPTS = {"ar": "[\u0600-\u06FF\u0750-\u077F]", "ru": "[\u0400-\u04FF]",
           "el": "[\u0370-\u03FF\u1F00-\u1FFF]", "hi": "[\u0900-\u097F]"}


def _frequencies(wordfreq, lang: str, analyzer: str, words: int, least: float,
                 script: re.Pattern | None = None) -> dict[str, float]:
    """BM25 term (under ``analyzer``) -> the summed frequency of the ``words`` most
    frequent words of wordfreq's ``lang`` that have it, those above ``least`` only;
    with ``script``, only terms that begin in it."""
    freq: dict[str, float] = {}
    for word in wordfreq.top_n_list(lang, words):
        f = wordfreq.word_frequency(word, lang)
        if least and f <= least:
            break  # the list is in order of frequency
        terms = keyword_tokens(word, analyzer)
        if len(terms) != 1 or any(ch.isdigit() for ch in terms[0]):
            continue
        term = terms[0]
        own = script.match(term) if script is not None else \
            analyzer == "en" or term.startswith(analyzer + ":")
        if own:  # the language's own terms only
            freq[term] = freq.get(term, 0.0) + f
    return freq


def _write(path: Path, freq: dict[str, float]) -> None:
    """``term<TAB>frequency`` lines sorted by term, gzip with a fixed mtime."""
    lines = "".join(f"{t}\t{f:.3g}\n" for t, f in sorted(freq.items()))
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
        g.write(lines.encode("utf-8"))
    path.write_bytes(buf.getvalue())


if __name__ == "__main__":
    sys.exit(main())
