"""``python -m rag.ask "question"``: answer it (see :func:`rag.cli.ask_main`)."""

import sys

from .cli import ask_main as main

if __name__ == "__main__":
    sys.exit(main())
