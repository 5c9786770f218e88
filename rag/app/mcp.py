"""``rag-mcp``: the articles as an MCP server (Model Context Protocol), so that an agent
(Claude Desktop, an IDE, any MCP client) answers from them with verbatim, cited quotes.

Tools (read-only; every result is structured content with an output schema, and the
same JSON as text for clients that only read text):

``ask(question, k=5, sources, authors, since, until, article_ids, folders)``
    :func:`rag.ask`: ``{"answer_status": "answered" | "abstained", "statement": ...,
    **Answer.to_dict()}``. ``text`` is a verbatim quote from the article
    ``citations[0].article_id`` at ``[start:end]``; each citation has ``n``,
    ``article_id``, ``start``, ``end``, ``quote`` (``article.text[start:end] == quote``),
    its passage with offsets, title, source, url, published date, author, page and score,
    and ``date_source`` (where the date came from: ``record``, ``page``, ``feed``; ``file``:
    no publication date, only ``file_date``, a PDF's or DOCX's creation date, which is not
    one and is never matched by since/until).
    When ``answer_status`` is ``"abstained"``, ``text`` is empty, ``statement`` says that
    the articles do not answer, and the citations are only the nearest passages
    (``answers: false``): they must not be paraphrased into an answer.
``search(query, k=10, <the same filters>)``
    :func:`rag.search`: ``{"query", "passages": [Passage...], "message"}``; each passage
    is verbatim article text with its offsets (``text == article.text[start:end]``), best
    first; no answer is chosen and nothing abstains (an empty list when the filters match
    no article, and ``message`` says so).
``get_article(id, start=None, end=None)``
    :func:`rag.get_article`: the metadata (``id``, ``title``, ``source``, ``url``,
    ``published``, ``author``, ``file_date``, ``date_source``, ``pages``), ``length``
    (characters of the whole text) and ``text == article.text[start:end]`` with the
    ``start`` and ``end`` actually returned. Both None: the whole text. ``0 <= start <=
    end <= length`` or the call fails. At most 100,000 characters come back per call: a
    longer slice is cut, ``truncated`` is true and ``message`` says where to continue.

The filters (``ask`` and ``search``) are those of :class:`rag.Filters`: ``sources``,
``authors`` (case-insensitive parts), ``since`` / ``until`` (publication dates,
YYYY-MM-DD or words such as "last week"), ``article_ids`` (exact ids), ``folders``;
each takes a string or a list of strings. ``ask`` also takes ``as_of`` (the day "last
week" is read against) and ``dates`` (false: time words in the question are not read as
publication dates), as the CLI's ``--as-of`` / ``--no-dates``. Offsets count Unicode code points (Python
string indices), not UTF-16 units or bytes.

Errors (a bad question, filter, ``k`` or offset, an unknown article id, no index yet, an
index to rebuild) come back as MCP tool errors (``isError: true``) whose text is the
message for a person; never a traceback. The blocking work runs in worker threads, so one
slow question does not hold up the others.

Transports::

    rag-mcp --index /path/to/index                      # stdio (the default)
    rag-mcp --transport http --port 8765                # streamable HTTP on 127.0.0.1:8765/mcp

Over HTTP, with ``RAG_API_TOKEN`` set (at least 16 characters) every request needs
``Authorization: Bearer <token>`` (401 otherwise); without a token ``rag-mcp`` refuses
to listen beyond loopback (``--host 0.0.0.0``) and exits with status 2, and answers
only loopback clients that address a loopback name. Requests are rate-limited per client
(``RAG_RATE_LIMIT``; wrong tokens spend the budget) and cross-origin posts refused, by the
web app's guard (:mod:`rag.app.security`). On loopback the SDK's Host/Origin checks (DNS
rebinding protection) are on as well.

A client's configuration (Claude Desktop's ``claude_desktop_config.json``, and the same
shape in most MCP clients)::

    {
      "mcpServers": {
        "articles": {
          "command": "rag-mcp",
          "args": ["--index", "/path/to/index"]
        }
      }
    }

The server never builds: build the index first (``rag-build``). Needs the MCP SDK
(``pip install 'rag-quotes[mcp]'``); importing this module does not.
"""

import argparse
import functools
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from ..config import Config, warn_unknown_env
from ..types import FILTER_HELP, NO_ANSWER, RagError
from .errors import error_kind

SDK_MISSING = "rag-mcp needs the MCP SDK: pip install 'rag-quotes[mcp]'"
# The most characters get_article returns in one call.
MAX_ARTICLE_CHARS = 100_000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

