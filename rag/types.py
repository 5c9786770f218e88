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


class QuestionTooLong(InvalidQuestion):
    """The question is longer than ``Config.max_question_chars``. Raised by ``rag.ask`` and
    ``search_passages`` (so by the CLI, MCP and the UI too) and answered 413 by the API:
    one limit, one message (:meth:`of`)."""

    @classmethod
    def of(cls, length: int, limit: int) -> "QuestionTooLong":
        return cls(f"the question is too long ({length:,} characters; at most {limit:,})")


class IndexMissing(RagError):
    """No index has been built in the index directory yet."""


class IndexMismatch(RagError):
    """The index on disk was built with another model, settings or schema, or is damaged."""


class ShardedIndexHere(RagError):
    """The folder holds a sharded index and the operation works on one index only (the
    article list, uploads and removals, the watched folder); asking, searching and
    reading an article work on both."""


class BuildError(RagError):
    """A build could not run (missing source folder, no readable article, lock held...)."""


class ArticleNotFound(RagError, KeyError):
    """No article with that id is in the index."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "article not found"


# Where an article's date came from (``date_source``), in words. A ``published`` date is
# one the article's record, page or feed states; "file" means the article has no such
# date, only ``file_date``: its file's creation date (PDF CreationDate, DOCX created),
# which is when the file was made (fpdf: the moment it ran; python-docx: 2013-12-23, its
# template's), not when the text was published, so it is never shown as published and
# never matches a date filter.
DATE_SOURCES = {
    "record": "from the record",
    "page": "from the page",
    "feed": "from the feed",
    "file": "the file's creation date, not a publication date",
}


def describe_date(published: str | None, date_source: str | None = None,
                  file_date: str | None = None) -> str:
    """An article's date in words, saying where it came from: "2025-01-27 (published,
    from the page)", "file created 2013-12-23", "" without a date. An index built before
    ``date_source`` existed gives "2025-01-27 (published)"."""
    if published:
        where = DATE_SOURCES.get(date_source or "") if date_source != "file" else None
        return f"{published} (published, {where})" if where else f"{published} (published)"
    if file_date:
        return f"file created {file_date}"
    return ""


# The fields a filter may name (Filters); anything else is refused with InvalidQuestion.
FILTER_FIELDS = ("sources", "authors", "since", "until", "article_ids", "folders")
# What each filter does, for people: the one text the API schema, the MCP tools and the
# command line show (issue 25, item 4).
FILTER_HELP = {
    "sources": "only articles whose source/outlet or URL host contains one of these "
               "(case-insensitive), e.g. 'reuters'",
    "authors": "only articles whose author contains one of these (case-insensitive)",
    "since": "only articles published on or after this date: YYYY-MM-DD, or words such as "
             "'last week', '7d' or '2026-03'",
    "until": "only articles published on or before this date (same forms as since)",
    "article_ids": "only these article ids (exact)",
    "folders": "only articles under these folders of the articles folder, e.g. 'bbc/tech'",
}


@dataclass(frozen=True)
class Filters:
    """Which articles a question (or a search) may use. Applied before ranking, so ``k``
    results still come back when the filter is narrow.

    Within a field any value may match; all given fields must match. ``sources``: a
    case-insensitive part of the article's source/outlet or of its URL's host ("reuters"
    matches "Reuters" and "www.reuters.com"); ``authors``: a case-insensitive part of its
    author; ``since`` / ``until``: inclusive ISO dates (YYYY-MM-DD) of publication, an
    article without a readable published date never matches a date filter;
    ``article_ids``: exact ids; ``folders``: ids under these folders of the articles
    folder ("bbc/tech")."""

    __pydantic_config__ = _SCHEMA
    sources: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    since: str | None = None
    """inclusive, YYYY-MM-DD"""
    until: str | None = None
    """inclusive, YYYY-MM-DD"""
    article_ids: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any(getattr(self, f) for f in FILTER_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in ((), None)}

    def describe(self) -> str:
        """One line for a person: 'source: Reuters · published since 2026-11-27'."""
        parts = []
        for name, label in (("sources", "source"), ("authors", "author"),
                            ("article_ids", "article"), ("folders", "folder")):
            values = getattr(self, name)
            if values:
                parts.append(f"{label}: " + " or ".join(values))
        if self.since and self.until:
            parts.append(f"published {self.since} to {self.until}" if self.since != self.until
                         else f"published on {self.since}")
        elif self.since:
            parts.append(f"published since {self.since}")
        elif self.until:
            parts.append(f"published until {self.until}")
        return " · ".join(parts)


@dataclass(frozen=True)
class Passage:
    """One passage found by :func:`rag.search`: ``text == article.text[start:end]``.

    ``score`` is the retrieval's fused score (reciprocal-rank fusion of the dense and
    keyword rankings, in (0, 2/61]; higher is better; only the order is meaningful);
    ``dense`` the cosine of query and passage in [-1, 1]."""

    __pydantic_config__ = _SCHEMA
    n: int
    article_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float
    dense: float
    url: str | None = None
    published: str | None = None
    author: str | None = None
    page: int | None = None
    file_date: str | None = None
    """the file's creation date (PDF, DOCX metadata) when it states no publication date"""
    date_source: str | None = None
    """where the date came from: record, page, feed (``published``) or file (``file_date``)"""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Why an answer abstained (Explanation.reason); "answered" when it did not.
