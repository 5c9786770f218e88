"""``python -m rag <command>``: the commands build, ask, serve and eval, see :mod:`rag.cli`."""

import sys

from .cli import main

sys.exit(main())
