"""One error table for every surface (issue 25, item 4): what ``rag`` raises on purpose
becomes an HTTP status and code in the REST API, a tool error with the same code in MCP,
and a sentence for a person in the UI. The first row whose class matches wins (a
subclass before its base)."""

from __future__ import annotations

from dataclasses import dataclass

from ..types import (ArticleNotFound, IndexMismatch, IndexMissing, InvalidQuestion,
                     QuestionTooLong, ShardedIndexHere)


@dataclass(frozen=True)
class ErrorKind:
    """``status``: the HTTP status; ``code``: the stable machine-readable code (REST's
    ``code`` field, MCP's message prefix); ``ui``: what the UI says, ``{exc}`` the
    exception's own message."""

    status: int
    code: str
    ui: str


ERRORS: tuple[tuple[type[Exception], ErrorKind], ...] = (
    (QuestionTooLong, ErrorKind(413, "too_large", "Please check the question: {exc}.")),
    (InvalidQuestion, ErrorKind(400, "invalid_request", "Please check the question: {exc}.")),
    (ArticleNotFound, ErrorKind(404, "not_found", "{exc}.")),
    (IndexMissing, ErrorKind(503, "index_unavailable",
                             "There is no index yet. Add articles in the Articles tab, or "
                             "run `python -m rag.build`, then ask again.")),
    (IndexMismatch, ErrorKind(503, "index_unavailable",
                              "The index needs to be rebuilt before it can answer: {exc}.")),
    (ShardedIndexHere, ErrorKind(409, "sharded_index",
                                 "This view is not available here: {exc}.")),
)
FAILED = ErrorKind(500, "failed", "Something went wrong: {exc}")


def error_kind(exc: Exception) -> ErrorKind:
    """The row of :data:`ERRORS` for ``exc`` (:data:`FAILED` when none matches)."""
    return next((kind for cls, kind in ERRORS if isinstance(exc, cls)), FAILED)


def message_for(exc: Exception) -> str:
    """What the UI shows a person for ``exc``."""
    return error_kind(exc).ui.format(exc=exc)
