"""``python -m rag.ask "question"``: print the answer and its citations (``--json``: the
same :class:`~rag.types.Answer` as JSON).

Exit codes: 0 answered or abstained, 1 no usable index, 2 unusable question or option.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from .config import RETRIEVAL_MODES
from .types import NO_ANSWER


def render_text(answer) -> str:
    """A plain-text rendering of an Answer for the terminal: the quote marked «…»."""
    out = []
    if answer.abstained:
        out.append(answer.message or NO_ANSWER)
        if answer.citations:
            out.append("\nNearest passages (they do not answer it):")
    else:
        out.append(f"“{answer.text}” [1]")
        out.append(f"(confidence {answer.score:.2f})")
        if answer.message:
            out.append(f"note: {answer.message}")
        out.append("")
    for c in answer.citations:
        where = c.source if c.source == c.article_id else f"{c.source} ({c.article_id})"
        out.append(f"[{c.n}] {c.title} — {where}  score {c.score:.2f}")
        rel_s, rel_e = c.start - c.passage_start, c.end - c.passage_start
        marked = c.passage[:rel_s] + "«" + c.passage[rel_s:rel_e] + "»" + c.passage[rel_e:]
        out.append(textwrap.indent(textwrap.fill(" ".join(marked.split()), 96), "    "))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rag.ask",
        description="Answer a question with a verbatim quote from the indexed articles.")
    parser.add_argument("question", help="the question, in quotes")
    parser.add_argument("--index", help="the index folder (default: $RAG_INDEX or index/)")
    parser.add_argument("--k", type=int, help="number of citations (default 5)")
    parser.add_argument("--retrieval", choices=RETRIEVAL_MODES,
                        help="retrieval mode (default hybrid)")
    parser.add_argument("--json", action="store_true", help="print the Answer as JSON")
    args = parser.parse_args(argv)

    from .answering import ask
    from .config import Config
    from .types import InvalidQuestion, RagError

    try:
        cfg = Config.from_env(index_dir=args.index)
        answer = ask(args.question, k=args.k, config=cfg, retrieval=args.retrieval)
    except InvalidQuestion as exc:
        print(f"rag.ask: {exc}", file=sys.stderr)
        return 2
    except RagError as exc:
        print(f"rag.ask: error: {exc}", file=sys.stderr)
        return 1
    try:
        print(answer.to_json(indent=1) if args.json else render_text(answer), flush=True)
    except BrokenPipeError:  # `rag-ask ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
