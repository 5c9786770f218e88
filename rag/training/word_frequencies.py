"""Write the general-English term frequencies the answer evidence discounts common words by.

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
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import io
import json
import sys
from pathlib import Path

from rag.answer.terms import TABLE, WORDFREQ_DIR
from rag.index.keyword import keyword_tokens
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
    freq: dict[str, float] = {}
    for word in wordfreq.top_n_list("en", args.words):
        terms = keyword_tokens(word)
        if len(terms) == 1 and not any(ch.isdigit() for ch in terms[0]):
            freq[terms[0]] = freq.get(terms[0], 0.0) + wordfreq.word_frequency(word, "en")
    lines = "".join(f"{t}\t{f:.3g}\n" for t, f in sorted(freq.items()))
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
        g.write(lines.encode("utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / TABLE).write_bytes(buf.getvalue())
    meta = {"name": "english-term-frequencies",
            "source": f"wordfreq {importlib.metadata.version('wordfreq')}",
            "licence": "CC BY-SA 4.0 (wordfreq's data; Robyn Speer)",
            "words": args.words, "terms": len(freq),
            "command": "python -m rag.training.word_frequencies",
            "sha256": {TABLE: file_sha256(args.out / TABLE)}}
    (args.out / "WORDFREQ.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
