"""The REST API's routes, one router per resource (issue 25, item 4): asking
(``/api/ask``, ``/api/search``), reading articles, changing them (add, remove, web
sources, feeds), builds, and status. Each ``*_routes`` function returns an
``APIRouter`` over what it needs (the config, the question limiter, the library, the
build jobs); :func:`rag.app.web.create_app` includes them. Errors go through the one
error table (:func:`failure`, :mod:`rag.app.errors`)."""

from __future__ import annotations

import threading
from typing import Optional

from fastapi import APIRouter, Query, Request, Response

from ..config import Config
from ..types import FILTER_HELP, Answer, BuildReport, Passage, RagError
from .errors import error_kind
from .jobs import BuildJob, BuildJobs
from .library import Library
from .schemas import (ArticleList, ArticleOut, AskRequest, BuildIn, ChangeOut, Health,
                      SearchRequest, SourcesRequest, UrlIn, also)
from .security import error_response


def failure(exc: Exception):
    """The error response for what ``rag`` raised on purpose (:mod:`rag.app.errors`)."""
    kind = error_kind(exc)
    return error_response(kind.status, str(exc), kind.code)


def ask_routes(cfg: Config, limit: threading.BoundedSemaphore) -> APIRouter:
    """``POST /api/ask`` and ``POST /api/search``: at most ``limit`` at once."""
    from ..answer.pipeline import ask, search_passages

    r = APIRouter(tags=["ask"])

    @r.post("/api/ask", response_model=Answer, summary="Answer a question with a cited quote",
            responses=also(s413="too long", s503="no usable index"))
    def api_ask(req: AskRequest):
        """The answer is a verbatim quote (``text``) with numbered citations, or an
        abstention (``abstained``: the articles do not answer). ``scope`` says which
        articles were used (filters, and dates read from the question); ``explain`` why
        this quote."""
        with limit:
            try:
                return ask(req.question, k=req.k, config=cfg, retrieval=req.retrieval,
                           filters=req.filters.as_filters() if req.filters else None,
                           as_of=req.as_of, dates=req.dates)
            except RagError as exc:
                return failure(exc)

    @r.post("/api/search", response_model=list[Passage],
            summary="The passages that best match a query (no answer chosen)",
            responses=also(s503="no usable index"))
    def api_search(req: SearchRequest):
        with limit:
            try:
                return search_passages(req.query, k=req.k, config=cfg, retrieval=req.retrieval,
                                       filters=req.filters.as_filters() if req.filters
                                       else None)
            except RagError as exc:
                return failure(exc)
    return r


def article_routes(cfg: Config) -> APIRouter:
    """``GET /api/articles`` (list, filter, title words) and ``GET /api/articles/{id}``."""
    from ..answer.pipeline import get_article

    r = APIRouter(tags=["articles"])

    @r.get("/api/articles", response_model=ArticleList,
           summary="List or search the indexed articles", responses=also())
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
            ids = {part.index.article_ids[r] for part in index.parts
                   for r in part.live_rows()[article_mask(part.index, chosen)[
                       part.live_rows()]].tolist()}
            rows = [row for row in rows if row["id"] in ids]
        if q and q.strip():
            words = q.casefold().split()
            rows = [row for row in rows
                    if all(w in (row["title"] or "").casefold() for w in words)]
        return {"total": len(rows), "articles": rows[offset:offset + limit_]}

    @r.get("/api/articles/{article_id:path}", response_model=ArticleOut,
           summary="One article's text (or a slice of it) and metadata",
           responses=also(s404="no such article"))
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
        meta = {k: v for k, v in art.to_dict().items() if k not in ("text", "content_hash")}
        return {**meta, "length": len(art.text), "start": start, "end": stop,
                "text": art.text[start:stop]}
    return r


ADD_BODY = {"requestBody": {"content": {
    "multipart/form-data": {"schema": {
        "type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
        "required": ["file"]}},
    "application/json": {"schema": UrlIn.model_json_schema(),
                         "example": {"url": "https://example.org/story.html"}}},
    "required": True}}


