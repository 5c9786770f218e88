"""The web server: a FastAPI app with ``POST /api/ask`` and the Gradio UI mounted at ``/``.

- :func:`create_app` (``cfg`` injectable) returns the FastAPI app; nothing is served
  from disk beyond what Gradio needs (no ``allowed_paths``: neither the articles folder
  nor the index is reachable as files).
- ``POST /api/ask`` ``{"question": str, "k": int?, "retrieval": str?}`` returns the
  :class:`~rag.types.Answer` as JSON (the same as ``python -m rag.ask --json``; the
  OpenAPI schema is generated from that dataclass). Errors are ``{"error": message}``
  with status 400 (unusable question or parameters), 413 (question too long) or 503 (no usable index).
  At most ``cfg.concurrency`` questions are answered at once. OpenAPI at
  ``/api/openapi.json``, docs at ``/api/docs``.
- ``POST /api/sources`` ``{"urls": [...], "feeds": [...]}`` fetches web pages and
  subscribes to feeds, updates the index and returns the :class:`~rag.types.BuildReport`
  (``fetched``: what happened to each page); ``GET /api/feeds`` lists the remembered
  feeds; ``GET /api/status`` the live version and the background updater's last run.
- :func:`main` (``python app.py`` / ``rag-serve``) updates the index incrementally,
  prints the build summary and serves on ``cfg.host:cfg.port`` (127.0.0.1:7860 by
  default; ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` or ``RAG_HOST`` / ``RAG_PORT``).
  ``--watch`` rebuilds when the articles folder changes, ``--poll 30m`` polls the feeds
  (:mod:`rag.app.watch`). It never creates a public share link.
"""


import argparse
import sys
import threading
from typing import Literal, Optional

from ..config import RETRIEVAL_MODES, Config
from ..types import Answer, IndexMismatch, IndexMissing, InvalidQuestion, RagError


def create_app(cfg: Config | None = None, updater=None):
    """The FastAPI application (API + mounted Gradio UI) for ``cfg``. ``updater`` (a
    running :class:`rag.app.watch.Updater`) is shown in the UI's status line and in
    ``GET /api/status``."""
    import gradio as gr
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field

    from .. import __version__
    from ..answer.pipeline import ask
    from ..types import BuildReport
    from .library import Library
    from .ui import CSS, create_blocks
    from .watch import index_status

    cfg = cfg or Config.from_env()
    limit = threading.BoundedSemaphore(cfg.concurrency)
    max_chars = cfg.max_question_chars * 4

    class AskRequest(BaseModel):
        question: str = Field(description="the question, in plain words",
                              examples=["How much did it cost to train R1?"])
        k: Optional[int] = Field(None, description=f"number of citations, 1-{cfg.max_k} "
                                                   f"(default {cfg.k})")
        retrieval: Optional[Literal[RETRIEVAL_MODES]] = Field(
            None, description=f"retrieval mode (default {cfg.retrieval})")

    class ErrorOut(BaseModel):
        error: str

    class SourcesRequest(BaseModel):
        urls: list[str] = Field(default_factory=list, max_length=100,
                                description="web pages to fetch as articles",
                                examples=[["https://example.org/news/story.html"]])
        feeds: list[str] = Field(default_factory=list, max_length=20,
                                 description="RSS/Atom feeds to subscribe to (remembered and "
                                             "polled on every build)",
                                 examples=[["https://example.org/feed.xml"]])

    library = Library(cfg)

    app = FastAPI(title="rag", version=__version__, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Extractive question answering over a folder of articles: "
                              "every answer is a verbatim quote with numbered citations.")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return JSONResponse({"error": "invalid request: " + "; ".join(parts)}, status_code=400)

    @app.post("/api/ask", response_model=Answer, tags=["ask"],
              summary="Answer a question with a cited quote",
              responses={400: {"model": ErrorOut, "description": "unusable question"},
                         413: {"model": ErrorOut, "description": "question too long"},
                         503: {"model": ErrorOut, "description": "no usable index"}})
    def api_ask(req: AskRequest):
        if len(req.question) > max_chars:
            return JSONResponse({"error": f"the question is too long (over {max_chars} "
                                          "characters)"}, status_code=413)
        with limit:
            try:
                answer = ask(req.question, k=req.k, config=cfg, retrieval=req.retrieval)
            except InvalidQuestion as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except (IndexMissing, IndexMismatch) as exc:
                return JSONResponse({"error": str(exc)}, status_code=503)
            except RagError as exc:
                return JSONResponse({"error": str(exc)}, status_code=500)
        return answer

    @app.post("/api/sources", response_model=BuildReport, tags=["articles"],
              summary="Fetch web pages and subscribe to feeds, then update the index",
              responses={400: {"model": ErrorOut, "description": "nothing usable asked"},
                         409: {"model": ErrorOut, "description": "the index was not updated"}})
    def api_sources(req: SourcesRequest):
        """Each page or feed item is reported in ``fetched`` with what happened to it
        (added, updated, unchanged, not modified, or skipped with the reason): a page that
        cannot be fetched is never an error of the request. Only public http(s) addresses
        are fetched (see the README: the fetcher's rules)."""
        if not any(u.strip() for u in [*req.urls, *req.feeds]):
            return JSONResponse({"error": "give at least one URL in urls or feeds"},
                                status_code=400)
        result = library.add_web(req.urls, req.feeds)
        if result.report is None:
            return JSONResponse({"error": result.message}, status_code=409)
        return result.report

    @app.get("/api/feeds", tags=["articles"], summary="The remembered feeds")
    def api_feeds() -> list[dict]:
        return library.feeds()

    @app.get("/api/status", tags=["status"], summary="The live index and background updates")
    def api_status() -> dict:
        """The published index version, when it was written and its article count; with
        ``--watch`` / ``--poll``, what the background updater last did."""
        return index_status(cfg, updater)

    blocks = create_blocks(cfg, updater=updater)
    return gr.mount_gradio_app(app, blocks, path="", server_name=cfg.host,
                               server_port=cfg.port, max_file_size=cfg.max_upload_bytes,
                               footer_links=["api"], css=CSS,
                               theme=_theme(gr))


