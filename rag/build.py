"""``python -m rag.build``: build or update the index (progress bars, summary, exit code).

Exit codes: 0 success, 1 the build could not run (the one-line reason is printed),
2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rag.build",
        description="Build or update the index of a folder of articles "
                    "(.txt .md .html .htm .json .jsonl). Only new or changed articles are "
                    "embedded; removed ones are dropped.")
    parser.add_argument("--source", help="the articles folder (default: $RAG_SOURCE or seeds/)")
    parser.add_argument("--index", help="the index folder (default: $RAG_INDEX or index/)")
    parser.add_argument("--rebuild", action="store_true", help="re-embed every article")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    from .config import Config
    from .indexer import build
    from .types import RagError

    try:
        cfg = Config.from_env(source=args.source, index_dir=args.index)
        report = build(rebuild=args.rebuild, config=cfg, progress=not args.quiet)
    except RagError as exc:
        print(f"rag.build: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rag.build: interrupted; the previous index is unchanged", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"rag.build: error: {exc.strerror or exc} ({exc.filename or ''}); "
              "the previous index is unchanged", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    elif not args.quiet:
        print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