def change_routes(cfg: Config, library: Library) -> APIRouter:
    """``POST /api/articles`` (upload or URL), ``DELETE /api/articles/{id}``,
    ``POST /api/sources`` and ``GET /api/feeds``."""
    r = APIRouter(tags=["articles"])

    @r.post("/api/articles", response_model=ChangeOut,
            summary="Add an article: upload a file, or give a web page's URL",
            responses=also(s409="not added"), openapi_extra=ADD_BODY)
    async def api_add(request: Request):
        """A file (.txt .md .html .json .jsonl .pdf .docx, at most the upload limit) is
        checked, saved into the articles folder and indexed; a URL is fetched (public
        http/https only) and indexed. Nothing is saved when the file is refused."""
        kind = request.headers.get("content-type", "")
        if kind.startswith("application/json"):
            result = await _add_url(request, library)
        elif kind.startswith("multipart/form-data"):
            result = await _add_upload(request, library, cfg.max_upload_bytes)
        else:
            return error_response(415, "send multipart/form-data with a 'file', or JSON "
                                       "{\"url\": ...}", "unsupported_media_type")
        if isinstance(result, Response):  # refused before the library saw it
            return result
        if not result.ok:
            return error_response(409, result.message, "not_added")
        return {"ok": True, "message": result.message, "report": result.report}

    @r.delete("/api/articles/{article_id:path}", response_model=ChangeOut,
              summary="Remove an article (its file) and update the index",
              responses=also(s404="no such article", s409="not removed"))
    def api_delete(article_id: str):
        rel, why = library.file_of(article_id)
        if rel is None:
            status = 404 if why.startswith("no article file") else 409
            return error_response(status, why, "not_found" if status == 404 else "not_removed")
        result = library.remove(rel)
        if not result.ok:
            return error_response(409, result.message, "not_removed")
        return {"ok": True, "message": result.message, "report": result.report}

    @r.post("/api/sources", response_model=BuildReport,
            summary="Fetch web pages and subscribe to feeds, then update the index",
            responses=also(s409="the index was not updated"))
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

    @r.get("/api/feeds", summary="The remembered feeds", responses=also())
    def api_feeds() -> list[dict]:
        return library.feeds()
    return r


async def _add_url(request: Request, library: Library):
    """A JSON ``{"url": ...}`` fetched and indexed (the library's result), or a 400."""
    from starlette.concurrency import run_in_threadpool

    try:
        body = UrlIn.model_validate_json(await request.body())
    except ValueError as exc:
        return error_response(400, f"invalid request: give {{\"url\": ...}} "
                                   f"({exc.__class__.__name__})", "invalid_request")
    return await run_in_threadpool(library.add_web, [body.url], [])


async def _add_upload(request: Request, library: Library, max_bytes: int):
    """A multipart ``file`` checked, saved and indexed (the library's result), or a 400
    or 413; nothing is saved when it is refused."""
    import tempfile
    from pathlib import Path

    from starlette.concurrency import run_in_threadpool

    form = await request.form(max_files=1, max_fields=5)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        return error_response(400, "send the article as the form field 'file'",
                              "invalid_request")
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        return error_response(413, f"the file is larger than {max_bytes:,} bytes",
                              "too_large")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload"
        path.write_bytes(data)
        return await run_in_threadpool(library.add, [(str(path), upload.filename or "upload")])


def build_routes(jobs: BuildJobs) -> APIRouter:
    """``POST /api/builds`` (start, 202; 200 with the running one) and its progress."""
    r = APIRouter(tags=["build"])

    @r.post("/api/builds", response_model=BuildJob, status_code=202,
            summary="Start a build of the articles folder (progress: GET /api/builds/{id})",
            responses={**also(), 200: {"model": BuildJob,
                                       "description": "a build was already running: it"}})
    def api_build(req: Optional[BuildIn] = None):
        job, new = jobs.start(rebuild=bool(req and req.rebuild))
        if not new:
            from fastapi.encoders import jsonable_encoder
            from fastapi.responses import JSONResponse

            return JSONResponse(jsonable_encoder(job), status_code=200)
        return job

    @r.get("/api/builds/{job_id}", response_model=BuildJob,
           summary="A build's progress: phase, passages embedded of the total, report",
           responses=also(s404="no such build"))
    def api_build_status(job_id: str):
        job = jobs.latest() if job_id == "latest" else jobs.get(job_id)
        if job is None:
            return error_response(404, f"no build {job_id[:40]!r} (ids are kept for the "
                                       "last 20 builds)", "not_found")
        return job
    return r


def status_routes(cfg: Config, updater, version: str) -> APIRouter:
    """``GET /api/status``, ``/api/health`` (public) and ``/api/version``."""
    from .watch import index_status

    r = APIRouter(tags=["status"])

    @r.get("/api/status", summary="The live index and background updates", responses=also())
    def api_status() -> dict:
        """The published index version, when it was written and its article count; with
        ``--watch`` / ``--poll``, what the background updater last did."""
        return index_status(cfg, updater)

    @r.get("/api/health", response_model=Health,
           summary="Liveness and whether an index is published (no token needed)")
    def api_health():
        from ..index.shards import CLUSTER
        from ..index.store import current_version

        try:  # one index's CURRENT, or a sharded index's cluster manifest
            live = current_version(cfg.index_dir) or (
                (cfg.index_dir / CLUSTER).read_text(encoding="utf-8").strip()
                if (cfg.index_dir / CLUSTER).is_file() else None)
        except OSError:
            live = None
        return {"status": "ok" if live else "degraded", "version": version,
                "index": live, "detail": "" if live else "no index is published yet"}

    @r.get("/api/version", summary="The versions of rag and its index")
    def api_version() -> dict:
        from ..answer.params import answer_model

        return {"rag": version, "selector": answer_model(cfg.selector).selector,
                "model": cfg.model, "backend": cfg.backend}
    return r
