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
- :func:`main` (``python app.py`` / ``rag-serve``) updates the index incrementally,
  prints the build summary and serves on ``cfg.host:cfg.port`` (127.0.0.1:7860 by
  default; ``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` or ``RAG_HOST`` / ``RAG_PORT``).
  It never creates a public share link.
"""


import argparse
import sys
import threading
from typing import Literal, Optional

from ..config import RETRIEVAL_MODES, Config
from ..types import Answer, IndexMismatch, IndexMissing, InvalidQuestion, RagError


def create_app(cfg: Config | None = None):
    """The FastAPI application (API + mounted Gradio UI) for ``cfg``."""
    import gradio as gr
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field

    from .. import __version__
    from ..answer.pipeline import ask
    from .ui import CSS, create_blocks

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

    blocks = create_blocks(cfg)
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
    args = parser.parse_args(argv)
    try:
        cfg = Config.from_env(source=args.source, index_dir=args.index, host=args.host,
                              port=args.port)
    except RagError as exc:
        print(f"rag-serve: {exc}", file=sys.stderr)
        return 2
    if not args.no_build:
        from ..index.build import build

        print(f"Updating the index of {cfg.source} in {cfg.index_dir} ...", flush=True)
        try:
            print(build(config=cfg, progress=True).summary(), flush=True)
        except (RagError, OSError) as exc:
            print(f"rag-serve: the index was not updated: {exc}", file=sys.stderr, flush=True)
    import uvicorn

    app = create_app(cfg)
    print(f"Serving at http://{cfg.host}:{cfg.port}  (API: POST /api/ask, docs /api/docs)",
          flush=True)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    return 0
