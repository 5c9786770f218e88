"""``python -m rag.fit --model NAME_OR_PATH [--index DIR]``: fit the answer parameters
(sentence selection, confidence calibration, abstention threshold) for an embedding
model other than the bundled MiniLM, on the vendored development set, and store them
beside the index, where asking uses them (issue 27, item 2). Until then answers with
such a model say that their confidence is calibrated for MiniLM.

Part of the evaluation, not of the runtime: nothing at run time imports it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from .config import Config

    p = argparse.ArgumentParser(prog="python -m rag.fit", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True,
                   help="the embedding model: multilingual or a sentence-transformers folder")
    p.add_argument("--index", type=Path, help="the index folder to store them beside "
                   "(default: $RAG_INDEX or index/)")
    p.add_argument("--out", type=Path, help="write them here instead")
    p.add_argument("--data", type=Path, help="a development set folder (articles.jsonl, "
                   "questions.jsonl; default: data/eval)")
    p.add_argument("--limit", type=int, help="fit on about this many questions (quicker)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    from .evaluation.permodel import fit_for_model
    from .types import RagError

    index = args.index or Config.from_env().index_dir
    try:
        path = fit_for_model(args.model, index, args.out, args.data, args.limit,
                             quiet=args.quiet)
    except RagError as exc:
        print(f"rag.fit: {exc}", file=sys.stderr)
        return 2
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
