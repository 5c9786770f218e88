"""The REST API's request and response models, declared once at module level (issue 25,
item 4). Answers, passages and build reports are the frozen dataclasses of
:mod:`rag.types` (FastAPI reads them directly); the models here are what only the API
has: requests, errors, article rows. Filter help is :data:`rag.types.FILTER_HELP`, the
text the MCP tools and the command line show too. Imported by :mod:`rag.app.routes`
when an app is created (pydantic is loaded then, not on ``import rag``)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

from ..config import RETRIEVAL_MODES
from ..types import FILTER_HELP, BuildReport

ASK_EXAMPLE = {"question": "How much did Nvidia lose?", "k": 3,
               "filters": {"sources": ["BBC"], "since": "2025-01-01"}}


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

    def as_filters(self) -> dict:
        """The given fields, as :func:`rag.ask`'s ``filters``."""
        return self.model_dump(exclude_defaults=True)


class AskRequest(BaseModel):
    model_config = {"json_schema_extra": {"examples": [ASK_EXAMPLE]}}
    question: str = Field(description="the question, in plain words",
                          examples=["How much did it cost to train R1?"])
    k: Optional[int] = Field(None, description="number of citations, 1 to the server's "
                                               "RAG_MAX_K (default RAG_K)")
    retrieval: Optional[Literal[RETRIEVAL_MODES]] = Field(
        None, description="retrieval mode (default: the server's RAG_RETRIEVAL)")
    filters: Optional[FiltersIn] = Field(None, description="use only these articles")
    as_of: Optional[str] = Field(None, description="read 'last week' etc. against this "
                                                   "day (YYYY-MM-DD; default today)")
    dates: bool = Field(True, description="turn time words in the question into a "
                                          "date filter (shown in the answer's scope)")


class SearchRequest(BaseModel):
    model_config = {"json_schema_extra": {"examples": [
        {"query": "Nvidia share price", "k": 5, "filters": {"sources": ["BBC"]}}]}}
    query: str = Field(description="what to look for")
    k: int = Field(10, description="number of passages, 1 to the server's RAG_MAX_K")
    retrieval: Optional[Literal[RETRIEVAL_MODES]] = None
    filters: Optional[FiltersIn] = None


class ErrorOut(BaseModel):
    error: str = Field(description="what went wrong, for a person")
    code: str = Field(description="a short machine-readable code (rag.app.errors)")


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


ERRORS = {400: {"model": ErrorOut, "description": "unusable request"},
          401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
          429: {"model": ErrorOut, "description": "too many requests"}}


def also(**statuses: str) -> dict:
    """:data:`ERRORS` plus these statuses (``s404="no such article"``), for ``responses``."""
    return {**ERRORS, **{int(k[1:]): {"model": ErrorOut, "description": v}
                         for k, v in statuses.items()}}