INSTRUCTIONS = (
    "Answers come only from the indexed articles. Call `ask` with the user's question; when "
    "its answer_status is 'answered', quote `text` verbatim (it is the exact text of the "
    "article at citations[0].start:end) and cite it by its citation number, article_id and "
    "offsets. When answer_status is 'abstained', tell the user the articles do not answer "
    "the question; do not answer from the nearest passages or from your own knowledge. "
    "Use `search` to browse passages and `get_article` to read the text around a quote.")

ASK_DESCRIPTION = (
    "Answer a question from the indexed articles with a verbatim quote and numbered "
    "citations, or an explicit abstention. answer_status 'answered': quote `text` verbatim "
    "(do not reword it) and cite it as [n] with the citation's article_id, start and end "
    "(article text[start:end] == quote; get_article(id, start, end) returns it). "
    "answer_status 'abstained': say that the articles do not answer this question; the "
    "citations are then only the nearest passages (answers=false) and must not be turned "
    "into an answer. Optional filters limit the articles used before ranking; `scope` says "
    "which filters applied (relative time in the question, such as 'last week', becomes a "
    "date filter). A citation's `published` is a date the article states (date_source "
    "record, page or feed); `file_date` (date_source 'file') is a PDF's or DOCX's creation "
    "date: never call it a publication date.")

SEARCH_DESCRIPTION = (
    "Find the passages of the indexed articles that best match a query (retrieval only: no "
    "answer is chosen, nothing abstains). Each passage is verbatim article text with its "
    "article_id, start and end (article text[start:end] == passage text), best first. "
    "Quote passages verbatim and cite them by article_id and offsets. Same filters as ask.")

GET_ARTICLE_DESCRIPTION = (
    "Read an indexed article: its metadata and text[start:end] (the whole text when start "
    "and end are omitted; 0 <= start <= end <= length). At most "
    f"{MAX_ARTICLE_CHARS:,} characters per call: when `truncated` is true, call again with "
    "start = the returned end. Use it to check a quote or read around it.")



def _filters(**values: Any) -> dict[str, Any] | None:
    """The tool's filter arguments as :func:`rag.ask`'s ``filters`` dict (None: none)."""
    chosen = {k: v for k, v in values.items() if v not in (None, "", [])}
    return chosen or None


@functools.lru_cache(maxsize=1)
def _models() -> dict[str, Any]:
    """The pydantic models of the tools' results (built on first use)."""
    from pydantic import BaseModel, ConfigDict, Field

    from ..types import Citation, Explanation, Filters, Passage
    from .schemas import ArticleMeta

    class AskResult(BaseModel):
        """An answer of rag.ask, with its status first (fields Answer gains later pass
        through)."""

        model_config = ConfigDict(use_attribute_docstrings=True, extra="allow")
        answer_status: Literal["answered", "abstained"]
        """'answered': `text` answers, quote it verbatim and cite it; 'abstained': the
        articles do not answer this question"""
        statement: str
        """what to tell the user about this result"""
        question: str
        """the question as it was read (control characters and runs of spaces cleaned)"""
        text: str
        """verbatim quote: article text[start:end] of citations[0]; empty when abstained"""
        abstained: bool
        score: float
        """confidence in [0, 1] that `text` answers the question"""
        citations: list[Citation] = Field(default_factory=list)
        """numbered sources; when abstained, the nearest passages (answers=false)"""
        article_id: str | None = None
        """article of the quote (None when abstained)"""
        start: int | None = None
        """offset of the quote in the article's text (None when abstained)"""
        end: int | None = None
        """end offset of the quote, exclusive (None when abstained)"""
        message: str = ""
        """a note for the user (the abstention)"""
        filters: Filters | None = None
        """the filters applied (dates read from the question included); None: none"""
        scope: str = ""
        """the filters in words"""
        explain: Explanation | None = None
        """why this quote, or why no answer"""
        timings_ms: dict[str, float] = Field(default_factory=dict)

    class SearchResult(BaseModel):
        """Passages of rag.search, best first."""

        model_config = ConfigDict(use_attribute_docstrings=True)
        query: str
        passages: list[Passage]
        """verbatim article text with offsets: text == article text[start:end]"""
        message: str = ""
        """a note when nothing matched"""

    class ArticleText(ArticleMeta):
        """An article's metadata (the REST API's ArticleMeta, declared once) and
        text[start:end]."""

        model_config = ConfigDict(use_attribute_docstrings=True)
        pages: list[int] = Field(default_factory=list)
        """start offset of each page (PDF, DOCX); empty without pages"""
        length: int
        """characters in the article's whole text"""
        start: int
        """offset of the returned text in the article"""
        end: int
        """end offset (exclusive) of the returned text"""
        text: str
        """article text[start:end]"""
        truncated: bool = False
        """true when the slice asked for was longer than the cap and was cut at `end`"""
        message: str = ""

    return {"ask": AskResult, "search": SearchResult, "article": ArticleText}


