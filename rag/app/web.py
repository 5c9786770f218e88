"""The web server: a FastAPI app with the JSON API under ``/api/`` and the Gradio UI at ``/``.

- :func:`create_app` (``cfg`` injectable) returns the FastAPI app; nothing is served
  from disk beyond what Gradio needs (no ``allowed_paths``: neither the articles folder
  nor the index is reachable as files).
- Routes (OpenAPI at ``/api/openapi.json``, docs at ``/api/docs``, each with examples):

  ========================================  ==============================================
  ``POST /api/ask``                         an :class:`~rag.types.Answer` (filters, dates,
                                            ``explain``), as ``python -m rag.ask --json``
  ``POST /api/search``                      passages (:class:`~rag.types.Passage`), filtered
  ``GET /api/articles``                     list or search articles (filters, title words)
  ``GET /api/articles/{id}``                one article's text (or a slice) and metadata
  ``POST /api/articles``                    add: a file upload, or ``{"url": ...}``
  ``DELETE /api/articles/{id}``             remove an article (its file) and update
  ``POST /api/sources``                     fetch web pages, subscribe to feeds
  ``GET /api/feeds``                        the remembered feeds
  ``POST /api/builds``, ``GET /api/builds/{id}``  start a build, read its progress
  ``GET /api/status``                       the live index and background updates
  ``GET /api/health``, ``GET /api/version``  liveness (public) and version
  ========================================  ==============================================

- Security (:mod:`rag.app.security`): with ``RAG_API_TOKEN`` every route but health
  and the OpenAPI schema/docs needs ``Authorization: Bearer <token>`` (constant-time
  comparison) and the UI asks for it as its password; without a token the server refuses to listen beyond loopback
  (:func:`main`). Per-client rate limit (``RAG_RATE_LIMIT`` a minute), request bodies
  capped, CORS off unless ``RAG_CORS_ORIGINS``. Every error is ``{"error": message,
  "code": code}`` with a 4xx status (503 when no usable index): never a traceback.
- At most ``cfg.concurrency`` questions are answered at once.
- :func:`main` (``python app.py`` / ``rag-serve``) updates the index incrementally,
  prints the build summary and serves on ``cfg.host:cfg.port`` (127.0.0.1:7860 by
  default; ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` or ``RAG_HOST`` / ``RAG_PORT``).
  ``--watch`` rebuilds when the articles folder changes, ``--poll 30m`` polls the feeds
  (:mod:`rag.app.watch`). It never creates a public share link.
"""


import argparse
import hmac
import sys
import threading

from ..config import Config, warn_unknown_env
from ..types import RagError


def create_app(cfg: Config | None = None, updater=None, ui: bool = True):
    """The FastAPI application (API + mounted Gradio UI) for ``cfg``. ``updater`` (a
    running :class:`rag.app.watch.Updater`) is shown in the UI's status line and in
    ``GET /api/status``. ``ui=False``: the API alone. The routes are
    :mod:`rag.app.routes`' routers; their models :mod:`rag.app.schemas`. Made holding
    :data:`rag.app.watch.PARSING` (an updater's warm-up waits for it)."""
    from .watch import PARSING

    with PARSING:
        return _create_app(cfg, updater, ui)


def _create_app(cfg: Config | None, updater, ui: bool):
    import gradio as gr
    from fastapi import FastAPI

    from .. import __version__
    from . import routes
    from .jobs import BuildJobs
    from .library import Library
    from .security import error_response, install
    from .ui import CSS, create_blocks

    cfg = cfg or Config.from_env()
    library = Library(cfg)
    app = FastAPI(title="rag", version=__version__, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Extractive question answering over a folder of articles: "
                              "every answer is a verbatim quote with numbered citations. "
                              "With RAG_API_TOKEN set, send `Authorization: Bearer <token>`. "
                              "Errors are `{\"error\": message, \"code\": code}`.")
    _error_handlers(app, error_response)
    for router in (routes.ask_routes(cfg, threading.BoundedSemaphore(cfg.concurrency)),
                   routes.article_routes(cfg), routes.change_routes(cfg, library),
                   routes.build_routes(BuildJobs(library)),
                   routes.status_routes(cfg, updater, __version__)):
        app.include_router(router)

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                   include_in_schema=False)
    def api_unknown(rest: str):
        return error_response(404, f"no API route /api/{rest[:80]} (see /api/docs)",
                              "not_found")

    install(app, token=cfg.api_token or None, rate_per_minute=cfg.rate_limit,
            max_body_bytes=cfg.max_upload_bytes + 64 * 1024,
            cors_origins=tuple(o.strip() for o in cfg.cors_origins.split(",") if o.strip()))
    if not ui:
        return app
    token = cfg.api_token
    blocks = create_blocks(cfg, updater=updater)
    auth = None
    if token:
        def auth(_user: str, password: str) -> bool:
            return hmac.compare_digest(password.encode("utf-8"), token.encode("utf-8"))
    app = gr.mount_gradio_app(app, blocks, path="", server_name=cfg.host,
                              server_port=cfg.port, max_file_size=cfg.max_upload_bytes,
                              footer_links=["api"], css=CSS, theme=_theme(gr), auth=auth,
                              auth_message="Sign in with any name and the API token "
                                           "(RAG_API_TOKEN) as the password." if token
                              else None)
    # Gradio checks that an event's file paths were uploaded only once it "has launched",
    # which mount_gradio_app never sets: without this, an event may name any server file
    # (the upload handler checks too: rag.app.ui.was_uploaded)
    blocks.has_launched = True
    return app


def _error_handlers(app, error_response) -> None:
    """Validation and routing errors as ``{"error", "code"}`` with a 4xx status."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return error_response(400, "invalid request: " + "; ".join(parts), "invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(exc.status_code, str(exc.detail),
                              codes.get(exc.status_code, "http_error"))


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
                                                    timeout_graceful_shutdown=5,
                                                    proxy_headers=False))
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


def proxy_settings(cfg: Config) -> dict:
    """uvicorn's proxy options: ``X-Forwarded-For`` is believed only from the addresses in
    ``RAG_TRUSTED_PROXIES`` (uvicorn's default believes it from 127.0.0.1, so any local
    client could choose the address its rate limit is counted on)."""
    proxies = cfg.trusted_proxies.strip()
    return ({"proxy_headers": True, "forwarded_allow_ips": proxies} if proxies
            else {"proxy_headers": False})


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
    warn_unknown_env("rag-serve")
    try:
        cfg = Config.from_env(source=args.source, index_dir=args.index, host=args.host,
                              port=args.port)
        from .security import check_bind

        check_bind(cfg.host, cfg.api_token or None)
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
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning",
                    **proxy_settings(cfg))
    finally:
        if updater is not None:
            updater.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
