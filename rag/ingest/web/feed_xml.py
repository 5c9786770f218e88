"""Feed XML -> items: the defusedxml check, dates, ids, texts and item records. Part of
:mod:`rag.ingest.web`."""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any
from urllib.parse import urljoin

from ..fetch import FetchPolicy
from ..loaders import _Skip, normalize_text
from ..sites import same_site
from .constants import MIN_FEED_BODY, MIN_FEED_TEXT, _URI_SCHEME
from .html_text import html_to_text
from .pages import _clean, _fetch_page
from .urls import _feed_key, _host_of, canonical_url


_ENTITY_REF = re.compile(rb"&([A-Za-z][A-Za-z0-9]{1,31});")


_XML_ENTITIES = frozenset({b"amp", b"lt", b"gt", b"quot", b"apos"})


def _html_entities_as_numbers(body: bytes) -> bytes:
    """``&nbsp;`` and the other HTML entity names (undeclared in XML, common in feeds)
    as numeric character references; one name is one or two characters, nothing expands."""
    from html.entities import html5

    def number(m: re.Match) -> bytes:
        name = m.group(1)
        if name in _XML_ENTITIES:
            return m.group(0)
        chars = html5.get(name.decode("ascii") + ";")
        return "".join(f"&#{ord(c)};" for c in chars).encode("ascii") if chars else m.group(0)

    return _ENTITY_REF.sub(number, body)


def _check_xml(body: bytes) -> tuple[str, bytes]:
    """Refuse dangerous or broken XML before any feed parser sees it. Returns the root tag
    and the bytes to parse: leading white space removed, and HTML entity names (``&nbsp;``,
    undeclared in XML) turned into character references when they were all that broke it.
    """
    import defusedxml
    import defusedxml.ElementTree as DET
    from xml.etree.ElementTree import ParseError

    bom = b"\xef\xbb\xbf" if body.startswith(b"\xef\xbb\xbf") else b""
    body = bom + body[len(bom):].lstrip(b" \t\r\n")
    try:
        try:
            root = DET.fromstring(body, forbid_dtd=False, forbid_entities=True,
                                  forbid_external=True)
        except ParseError as exc:
            if "undefined entity" not in str(exc):
                raise
            fixed = _html_entities_as_numbers(body)
            if fixed == body:
                raise
            root = DET.fromstring(fixed, forbid_dtd=False, forbid_entities=True,
                                  forbid_external=True)
            body = fixed
    except defusedxml.EntitiesForbidden as exc:
        if getattr(exc, "sysid", None) or getattr(exc, "pubid", None):
            raise _Skip("refused: the feed declares an external XML entity (it could read "
                        "local files or other servers)") from None
        raise _Skip("refused: the feed declares XML entities (entity expansion, as in a "
                    "\"billion laughs\" attack, is not allowed)") from None
    except defusedxml.ExternalReferenceForbidden:
        raise _Skip("refused: the feed refers to external XML entities or files") from None
    except defusedxml.DefusedXmlException as exc:
        raise _Skip(f"refused: unsafe XML ({type(exc).__name__})") from None
    except ParseError as exc:
        raise _Skip(f"not a well-formed XML feed ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise _Skip(f"not a well-formed XML feed ({exc})") from None
    tag = root.tag.rsplit("}", 1)[-1].lower() if isinstance(root.tag, str) else ""
    if tag not in ("rss", "feed", "rdf"):
        raise _Skip(f"not an RSS or Atom feed (the document is <{tag}>)")
    return tag, body


def _entry_date(entry: Any) -> time.struct_time | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            return value
    return None


def _item_key_and_id(entry: Any, feed_url: str, base: str) -> tuple[str, str] | None:
    """(guid map key, article id) of a feed entry, or None without a guid or a link.
    ``base`` is the URL the feed was served from: its site is the only one whose URLs
    the feed's items may take as ids."""
    guid = entry.get("id")
    guid = guid.strip() if isinstance(guid, str) else ""
    if guid:
        if guid.lower().startswith(("http://", "https://")):
            try:
                return guid, _own_url_id(canonical_url(guid), feed_url, base)
            except ValueError:
                pass
        elif _URI_SCHEME.match(guid):
            return guid, guid
        return guid, f"{_feed_key(feed_url)}#{guid}"
    link = entry.get("link")
    if isinstance(link, str) and link.strip():
        try:
            canon = canonical_url(urljoin(base, link.strip()))
        except ValueError:
            return None
        return canon, _own_url_id(canon, feed_url, base)
    return None


def _own_url_id(canon: str, feed_url: str, base: str) -> str:
    """``canon`` when it is on the site the feed was served from, else namespaced under
    the feed (``<feed url>#<canon>``), so a feed never writes another site's article."""
    if same_site(_host_of(base), _host_of(canon)):
        return canon
    return f"{_feed_key(feed_url)}#{canon}"


def _entry_content(entry: Any) -> str:
    """The longest text among an entry's contents and its summary."""
    best = ""
    values = [c for c in entry.get("content") or [] if isinstance(c, dict)]
    values.append({"value": entry.get("summary") or "",
                   "type": (entry.get("summary_detail") or {}).get("type", "text/html")})
    for c in values:
        value = c.get("value") or ""
        if not isinstance(value, str):
            continue
        ctype = (c.get("type") or "text/html").lower()
        text = normalize_text(value) if ctype == "text/plain" else html_to_text(value)
        if len(text) > len(best):
            best = text
    return best


def _fingerprint(entry: Any) -> str:
    parts = [entry.get(k) for k in ("title", "link", "id", "published", "updated",
                                    "author", "summary")]
    parts.append([c.get("value") for c in entry.get("content") or [] if isinstance(c, dict)])
    return hashlib.sha256(json.dumps(parts, default=str, ensure_ascii=False)
                          .encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _item_record(entry: Any, article_id: str, link: str | None, feed_title: str | None,
                 feed_host: str, policy: FetchPolicy) -> tuple[dict[str, Any], str]:
    """Record fields of a feed entry, and "" when they are complete (the full content or
    the fetched page), else the note saying they are the feed's text only (its page
    failed). Raises ``_Skip`` when there is no real text: see the module docstring."""
    content = _entry_content(entry)
    page: dict[str, Any] | None = None
    note = ""
    if len(content) < MIN_FEED_TEXT:
        if link:
            try:
                page = _fetch_page(link, policy)
            except _Skip as exc:
                if len(content) < MIN_FEED_BODY:
                    raise _Skip(f"its page failed ({exc}) and the feed gives only "
                                f"{len(content):,} characters of text (at least "
                                f"{MIN_FEED_BODY} stand in for a page)") from None
                note = (f"the feed's text only ({len(content):,} characters): its page "
                        f"failed: {exc}")
        elif len(content) < MIN_FEED_BODY:
            raise _Skip(f"the item has no link and only {len(content):,} characters of "
                        f"text (at least {MIN_FEED_BODY} stand in for a page)")
    date = _entry_date(entry)
    title = _clean(entry.get("title"))
    author = _clean(entry.get("author"))
    url = (page or {}).get("url") or (link and _safe_canonical(link))
    record = {
        "id": article_id,
        "title": title or (page or {}).get("title"),
        "author": author or (page or {}).get("author"),
        "published": time.strftime("%Y-%m-%d", date) if date else (page or {}).get("published"),
        "date_source": "feed" if date else (page or {}).get("date_source"),
        "source": feed_title or (page or {}).get("source") or feed_host,
        "url": url or None,
        "text": page["text"] if page else content,
    }
    return record, note


def _safe_canonical(url: str) -> str | None:
    try:
        return canonical_url(url)
    except ValueError:
        return None
