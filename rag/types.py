"""The typed shapes every layer shares: the API, the CLI's ``--json`` and the UI.

All are frozen dataclasses. Offsets are half-open character offsets into
``Article.text``: for every chunk, sentence and citation ``article.text[start:end]``
equals the quoted text, by construction.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


# What an abstained answer says (``Answer.message``), everywhere it is shown.
NO_ANSWER = "The articles do not answer this question."

# The web API's schema is generated from these dataclasses (FastAPI takes them as
# ``response_model``); the bare string after a field is its description there.
_SCHEMA = {"use_attribute_docstrings": True}


class RagError(Exception):
    """Base class of the errors this package raises on purpose (a message for a person)."""


class InvalidQuestion(RagError, ValueError):
    """The question or a parameter of ``ask`` is unusable; the message says what to do."""


class IndexMissing(RagError):
    """No index has been built in the index directory yet."""


class IndexMismatch(RagError):
    """The index on disk was built with another model, settings or schema, or is damaged."""


class BuildError(RagError):
    """A build could not run (missing source folder, no readable article, lock held...)."""


@dataclass(frozen=True)
class Article:
    """One article. ``id`` is stable: the file path relative to the source folder
    (POSIX separators), or the ``id`` field of a JSON record (``file#line`` when absent).

    ``source`` is what a citation shows as the origin: the relative path, or the record's
    ``source``/``url``. ``content_hash`` is the sha256 of ``text`` plus metadata, so a
    changed title also counts as an update.
    """

    id: str
    title: str
    text: str
    source: str
    url: str | None = None
    published: str | None = None
    author: str | None = None
    content_hash: str = ""


@dataclass(frozen=True)
class Chunk:
    """A passage of an article: ``text == article.text[start:end]`` (by construction)."""

    article_id: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Skipped:
    """A file (or a JSON line) that was not indexed, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Citation:
    """One numbered source of an answer.

    ``quote == article.text[start:end]`` and
    ``passage == article.text[passage_start:passage_end]``, with the quote inside the passage.
    ``score`` in [0, 1] is the calibrated confidence that this citation's own quote answers
    the question (the scale of ``Answer.score``; citation 1's equals it). Citations are
    numbered from 1 in the order of :mod:`rag.answer.extract`'s selection score, which usually,
    but not always, matches falling ``score``. ``answers`` is False for the nearest
    passages shown when the answer abstained.
    """

    __pydantic_config__ = _SCHEMA
    n: int
    article_id: str
    title: str
    source: str
    start: int
    end: int
    quote: str
    """article text [start:end]"""
    passage: str
    """article text [passage_start:passage_end]"""
    passage_start: int
    passage_end: int
    score: float
    """confidence in [0, 1] that this quote answers the question (citation 1: the
    answer's confidence)"""
    url: str | None = None
    published: str | None = None
    answers: bool = True
    """False for nearest passages of an abstained answer"""


@dataclass(frozen=True)
class Answer:
    """The result of :func:`rag.ask`.

    ``text`` is a verbatim quote from the article of ``citations[0]`` (``""`` when
    ``abstained``). ``score`` is the probability-like confidence in [0, 1] that ``text``
    answers the question; ``abstained`` is ``score < threshold`` or no passage at all.
    When abstaining, ``citations`` hold the nearest passages with ``answers=False``.
    """

    __pydantic_config__ = _SCHEMA
    question: str
    text: str
    """verbatim quote from the first citation's article; empty when abstained"""
    abstained: bool
    score: float
    """confidence in [0, 1]"""
    citations: tuple[Citation, ...] = ()
    article_id: str | None = None
    start: int | None = None
    end: int | None = None
    message: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Answer":
        cites = tuple(Citation(**c) for c in data.get("citations", ()))
        return cls(**{**data, "citations": cites})


@dataclass(frozen=True)
class BuildReport:
    """What a build did. ``chunks`` and ``articles`` count the whole index after the build."""

    index_dir: str
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    articles: int = 0
    chunks: int = 0
    embedded_chunks: int = 0
    seconds: float = 0.0
    version: str = ""
    wrote: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        lines = [
            f"articles: {len(self.added)} added, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.removed)} removed, "
            f"{len(self.skipped)} skipped",
            f"index: {self.articles} articles, {self.chunks} chunks "
            f"({self.embedded_chunks} embedded now) in {self.seconds:.1f} s -> {self.index_dir}",
        ]
        for s in self.skipped:
            lines.append(f"  skipped {s.path}: {s.reason}")
        return "\n".join(lines)
