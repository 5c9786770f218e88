"""``python -m rag.build``: build or update the index (see :func:`rag.cli.build_main`)."""

import sys

from .cli import build_main as main

if __name__ == "__main__":
    sys.exit(main())