REASONS = {
    "answered": "the best quote's confidence is at or above the threshold",
    "below_threshold": "the best quote's confidence is below the threshold",
    "no_passage": "no passage shares enough with the question",
    "filtered_out": "no article matches the filters",
}


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence behind the quote: its value and what it adds to the
    confidence's log-odds (``weight * value``; 0 when the calibration does not use it)."""

    __pydantic_config__ = _SCHEMA
    name: str
    value: float
    contribution: float
    meaning: str = ""


@dataclass(frozen=True)
class Explanation:
    """Why this answer (``Answer.explain``): the reason code (a key of
    :data:`REASONS`), the confidence, the threshold and the margin between them
    (confidence - threshold; negative when abstaining), the selector's probability that
    the quote answers (None when the selector did not read it or is off), the quote's
    passage's ranks in the dense and keyword retrieval (0 = first; None = not in that
    ranking's top n), the share of the question's terms the quote and its passage
    contain (weighted by rarity, [0, 1]), and every piece of evidence with its
    contribution."""

    __pydantic_config__ = _SCHEMA
    reason: str
    """answered, below_threshold, no_passage or filtered_out"""
    detail: str
    confidence: float
    threshold: float
    margin: float
    selector_probability: float | None = None
    dense_rank: int | None = None
    keyword_rank: int | None = None
    keyword_coverage: float | None = None
    passage_keyword_coverage: float | None = None
    candidates: int = 0
    """passages considered (after filters)"""
    articles_in_scope: int | None = None
    """articles the filters left (None: no filter)"""
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True)
class Article:
    """One article. ``id`` is stable: the file path relative to the source folder
    (POSIX separators), or the ``id`` field of a JSON record (``file#line`` when absent).

    ``source`` is what a citation shows as the origin: the relative path, or the record's
    ``source``/``url``. ``content_hash`` is the sha256 of ``text`` plus metadata, so a
    changed title also counts as an update.

    ``published`` is a publication date the article states (a record's ``published``, a
    page's or a feed item's date), the only date filters use; ``file_date`` the creation
    date in a PDF's or DOCX's metadata, which is not one (see :data:`DATE_SOURCES`);
    ``date_source`` says which of them the article's date is, None without a date.
    """

    id: str
    title: str
    text: str
    source: str
    url: str | None = None
    published: str | None = None
    author: str | None = None
    content_hash: str = ""
    pages: tuple[int, ...] = ()
    """Start offset in ``text`` of each page, ascending, the first 0 (PDF, DOCX page
    breaks); empty when the source has no pages. See :meth:`page_at`."""
    file_date: str | None = None
    """YYYY-MM-DD the file was created (PDF, DOCX metadata): not a publication date"""
    date_source: str | None = None
    """record, page, feed (``published``), file (only ``file_date``) or None"""

    def to_dict(self) -> dict[str, Any]:
        """Every field (``pages`` as a list): what the API and ``--json`` show."""
        return {**dataclasses.asdict(self), "pages": list(self.pages)}

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding character ``offset``, or None without a page table."""
        if not self.pages:
            return None
        import bisect

        return max(1, bisect.bisect_right(self.pages, offset))


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
class Copy:
    """Another article that holds the same story (a syndicated or near-duplicate copy,
    found at build time); listed on the citation that quotes the story once."""

    __pydantic_config__ = _SCHEMA
    article_id: str
    title: str
    source: str
    url: str | None = None
    published: str | None = None


@dataclass(frozen=True)
class Citation:
    """One numbered source of an answer.

    ``quote == article.text[start:end]`` and
    ``passage == article.text[passage_start:passage_end]``, with the quote inside the passage.
    ``score`` in [0, 1] is the calibrated confidence that this citation's own quote answers
    the question (the scale of ``Answer.score``; citation 1's equals it). Citation 1 holds
    the answer (the best by :mod:`rag.answer.extract`'s selection score); the others follow
    by falling ``score``, other articles before a further passage of an article already
    cited unless they are far less confident (:data:`rag.answer.extract.REPEAT_PENALTY`).
    ``answers`` is True only when the answer did not abstain and this citation's own
    ``score`` reaches the threshold: False for the nearest passages of an abstained answer
    and for cited passages that do not answer. A quote that introduces a list (ends with
    ":") carries the list's items.
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
    """whether this citation's own quote answers (its score reaches the threshold and the
    answer did not abstain)"""
    author: str | None = None
    page: int | None = None
    """1-based page of the quote's start (PDF, DOCX); None for sources without pages"""
    also_in: tuple[Copy, ...] = ()
    """other articles with the same story (syndicated copies), quoted once here"""
    file_date: str | None = None
    """the file's creation date (PDF, DOCX metadata) when it states no publication date:
    never shown as published, never filtered on"""
    date_source: str | None = None
    """where the date came from: record, page, feed (``published``) or file
    (``file_date``); None without a date (or from an index built before this field)"""


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
    filters: Filters | None = None
    """the filters applied (with the dates read from the question); None: every article"""
    scope: str = ""
    """the filters in words, shown with the answer ("" when none)"""
    explain: Explanation | None = None
    """why this quote, or why no answer"""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Answer":
        cites = tuple(Citation(**{**c, "also_in": tuple(Copy(**x) for x in c.get("also_in", ()))})
                      for c in data.get("citations", ()))
        filters = data.get("filters")
        if isinstance(filters, dict):
            filters = Filters(**{k: tuple(v) if isinstance(v, list) else v
                                 for k, v in filters.items()})
        explain = data.get("explain")
        if isinstance(explain, dict):
            explain = Explanation(**{**explain, "evidence": tuple(
                Evidence(**e) for e in explain.get("evidence", ()))})
        return cls(**{**data, "citations": cites, "filters": filters, "explain": explain})


@dataclass(frozen=True)
class Fetched:
    """What a build did with one web page or feed item (``python -m rag.build --url/--feed``).

    ``origin`` is the URL or feed URL the user gave; ``item`` the page's URL (a feed's
    item link); ``action`` one of ``added``, ``updated``, ``unchanged``, ``not modified``
    (the server said 304), ``skipped`` (``reason`` says why)."""

    origin: str
    item: str
    action: str
    reason: str = ""
    article_id: str | None = None


@dataclass(frozen=True)
class Folded:
    """An article whose story another article already holds (near-duplicate): it stays in
    the index, and answers quote ``copy_of`` and list it under "also in"."""

    article_id: str
    copy_of: str
    similarity: float


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
    fetched: tuple[Fetched, ...] = ()
    folded: tuple[Folded, ...] = ()

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
        if self.fetched:
            counts: dict[str, int] = {}
            for f in self.fetched:
                counts[f.action] = counts.get(f.action, 0) + 1
            lines.append("web: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items())))
            for f in self.fetched:  # why skipped, or a note (a feed's text only)
                if f.reason:
                    lines.append(f"  {f.action} {f.item}: {f.reason}")
        if self.folded:
            n = len(self.folded)
            lines.append(f"copies: {n} article{'s' * (n != 1)} repeat{'s' * (n == 1)} a "
                         "story another article holds (answers quote it once)")
            for f in self.folded:
                lines.append(f"  {f.article_id} ~ {f.copy_of} ({f.similarity:.2f})")
        return "\n".join(lines)
