"""``python -m rag.eval DATA_DIR``: the evaluation (see :mod:`rag.evaluation.run`).

Part of the evaluation, not of the runtime: nothing at run time imports it.
"""

import sys

from .evaluation.run import main

if __name__ == "__main__":
    sys.exit(main())
