"""Web pages -> records: fetch, decode, find the canonical URL, save (:func:`add_urls`). Part of
:mod:`rag.ingest.web`."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from ...types import Fetched
from ..fetch import FetchError, FetchPolicy, Response, check_url, fetch
from ..loaders import _HTML_CHARSET, _decode, _Skip, extract_html
from ..sites import same_site
from .constants import PAGE_ACCEPT, PAGE_TYPES, _ATTR, _FEED_TYPES, _HEAD_BYTES, _LINK_TAG
from .records import _save
from .urls import _host_of, _now, _site_of_url, canonical_url


def _decode_page(resp: Response) -> str:
    body = resp.body
    if resp.charset and not body.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        try:
            return body.decode(resp.charset)
        except (LookupError, UnicodeDecodeError):
            pass
    declared = _HTML_CHARSET.search(body[:4096])
    return _decode(body, fallback_encoding=declared.group(1).decode("ascii") if declared
                   else None)


def _canonical_link(raw: str) -> str | None:
    """The href of the first ``<link rel="canonical">`` in the page's head."""
    head = raw[:_HEAD_BYTES]
    end = re.search(r"</head\s*>|<body\b", head, re.I)
    for tag in _LINK_TAG.findall(head[:end.start()] if end else head):
        attrs = {k.lower(): v.strip("\"'") for k, v in _ATTR.findall(tag)}
        if "canonical" in attrs.get("rel", "").lower().split() and attrs.get("href"):
            return html.unescape(attrs["href"]).strip()
    return None


def _page_id(final_url: str, candidates: Iterable[str | None]) -> str:
    """The canonical URL of a page fetched from ``final_url``: the first candidate that is
    an http(s) URL of the same site, else the final URL."""
    page_host = _host_of(final_url)
    for cand in candidates:
        if not cand:
            continue
        absolute = urljoin(final_url, cand)
        try:
            check_url(absolute)
            canon = canonical_url(absolute)
        except (FetchError, ValueError):
            continue
        if same_site(page_host, _host_of(canon)):
            return canon
    return canonical_url(final_url)


def _read_page(resp: Response) -> dict[str, Any]:
    """A fetched page -> record fields (id, title, text, url, published, source, author)."""
    ctype = resp.content_type
    if ctype not in PAGE_TYPES:
        sniff = resp.body[:1024].lstrip().lower()
        if ctype or not sniff.startswith((b"<!doctype html", b"<html")):
            raise _Skip(f"not an HTML page ({ctype or 'no content type'})")
    raw = _decode_page(resp)
    text, meta, title = extract_html(raw)
    page_id = _page_id(resp.final_url, (_canonical_link(raw), getattr(meta, "url", None)))
    host = _host_of(page_id)
    published = _clean(getattr(meta, "date", None))
    return {"id": page_id, "title": " ".join(title.split()) or None,
            "author": _clean(getattr(meta, "author", None)),
            "published": published, "date_source": "page" if published else None,
            "source": _clean(getattr(meta, "sitename", None)) or host,
            "url": page_id, "text": text}


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    return value or None


def _fetch_page(url: str, policy: FetchPolicy) -> dict[str, Any]:
    """Fetch and read one page; raises ``_Skip`` with the reason."""
    try:
        resp = fetch(url, policy, accept=PAGE_ACCEPT, content_types=PAGE_TYPES)
    except FetchError as exc:
        if exc.content_type is not None:
            hint = "; add it as a feed" if exc.content_type in _FEED_TYPES else ""
            raise _Skip(f"not an HTML page ({exc.content_type or 'no content type'}){hint}"
                        ) from None
        raise _Skip(exc.reason) from None
    return _read_page(resp)


def _source_problem(source: Path) -> str | None:
    return None if source.is_dir() else f"the articles folder {source} does not exist"


def _unexpected(exc: BaseException) -> str:
    return f"unexpected error ({type(exc).__name__}: {exc})"


def _failure(exc: BaseException) -> str:
    """Why a page or item was not saved (one bad item never stops the rest)."""
    if isinstance(exc, _Skip):
        return str(exc)
    if isinstance(exc, OSError):
        return f"could not save the article ({exc.strerror or exc})"
    return _unexpected(exc)


def add_urls(source: Path | str, urls: Iterable[str],
             policy: FetchPolicy | None = None) -> list[Fetched]:
    """Fetch each page of ``urls`` into ``<source>/web/`` (see the module docstring).

    One :class:`~rag.types.Fetched` per URL, in order: ``origin`` the URL as given,
    ``item`` the article's canonical URL (the URL as given when skipped), ``action``
    added / updated / unchanged / skipped. Never raises for a bad URL or page."""
    source = Path(source)
    policy = policy or FetchPolicy()
    out: list[Fetched] = []
    problem = _source_problem(source)
    for url in urls:
        shown = url.strip() if isinstance(url, str) else repr(url)
        if problem:
            out.append(Fetched(shown, shown, "skipped", problem))
            continue
        try:
            record = _fetch_page(shown, policy)
            # the id is on the fetched page's own site (see _page_id)
            record.update(origin=shown, fetched=_now(), site=_site_of_url(record["id"]))
            action = _save(source, record, _host_of(record["id"]))
            out.append(Fetched(shown, record["url"], action, article_id=record["id"]))
        except Exception as exc:  # noqa: BLE001 - one bad page must not stop the rest
            out.append(Fetched(shown, shown, "skipped", _failure(exc)))
    return out