def create_server(cfg: Config | None = None, *, max_article_chars: int = MAX_ARTICLE_CHARS):
    """The MCP server (the SDK's ``MCPServer``) with the tools ``ask``, ``search`` and
    ``get_article`` over the index of ``cfg`` (default: :meth:`Config.from_env`).
    Raises ImportError when the MCP SDK is not installed."""
    import anyio
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations
    from pydantic import Field

    from .. import __version__
    from ..answer.pipeline import ask as rag_ask
    from ..answer.pipeline import get_article as rag_get_article
    from ..answer.pipeline import search_passages

    cfg = cfg or Config.from_env()
    models = _models()
    AskResult, SearchResult, ArticleText = models["ask"], models["search"], models["article"]
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False,
                                idempotent_hint=True, open_world_hint=False)
    server = MCPServer("rag", title="Articles: cited quotes", version=__version__,
                       instructions=INSTRUCTIONS, log_level="WARNING")

    async def call(fn, *args, **kwargs):
        """``fn`` in a worker thread; our errors become tool errors with their message."""
        try:
            return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
        except RagError as exc:  # InvalidQuestion, ArticleNotFound, IndexMissing, ...
            raise ToolError(f"{error_kind(exc).code}: {exc}") from None
        except OSError as exc:
            raise ToolError(f"could not read the index: {exc.strerror or exc}") from None

    def names(field: str) -> Any:
        return Annotated[list[str] | str | None, Field(description=FILTER_HELP[field])]

    def date(field: str) -> Any:
        return Annotated[str | None, Field(description=FILTER_HELP[field])]

    async def ask(
        question: Annotated[str, Field(description="the question, in plain words")],
        k: Annotated[int, Field(description=f"citations at most, 1 to {cfg.max_k}")] = cfg.k,
        sources: names("sources") = None,
        authors: names("authors") = None,
        since: date("since") = None,
        until: date("until") = None,
        article_ids: names("article_ids") = None,
        folders: names("folders") = None,
        as_of: Annotated[str | None, Field(description="read 'last week' etc. against this "
                                                       "day (YYYY-MM-DD; default today)")] = None,
        dates: Annotated[bool, Field(description="read time words in the question ('last "
                                                 "year', 'in March') as publication dates "
                                                 "(the scope says what was used); false: "
                                                 "ignore them")] = True,
    ) -> AskResult:
        filters = _filters(sources=sources, authors=authors, since=since, until=until,
                           article_ids=article_ids, folders=folders)
        answer = await call(rag_ask, question, k, config=cfg, filters=filters, as_of=as_of,
                            dates=dates)
        data = answer.to_dict()
        if answer.abstained:
            why = (answer.explain.detail + " ") if answer.explain and \
                answer.explain.reason == "filtered_out" else ""
            statement = (f"{why}{NO_ANSWER} Tell the user so. The citations are only the "
                         "nearest passages, not an answer: do not answer from them.")
            status = "abstained"
        else:
            first = answer.citations[0]
            statement = (f"Answered by a verbatim quote from {first.article_id!r} "
                         f"[{first.start}:{first.end}]: quote `text` exactly and cite it "
                         f"as [{first.n}].")
            status = "answered"
        return AskResult(answer_status=status, statement=statement, **data)

    async def search(
        query: Annotated[str, Field(description="words or a question to match")],
        k: Annotated[int, Field(description=f"passages at most, 1 to {cfg.max_k}")] = 10,
        sources: names("sources") = None,
        authors: names("authors") = None,
        since: date("since") = None,
        until: date("until") = None,
        article_ids: names("article_ids") = None,
        folders: names("folders") = None,
    ) -> SearchResult:
        filters = _filters(sources=sources, authors=authors, since=since, until=until,
                           article_ids=article_ids, folders=folders)
        passages = await call(search_passages, query, k, config=cfg, filters=filters)
        message = "" if passages else ("No passage matches: no article matches the filters."
                                       if filters else "No passage matches.")
        return SearchResult(query=query, passages=passages, message=message)

    async def get_article(
        id: Annotated[str, Field(description="the article id (citation or passage "
                                             "article_id)")],
        start: Annotated[int | None, Field(description="first character (default 0)")] = None,
        end: Annotated[int | None, Field(description="end, exclusive (default: the article's "
                                                     "length)")] = None,
    ) -> ArticleText:
        article = await call(rag_get_article, id, config=cfg)
        length = len(article.text)
        lo = 0 if start is None else start
        hi = length if end is None else end
        if lo < 0 or hi < 0:
            raise ToolError(f"start and end must be 0 or more (got start={start}, end={end})")
        if lo > hi:
            raise ToolError(f"start ({lo}) must not be after end ({hi})")
        if hi > length:
            raise ToolError(f"end ({hi}) is past the end of the article ({length} characters)")
        truncated, message = False, ""
        if hi - lo > max_article_chars:
            truncated, hi = True, lo + max_article_chars
            message = (f"cut to {max_article_chars} characters ({lo}-{hi} of {length}): call "
                       f"get_article again with start={hi} for the rest")
        return ArticleText(id=article.id, title=article.title, source=article.source,
                           url=article.url, published=article.published, author=article.author,
                           file_date=article.file_date, date_source=article.date_source,
                           pages=list(article.pages), length=length, start=lo, end=hi,
                           text=article.text[lo:hi], truncated=truncated, message=message)

    server.add_tool(ask, name="ask", title="Ask the articles", description=ASK_DESCRIPTION,
                    annotations=read_only)
    server.add_tool(search, name="search", title="Search passages",
                    description=SEARCH_DESCRIPTION, annotations=read_only)
    server.add_tool(get_article, name="get_article", title="Read an article",
                    description=GET_ARTICLE_DESCRIPTION.replace(
                        f"{MAX_ARTICLE_CHARS:,}", f"{max_article_chars:,}"),
                    annotations=read_only)
    return server


