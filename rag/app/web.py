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
import dataclasses
import hmac
import sys
import threading
from typing import Literal, Optional

from ..config import RETRIEVAL_MODES, Config
from ..types import FILTER_HELP, Answer, RagError

ASK_EXAMPLE = {"question": "How much did Nvidia lose?", "k": 3,
               "filters": {"sources": ["BBC"], "since": "2025-01-01"}}


def create_app(cfg: Config | None = None, updater=None, ui: bool = True):
    """The FastAPI application (API + mounted Gradio UI) for ``cfg``. ``updater`` (a
    running :class:`rag.app.watch.Updater`) is shown in the UI's status line and in
    ``GET /api/status``. ``ui=False``: the API alone."""
    import gradio as gr
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from pydantic import BaseModel, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from .. import __version__
    from ..answer.pipeline import ask, get_article, search_passages
    from ..types import BuildReport, Passage
    from .jobs import BuildJob, BuildJobs
    from .library import Library
    from .errors import error_kind
    from .security import error_response, install
    from .ui import CSS, create_blocks
    from .watch import index_status

    cfg = cfg or Config.from_env()
    limit = threading.BoundedSemaphore(cfg.concurrency)

    class FiltersIn(BaseModel):
        model_config = {"extra": "forbid"}
        sources: list[str] = Field(default_factory=list, max_length=1000,
                                   description=FILTER_HELP["sources"])
        authors: list[str] = Field(default_factory=list, max_length=1000,
                                   description=FILTER_HELP["authors"])
        since: Optional[str] = Field(None, description=FILTER_HELP["since"])
        until: Optional[str] = Field(None, description=FILTER_HELP["until"])
        article_ids: list[str] = Field(default_factory=list, max_length=1000,
                                       description=FILTER_HELP["article_ids"])
        folders: list[str] = Field(default_factory=list, max_length=1000,
                                   description=FILTER_HELP["folders"])

    class AskRequest(BaseModel):
        model_config = {"json_schema_extra": {"examples": [ASK_EXAMPLE]}}
        question: str = Field(description="the question, in plain words",
                              examples=["How much did it cost to train R1?"])
        k: Optional[int] = Field(None, description=f"number of citations, 1-{cfg.max_k} "
                                                   f"(default {cfg.k})")
        retrieval: Optional[Literal[RETRIEVAL_MODES]] = Field(
            None, description=f"retrieval mode (default {cfg.retrieval})")
        filters: Optional[FiltersIn] = Field(None, description="use only these articles")
        as_of: Optional[str] = Field(None, description="read 'last week' etc. against this "
                                                       "day (YYYY-MM-DD; default today)")
        dates: bool = Field(True, description="turn time words in the question into a "
                                              "date filter (shown in the answer's scope)")

    class SearchRequest(BaseModel):
        model_config = {"json_schema_extra": {"examples": [
            {"query": "Nvidia share price", "k": 5, "filters": {"sources": ["BBC"]}}]}}
        query: str = Field(description="what to look for")
        k: int = Field(10, description=f"number of passages, 1-{cfg.max_k}")
        retrieval: Optional[Literal[RETRIEVAL_MODES]] = None
        filters: Optional[FiltersIn] = None

    class ErrorOut(BaseModel):
        error: str = Field(description="what went wrong, for a person")
        code: str = Field(description="a short machine-readable code")

    class SourcesRequest(BaseModel):
        urls: list[str] = Field(default_factory=list, max_length=100,
                                description="web pages to fetch as articles",
                                examples=[["https://example.org/news/story.html"]])
        feeds: list[str] = Field(default_factory=list, max_length=20,
                                 description="RSS/Atom feeds to subscribe to (remembered and "
                                             "polled on every build)",
                                 examples=[["https://example.org/feed.xml"]])

    class ArticleMeta(BaseModel):
        """An article's metadata, as in a list row and in the one-article answer."""
        id: str
        title: str
        source: str
        url: Optional[str] = None
        published: Optional[str] = None
        author: Optional[str] = None
        file_date: Optional[str] = Field(None, description=(
            "the file's creation date (PDF, DOCX metadata) when it states no publication "
            "date: not a publication date, never matched by since/until"))
        date_source: Optional[str] = Field(None, description=(
            "where the date came from: record, page or feed (published), file (file_date "
            "only); null without a date"))

    class ArticleRow(ArticleMeta):
        chunks: int
        copy_of: Optional[str] = None

    class ArticleList(BaseModel):
        total: int = Field(description="articles matching, before limit/offset")
        articles: list[ArticleRow]

    class ArticleOut(ArticleMeta):
        pages: list[int] = Field(description="start offset of each page (PDF, DOCX)")
        length: int = Field(description="characters in the whole text")
        start: int
        end: int
        text: str = Field(description="the text from start to end (verbatim)")

    class UrlIn(BaseModel):
        model_config = {"extra": "forbid"}
        url: str = Field(description="a web page to fetch as an article",
                         examples=["https://example.org/news/story.html"])

    class ChangeOut(BaseModel):
        ok: bool
        message: str
        report: Optional[BuildReport] = None

    class BuildIn(BaseModel):
        rebuild: bool = Field(False, description="re-embed every article")

    class Health(BaseModel):
        status: Literal["ok", "degraded"]
        version: str
        index: Optional[str] = Field(None, description="the live index version")
        detail: str = ""

    library = Library(cfg)
    jobs = BuildJobs(library)
    errors = {400: {"model": ErrorOut, "description": "unusable request"},
              401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
              429: {"model": ErrorOut, "description": "too many requests"}}

    app = FastAPI(title="rag", version=__version__, docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Extractive question answering over a folder of articles: "
                              "every answer is a verbatim quote with numbered citations. "
                              "With RAG_API_TOKEN set, send `Authorization: Bearer <token>`. "
                              "Errors are `{\"error\": message, \"code\": code}`.")

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

    def failure(exc: Exception):
        """The error response for what ``rag`` raised on purpose (the one error table:
        :mod:`rag.app.errors`)."""
        kind = error_kind(exc)
        return error_response(kind.status, str(exc), kind.code)

    def filters_of(f) -> dict | None:
        return f.model_dump(exclude_defaults=True) if f is not None else None

    @app.post("/api/ask", response_model=Answer, tags=["ask"],
              summary="Answer a question with a cited quote",
              responses={**errors, 413: {"model": ErrorOut, "description": "too long"},
                         503: {"model": ErrorOut, "description": "no usable index"}})
    def api_ask(req: AskRequest):
        """The answer is a verbatim quote (``text``) with numbered citations, or an
        abstention (``abstained``: the articles do not answer). ``scope`` says which
        articles were used (filters, and dates read from the question); ``explain`` why
        this quote."""
        with limit:
            try:
                return ask(req.question, k=req.k, config=cfg, retrieval=req.retrieval,
                           filters=filters_of(req.filters), as_of=req.as_of,
                           dates=req.dates)
            except RagError as exc:
                return failure(exc)

    @app.post("/api/search", response_model=list[Passage], tags=["ask"],
              summary="The passages that best match a query (no answer chosen)",
              responses={**errors, 503: {"model": ErrorOut, "description": "no usable index"}})
    def api_search(req: SearchRequest):
        with limit:
            try:
                return search_passages(req.query, k=req.k, config=cfg,
                                       retrieval=req.retrieval, filters=filters_of(req.filters))
            except RagError as exc:
                return failure(exc)

    @app.get("/api/articles", response_model=ArticleList, tags=["articles"],
             summary="List or search the indexed articles", responses=errors)
    def api_articles(q: Optional[str] = Query(None, max_length=500,
                                              description="words of the title (all must appear)"),
                     source: list[str] = Query([], description=FILTER_HELP["sources"]),
                     author: list[str] = Query([], description=FILTER_HELP["authors"]),
                     since: Optional[str] = Query(None, description=FILTER_HELP["since"]),
                     until: Optional[str] = Query(None, description=FILTER_HELP["until"]),
                     folder: list[str] = Query([], description=FILTER_HELP["folders"]),
                     limit_: int = Query(100, alias="limit", ge=1, le=1000),
                     offset: int = Query(0, ge=0)):
        from ..answer.filters import article_mask, make_filters
        from ..index.live import load_index

        try:
            index = load_index(cfg.index_dir, cfg)
            chosen = make_filters({"sources": source, "authors": author, "since": since,
                                   "until": until, "folders": folder})
        except RagError as exc:
            return failure(exc)
        rows = index.list_articles()
        if chosen:
            mask = article_mask(index, chosen)
            rows = [r for r, keep in zip(rows, mask) if keep]
        if q and q.strip():
            words = q.casefold().split()
            rows = [r for r in rows if all(w in (r["title"] or "").casefold() for w in words)]
        return {"total": len(rows), "articles": rows[offset:offset + limit_]}

    @app.get("/api/articles/{article_id:path}", response_model=ArticleOut, tags=["articles"],
             summary="One article's text (or a slice of it) and metadata",
             responses={**errors, 404: {"model": ErrorOut, "description": "no such article"}})
    def api_article(article_id: str, start: int = Query(0, ge=0),
                    end: Optional[int] = Query(None, ge=0)):
        """``text`` is ``article.text[start:end]``, verbatim: the offsets of citations
        and passages point into it."""
        try:
            art = get_article(article_id, config=cfg)
        except RagError as exc:
            return failure(exc)
        stop = len(art.text) if end is None else end
        if start > stop or stop > len(art.text):
            return error_response(400, f"start and end must satisfy 0 <= start <= end <= "
                                       f"{len(art.text)} (the text's length)", "invalid_request")
        return {"id": art.id, "title": art.title, "source": art.source, "url": art.url,
                "published": art.published, "author": art.author,
                "file_date": art.file_date, "date_source": art.date_source,
                "pages": list(art.pages),
                "length": len(art.text), "start": start, "end": stop,
                "text": art.text[start:stop]}

    @app.post("/api/articles", response_model=ChangeOut, tags=["articles"],
              summary="Add an article: upload a file, or give a web page's URL",
              responses={**errors, 409: {"model": ErrorOut, "description": "not added"}},
              openapi_extra={"requestBody": {"content": {
                  "multipart/form-data": {"schema": {
                      "type": "object", "properties": {"file": {"type": "string",
                                                                "format": "binary"}},
                      "required": ["file"]}},
                  "application/json": {"schema": UrlIn.model_json_schema(),
                                       "example": {"url": "https://example.org/story.html"}}},
                  "required": True}})
    async def api_add(request: Request):
        """A file (.txt .md .html .json .jsonl .pdf .docx, at most the upload limit) is
        checked, saved into the articles folder and indexed; a URL is fetched (public
        http/https only) and indexed. Nothing is saved when the file is refused."""
        import tempfile
        from pathlib import Path

        from starlette.concurrency import run_in_threadpool

        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            try:
                body = UrlIn.model_validate_json(await request.body())
            except ValueError as exc:
                return error_response(400, f"invalid request: give {{\"url\": ...}} ({exc.__class__.__name__})",
                                      "invalid_request")
            result = await run_in_threadpool(library.add_web, [body.url], [])
        elif kind.startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=5)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                return error_response(400, "send the article as the form field 'file'",
                                      "invalid_request")
            data = await upload.read(cfg.max_upload_bytes + 1)
            if len(data) > cfg.max_upload_bytes:
                return error_response(413, f"the file is larger than "
                                           f"{cfg.max_upload_bytes:,} bytes", "too_large")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "upload"
                path.write_bytes(data)
                result = await run_in_threadpool(library.add,
                                                 [(str(path), upload.filename or "upload")])
        else:
            return error_response(415, "send multipart/form-data with a 'file', or JSON "
                                       "{\"url\": ...}", "unsupported_media_type")
        if not result.ok:
            return error_response(409, result.message, "not_added")
        return {"ok": True, "message": result.message, "report": result.report}

    @app.delete("/api/articles/{article_id:path}", response_model=ChangeOut,
                tags=["articles"], summary="Remove an article (its file) and update the index",
                responses={**errors, 404: {"model": ErrorOut, "description": "no such article"},
                           409: {"model": ErrorOut, "description": "not removed"}})
    def api_delete(article_id: str):
        rel, why = library.file_of(article_id)
        if rel is None:
            status = 404 if why.startswith("no article file") else 409
            return error_response(status, why, "not_found" if status == 404 else "not_removed")
        result = library.remove(rel)
        if not result.ok:
            return error_response(409, result.message, "not_removed")
        return {"ok": True, "message": result.message, "report": result.report}

    @app.post("/api/sources", response_model=BuildReport, tags=["articles"],
              summary="Fetch web pages and subscribe to feeds, then update the index",
              responses={**errors, 409: {"model": ErrorOut,
                                         "description": "the index was not updated"}})
    def api_sources(req: SourcesRequest):
        """Each page or feed item is reported in ``fetched`` with what happened to it
        (added, updated, unchanged, not modified, or skipped with the reason): a page that
        cannot be fetched is never an error of the request. Only public http(s) addresses
        are fetched (see the README: the fetcher's rules)."""
        if not any(u.strip() for u in [*req.urls, *req.feeds]):
            return error_response(400, "give at least one URL in urls or feeds",
                                  "invalid_request")
        result = library.add_web(req.urls, req.feeds)
        if result.report is None:
            return error_response(409, result.message, "not_updated")
        return result.report

    @app.get("/api/feeds", tags=["articles"], summary="The remembered feeds",
             responses=errors)
    def api_feeds() -> list[dict]:
        return library.feeds()

    @app.post("/api/builds", response_model=BuildJob, status_code=202, tags=["build"],
              summary="Start a build of the articles folder (progress: GET /api/builds/{id})",
              responses={**errors, 200: {"model": BuildJob,
                                         "description": "a build was already running: it"}})
    def api_build(req: Optional[BuildIn] = None):
        job, new = jobs.start(rebuild=bool(req and req.rebuild))
        if not new:
            from fastapi.responses import JSONResponse
            from fastapi.encoders import jsonable_encoder

            return JSONResponse(jsonable_encoder(job), status_code=200)
        return job

    @app.get("/api/builds/{job_id}", response_model=BuildJob, tags=["build"],
             summary="A build's progress: phase, passages embedded of the total, report",
             responses={**errors, 404: {"model": ErrorOut, "description": "no such build"}})
    def api_build_status(job_id: str):
        job = jobs.latest() if job_id == "latest" else jobs.get(job_id)
        if job is None:
            return error_response(404, f"no build {job_id[:40]!r} (ids are kept for the "
                                       "last 20 builds)", "not_found")
        return job

    @app.get("/api/status", tags=["status"], summary="The live index and background updates",
             responses=errors)
    def api_status() -> dict:
        """The published index version, when it was written and its article count; with
        ``--watch`` / ``--poll``, what the background updater last did."""
        return index_status(cfg, updater)

    @app.get("/api/health", response_model=Health, tags=["status"],
             summary="Liveness and whether an index is published (no token needed)")
    def api_health():
        from ..index.shards import CLUSTER
        from ..index.store import current_version

        try:  # one index's CURRENT, or a sharded index's cluster manifest
            version = current_version(cfg.index_dir) or (
                (cfg.index_dir / CLUSTER).read_text(encoding="utf-8").strip()
                if (cfg.index_dir / CLUSTER).is_file() else None)
        except OSError:
            version = None
        return {"status": "ok" if version else "degraded", "version": __version__,
                "index": version, "detail": "" if version else "no index is published yet"}

    @app.get("/api/version", tags=["status"], summary="The versions of rag and its index")
    def api_version() -> dict:
        from ..answer.params import answer_model

        return {"rag": __version__, "selector": answer_model(cfg.selector).selector,
                "model": cfg.model, "backend": cfg.backend}

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
