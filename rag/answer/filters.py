"""Filters: which articles a question may use, checked and turned into passage ids.

:func:`make_filters` reads what a caller gave (a :class:`~rag.types.Filters`, or a dict
from the CLI, the API or the UI), refuses unknown fields, unreadable dates and reversed
ranges with :class:`~rag.types.InvalidQuestion`, and normalises dates to ISO
(``"last week"`` and ``"7d"`` are read against ``as_of``). :func:`allowed_chunks` gives
the passages of the matching articles, which retrieval searches *instead of* the whole
index (:func:`rag.answer.search.search` with ``allowed``), so a narrow filter still
returns ``k`` passages. Pure functions over an immutable index: thread-safe.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from ..types import FILTER_FIELDS, Filters, InvalidQuestion
from .dates import parse_date, published_date

MAX_VALUES = 100_000  # values per field (the API allows 1,000)
MAX_VALUE_CHARS = 500


def make_filters(value: Any, as_of: date | None = None) -> Filters | None:
    """A checked :class:`Filters` (dates as YYYY-MM-DD), or None when nothing filters.

    ``value``: None, a Filters, or a mapping of :data:`~rag.types.FILTER_FIELDS` to a
    string or a list of strings (``since``/``until``: one date, ISO or relative such as
    ``"last week"``/``"7d"``, read against ``as_of``, default today). Raises
    InvalidQuestion naming the problem."""
    if value is None:
        return None
    if isinstance(value, Filters):
        value = {f: getattr(value, f) for f in FILTER_FIELDS}
    if not isinstance(value, dict):
        raise InvalidQuestion(f"filters must be an object with the fields "
                              f"{', '.join(FILTER_FIELDS)}, not {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in FILTER_FIELDS)
    if unknown:
        raise InvalidQuestion(f"unknown filter field{'s' * (len(unknown) > 1)} "
                              f"{', '.join(map(repr, unknown))}: use "
                              f"{', '.join(FILTER_FIELDS)}")
    out: dict[str, Any] = {}
    for name in ("sources", "authors", "article_ids", "folders"):
        raw = value.get(name)
        if raw is None:
            continue
        items = [raw] if isinstance(raw, str) else raw
        if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
            raise InvalidQuestion(f"filter {name} must be a string or a list of strings")
        if len(items) > MAX_VALUES or any(len(x) > MAX_VALUE_CHARS for x in items):
            raise InvalidQuestion(f"filter {name}: at most {MAX_VALUES} values of "
                                  f"{MAX_VALUE_CHARS} characters")
        items = [" ".join(x.split()) for x in items]
        if name == "folders":  # ends of slashes and spaces both ("A /" is "A")
            items = [x.strip("/ ") for x in items]
        items = [x for x in dict.fromkeys(items) if x]
        if items:
            out[name] = tuple(items)
    today = as_of or date.today()
    for name in ("since", "until"):
        raw = value.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        if isinstance(raw, date):
            out[name] = raw.isoformat()
            continue
        if not isinstance(raw, str):
            raise InvalidQuestion(f"filter {name} must be a date (YYYY-MM-DD)")
        try:
            out[name] = parse_date(raw.strip(), today, end=name == "until").isoformat()
        except ValueError as exc:
            raise InvalidQuestion(f"filter {name}: {exc}") from None
    if out.get("since") and out.get("until") and out["since"] > out["until"]:
        raise InvalidQuestion(f"the date range is reversed: since {out['since']} is after "
                              f"until {out['until']}")
    filters = Filters(**out)
    return filters or None


def _host(url: str | None) -> str:
    if not url:
        return ""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
    return host.removeprefix("www.")


def article_mask(index, filters: Filters) -> np.ndarray:
    """bool per article row: does the article match ``filters``?"""
    meta = index.memo("filter-metadata", lambda: article_metadata(index.article_rows()))
    n = len(meta["ids"])
    keep = np.ones(n, dtype=bool)
    if filters.sources:
        wanted = [s.casefold() for s in filters.sources]
        keep &= np.array([any(w in src or w in host for w in wanted)
                          for src, host in zip(meta["sources"], meta["hosts"])], dtype=bool)
    if filters.authors:
        wanted = [a.casefold() for a in filters.authors]
        keep &= np.array([any(w in au for w in wanted) for au in meta["authors"]], dtype=bool)
    if filters.article_ids:
        wanted_ids = set(filters.article_ids)
        keep &= np.array([i in wanted_ids for i in meta["ids"]], dtype=bool)
    if filters.folders:
        prefixes = tuple(f + "/" for f in filters.folders)
        keep &= np.array([i.startswith(prefixes) for i in meta["ids"]], dtype=bool)
    if filters.since or filters.until:
        lo = date.fromisoformat(filters.since) if filters.since else date.min
        hi = date.fromisoformat(filters.until) if filters.until else date.max
        keep &= np.array([d is not None and lo <= d <= hi for d in meta["dates"]], dtype=bool)
    return keep


def allowed_chunks(index, filters: Filters | None) -> np.ndarray | None:
    """Sorted passage ids (int64) of the articles matching ``filters``; None: no filter."""
    if not filters:
        return None
    mask = article_mask(index, filters)
    if not index.n_chunks:
        return np.zeros(0, dtype=np.int64)
    rows = np.asarray(index.chunks[:, 0])
    return np.flatnonzero(mask[rows]).astype(np.int64)


def article_metadata(rows: list[tuple]) -> dict[str, list]:
    """Columns for filtering from ``(id, source, url, published, author)`` rows in
    article-row order: ids, casefolded sources, URL hosts and authors, and dates."""
    return {"ids": [r[0] for r in rows],
            "sources": [(r[1] or "").casefold() for r in rows],
            "hosts": [_host(r[2]) for r in rows],
            "published": [r[3] for r in rows],
            "dates": [published_date(r[3]) for r in rows],
            "authors": [(r[4] or "").casefold() for r in rows]}