# -- HTTP -------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback name or address (127.0.0.0/8, ::1, localhost)."""
    from .security import _is_loopback

    return _is_loopback(host)


def create_http_app(cfg: Config | None = None, *, host: str = DEFAULT_HOST,
                    token: str | None = None, server=None):
    """The streamable-HTTP ASGI app (endpoint ``/mcp``) of :func:`create_server`, behind
    the web app's guard (:func:`rag.app.security.protect`: the bearer ``token`` when
    given, else loopback clients and names only; no cross-origin requests; the per-client
    rate limit ``cfg.rate_limit``, which failed token guesses spend). One app serves one
    run (the SDK's session manager starts once): make a new one to serve again."""
    from .security import protect

    cfg = cfg or Config.from_env()
    server = server or create_server(cfg)
    app = server.streamable_http_app(host=host)
    return protect(app, token=token, rate_per_minute=cfg.rate_limit,
                   max_body_bytes=cfg.max_upload_bytes, realm="rag-mcp")


def check_http(host: str, token: str | None) -> str | None:
    """Why HTTP must not start on ``host`` with ``token`` (None: it may): the web app's
    rule, :func:`rag.app.security.check_bind`."""
    from .security import check_bind

    try:
        check_bind(host, token)
    except RagError as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    """``rag-mcp``: serve the index to MCP clients over stdio (default) or streamable HTTP."""
    parser = argparse.ArgumentParser(prog="rag-mcp", description=(
        "Serve the indexed articles to MCP clients: tools ask, search and get_article "
        "(verbatim quotes with offsets and citations, or an explicit abstention)."))
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                        help="stdio (default; the client starts rag-mcp) or http "
                             "(streamable HTTP at http://HOST:PORT/mcp)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"HTTP: address to bind (default {DEFAULT_HOST}; beyond loopback "
                             "only with RAG_API_TOKEN set)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"HTTP: port (default {DEFAULT_PORT})")
    parser.add_argument("--index", help="the index folder (default: $RAG_INDEX or index/)")
    parser.add_argument("--source", help="the articles folder (default: $RAG_SOURCE or seeds/)")
    args = parser.parse_args(argv)
    warn_unknown_env("rag-mcp")
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError:
        print(SDK_MISSING, file=sys.stderr)
        return 2
    try:
        cfg = Config.from_env(index_dir=args.index, source=args.source)
    except (RagError, ValueError) as exc:
        print(f"rag-mcp: {exc}", file=sys.stderr)
        return 2
    token = cfg.api_token or None
    if args.transport == "http":
        problem = check_http(args.host, token)
        if problem:
            print(f"rag-mcp: {problem}", file=sys.stderr)
            return 2
        if not 0 < args.port < 65536:
            print(f"rag-mcp: --port must be from 1 to 65535, got {args.port}", file=sys.stderr)
            return 2
    from ..index.store import current_version

    if current_version(Path(cfg.index_dir)) is None:
        print(f"rag-mcp: no index in {cfg.index_dir} yet: build it with "
              f"`rag-build --index {cfg.index_dir}` (the tools answer with an error until "
              "then)", file=sys.stderr)
    server = create_server(cfg)
    if args.transport == "stdio":  # stdout is the protocol: messages go to stderr
        try:
            server.run("stdio")
        except KeyboardInterrupt:
            pass
        return 0
    import uvicorn

    app = create_http_app(cfg, host=args.host, token=token, server=server)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"rag-mcp: serving MCP at http://{shown}:{args.port}/mcp"
          + (" (Authorization: Bearer token required)" if token else ""), file=sys.stderr,
          flush=True)
    from .web import proxy_settings

    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                **proxy_settings(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