def _theme(gr):
    """A soft theme with system fonts (the default theme would fetch web fonts)."""
    sans = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
    mono = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
    return gr.themes.Soft(primary_hue="indigo", font=sans, font_mono=mono)


class BackgroundServer:
    """Serve ``app`` with uvicorn in a daemon thread (for tests and embedding):
    ``with BackgroundServer(app, host, port) as url: ...``."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        if port == 0:
            port = free_port(host)
        self.url = f"http://{host}:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                    log_level="warning",
                                                    timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join()


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    """``python app.py`` / ``rag-serve``: update the index, then serve the UI and API."""
    parser = argparse.ArgumentParser(prog="rag-serve", description=(
        "Serve the question-answering UI and the /api/ask API (updates the index first)."))
    parser.add_argument("--source", help="the articles folder (default: $RAG_SOURCE or seeds/)")
    parser.add_argument("--index", help="the index folder (default: $RAG_INDEX or index/)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1, "
                                       "or $GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=int, help="port (default 7860, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--no-build", action="store_true", help="serve the index as it is")
    parser.add_argument("--watch", action="store_true",
                        help="update the index when files in the articles folder change "
                             "(debounced incremental builds; answers switch to a new version "
                             "when it is published)")
    parser.add_argument("--poll", metavar="INTERVAL",
                        help="poll the remembered RSS/Atom feeds every INTERVAL "
                             "(e.g. 30m, 2h; at least 1m)")
    args = parser.parse_args(argv)
    try:
        cfg = Config.from_env(source=args.source, index_dir=args.index, host=args.host,
                              port=args.port)
    except RagError as exc:
        print(f"rag-serve: {exc}", file=sys.stderr)
        return 2
    from .watch import Updater, parse_duration

    try:
        poll_seconds = parse_duration(args.poll) if args.poll else None
    except ValueError as exc:
        print(f"rag-serve: --poll: {exc}", file=sys.stderr)
        return 2
    if not args.no_build:
        from ..index.build import build

        print(f"Updating the index of {cfg.source} in {cfg.index_dir} ...", flush=True)
        try:
            print(build(config=cfg, progress=True).summary(), flush=True)
        except (RagError, OSError) as exc:
            print(f"rag-serve: the index was not updated: {exc}", file=sys.stderr, flush=True)
    import uvicorn

    updater = None
    if args.watch or poll_seconds:
        updater = Updater(cfg, watch=args.watch, poll_seconds=poll_seconds,
                          log=lambda m: print(m, flush=True)).start()
        what = [f"watching {cfg.source}" if args.watch else "",
                f"polling feeds every {args.poll}" if poll_seconds else ""]
        print("Background updates: " + " and ".join(w for w in what if w), flush=True)
    app = create_app(cfg, updater=updater)
    print(f"Serving at http://{cfg.host}:{cfg.port}  (API: POST /api/ask, docs /api/docs)",
          flush=True)
    try:
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    finally:
        if updater is not None:
            updater.stop()
    return 0
