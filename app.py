"""`python app.py`: update the index of the articles folder, then serve the web UI and
the /api/ask API at http://127.0.0.1:7860 (see rag/web.py; presentation only)."""

import sys

from rag.app.web import main

if __name__ == "__main__":
    sys.exit(main())
