"""Web pages and RSS/Atom feeds -> JSON record files in the source folder.

A fetched page (or feed item) becomes one single-record ``.json`` file that
:func:`rag.ingest.loaders.load_articles` reads like any other record::

    <source>/web/<host>/<sha256(id)[:16]>.json
    {"id", "title", "author", "published", "date_source", "source", "url", "text",
     "origin", "site", "fetched"}

``id`` is the page's canonical URL (:func:`canonical_url` of the ``<link rel=canonical>``,
else ``og:url``, else the final URL after redirects), so fetching the page again, or
through another address with the same canonical URL (tracking parameters, a redirect, an
AMP copy), updates the same file instead of adding a duplicate. A canonical URL is only
believed when it names the page's own site, the registrable domain of the URL fetched
(:func:`rag.ingest.sites.same_site`, Public Suffix List aware: ``www.example.com`` may
name ``example.com``, ``m.org`` may not name ``news.example.org``): a page cannot claim
another site's identity and overwrite its article. ``text`` is trafilatura's main text
(:func:`rag.ingest.loaders.normalize_text`), ``published`` an ISO date (one the page's
markup or the feed item states), ``date_source`` where it came from (``page`` or ``feed``;
None without a date), ``source`` the
site name (else the host), ``origin`` the URL or feed the user gave, ``site`` the
registrable domain that published the record (the page's, or the feed's for a feed
item), ``fetched`` the UTC time of the fetch. Only ``text/html`` and
``application/xhtml+xml`` answers are pages. Each file is written atomically (a hidden
temporary file, then ``os.replace``) and only when something other than ``fetched`` /
``origin`` changed: the same text and metadata again is ``unchanged`` and the file is
left alone, so the index sees no change. A record is never replaced by a fetch from
another origin: only a fetch from the same page or feed URL (``origin``) or from the same
site (``site``) may rewrite it, or write a second record with its id; anything else is
``skipped`` with the reason (issue 22).

Feeds (RSS 2.0, RSS 1.0, Atom) are remembered in ``<source>/.rag-feeds.json`` (hidden: the
loader skips it): per feed its url, title, etag, last_modified, last_polled, the guid ->
article id map of every item ever saved (``items``) and the guids of the last poll
(``current``). The raw XML is first parsed with defusedxml, which refuses entity
declarations (billion laughs, quadratic blow-up) and external references (``SYSTEM
"file:///etc/passwd"``) before feedparser ever sees the bytes; XML that is not well formed
is refused too. A feed item's id:

* the item's guid (RSS ``<guid>``, Atom ``<id>``) when it has one — it is the publisher's
  promise of a stable identity, while links change (a slug rewritten after a title edit,
  tracking parameters, http -> https), so the guid is what keeps a re-poll updating the
  same article instead of adding a copy. A guid that is an http(s) URL on the feed's own
  site (the registrable domain of the URL the feed was served from) is normalised with
  :func:`canonical_url` (so a permalink guid and the same page added with ``--url`` meet);
  one with another URI scheme (``tag:``, ``urn:uuid:``) is globally unique as it is; a
  bare guid (``"12345"``) is only unique inside its feed, so it becomes
  ``<feed url>#<guid>``, and so does a URL guid of another site (``<feed
  url>#<canonical guid>``): a feed speaks for its own site only, never for the page of
  another site that it points to (issue 22);
* else the canonical form of the item's link, on the same terms (another site's link
  becomes ``<feed url>#<canonical link>``).

An item's text is its full content (``content:encoded``, Atom ``<content>``, else the
description) when that holds at least :data:`MIN_FEED_TEXT` characters of text; else the
item's link is fetched as a page (its text and metadata; the item's own title, author and
date win, they are cleaner). When the page fails (a 404, not HTML...), the item is
``skipped`` with the page's reason unless the feed's own text is a real body of at least
:data:`MIN_FEED_BODY` characters: then that text is kept and the item's line says so in
its ``reason`` ("the feed's text only (N characters): its page failed: ..."); a teaser
or a one-word description is never indexed as if it were the article. An
item whose entry did not change since the last poll (same title, link, dates, content)
and whose file is still there is ``unchanged`` without fetching anything. At most
``max_feed_items`` (200) items are taken per poll, the newest by date (feed order when
some item has no date); the rest is reported as one ``skipped`` line with the count.
Items that leave a feed keep their files until :func:`prune_feed` (or
:func:`remove_feed` with ``delete_items``).

Contract: the public functions never raise for a bad URL, feed or item: each problem is a
``Fetched(origin, item, "skipped", reason)`` and the rest goes on. Every fetch goes
through :func:`rag.ingest.fetch.fetch` and its rules (public http(s) addresses only...).
Thread-safety: calls may run concurrently (threads or processes): record files are
replaced atomically (the last writer wins) and every change of the feeds file happens
under a file lock (``<source>/.rag-feeds.json.lock``), held for a whole poll, so two polls
of one folder run one after the other.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from ..types import Fetched
from .fetch import FetchError, FetchPolicy, Response, check_url, fetch
from .loaders import _HTML_CHARSET, _decode, _Skip, extract_html, normalize_text
from .sites import same_site, site_of

__all__ = ["add_urls", "add_feeds", "poll_feeds", "list_feeds", "prune_feed", "remove_feed",
           "canonical_url", "record_path", "FEEDS_FILE", "WEB_FOLDER"]

FEEDS_FILE = ".rag-feeds.json"
WEB_FOLDER = "web"
MIN_FEED_TEXT = 500
"""characters of text an item's own content needs to be used instead of fetching its link"""
MIN_FEED_BODY = 200
"""characters of text an item's own content needs to stand in for its page when the page
fails (a couple of sentences: below that it is a teaser, not the article)"""
MAX_FEED_ITEMS = 200
PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
               "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.1")
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"
_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml")
LOCK_TIMEOUT = 600.0  # seconds to wait for another poll of the same folder

# query parameters that only track the visitor: dropped from canonical URLs
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid",
                             "mc_cid", "mc_eid", "igshid", "yclid", "_hsenc", "_hsmi"})
TRACKING_PREFIXES = ("utm_",)
_RECORD_KEYS = ("id", "title", "author", "published", "date_source", "source", "url",
                "text")
_LINK_TAG = re.compile(r"<link\b[^>]*>", re.I)
_ATTR = re.compile(r"""([a-zA-Z_:][-\w:.]*)\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+)""")
_URI_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S")
_HEAD_BYTES = 512 * 1024


# -- URLs and paths ----------------------------------------------------------------------

def canonical_url(url: str) -> str:
    """The normal form of an http(s) URL used as an article id: lower-case scheme and
    host, no user info, no default port, no fragment, an empty path as ``/``, tracking
    parameters (``utm_*``, ``fbclid``, ``gclid``, ... :data:`TRACKING_PARAMS`) dropped,
    the other parameters kept in their order. Raises ``ValueError`` on a non-http(s) URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    host = parts.hostname.lower().rstrip(".")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port and port != (443 if scheme == "https" else 80):
        host += f":{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k.lower() not in TRACKING_PARAMS and not k.lower().startswith(TRACKING_PREFIXES)]
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query, doseq=True), ""))


def _host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def _site_of_url(url: str) -> str:
    """The registrable domain of an http(s) URL's host ("" for anything else)."""
    return site_of(_host_of(url)) if url.startswith(("http://", "https://")) else ""


def _folder_name(host: str) -> str:
    name = re.sub(r"[^a-z0-9._-]", "_", host.lower()).strip("._") or "unknown"
    return name[:100]


def record_path(source: Path, article_id: str, fallback_host: str = "") -> Path:
    """Where the record of ``article_id`` lives: ``<source>/web/<host>/<sha256[:16]>.json``;
    ``host`` is the id's host (with a non-default port), else ``fallback_host`` (a feed's
    host, for ``tag:``/``urn:`` guids)."""
    host = ""
    if article_id.startswith(("http://", "https://")):
        try:
            host = urlsplit(article_id).netloc.rsplit("@", 1)[-1]
        except ValueError:
            host = ""
    digest = hashlib.sha256(article_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Path(source) / WEB_FOLDER / _folder_name(host or fallback_host) / f"{digest}.json"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- files -------------------------------------------------------------------------------

def _write_atomic(path: Path, data: str) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _save(source: Path, record: dict[str, Any], fallback_host: str) -> str:
    """Write ``record`` unless the same record is there: "added", "updated", "unchanged".
    Raises ``_Skip`` when the file holds another id (a hash collision), or when the record
    of this id (here, or in another host's folder) came from another origin."""
    path = record_path(source, record["id"], fallback_host)
    existed = path.exists()
    old = _read_json(path) if existed else None
    for other in _same_id_records(source, path, record["id"], old):
        why = _replace_problem(other, record)
        if why:
            raise _Skip(why)
    if isinstance(old, dict):
        if old.get("id") not in (None, record["id"]):
            raise _Skip(f"{path.name} already holds another article ({old.get('id')})")
        if all(old.get(k) == record.get(k) for k in _RECORD_KEYS):
            return "unchanged"
    _write_atomic(path, json.dumps(record, ensure_ascii=False, indent=1) + "\n")
    return "updated" if existed else "added"


def _same_id_records(source: Path, path: Path, article_id: str,
                     old: Any) -> list[dict[str, Any]]:
    """The saved records with ``article_id``: the one at ``path`` (``old``) and those in
    other hosts' folders (a ``tag:``/``urn:`` id lives in its feed's host folder, so two
    feeds can hold one id; the file name depends on the id alone)."""
    found = [old] if isinstance(old, dict) and old.get("id") == article_id else []
    for other in sorted((Path(source) / WEB_FOLDER).glob(f"*/{path.name}")):
        if other != path:
            rec = _read_json(other)
            if isinstance(rec, dict) and rec.get("id") == article_id:
                found.append(rec)
    return found


def _record_site(record: dict[str, Any]) -> str:
    """The site that published a saved record: its ``site`` field; records saved before
    it existed: the site of their URL id, else of their origin."""
    site = record.get("site")
    if isinstance(site, str) and site:
        return site
    return _site_of_url(str(record.get("id") or "")) or \
        _site_of_url(str(record.get("origin") or ""))


def _replace_problem(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why ``new`` may not replace (or sit beside) the saved ``old`` of the same id, or
    None when it may: the same origin (page or feed URL as given) or the same site."""
    if old.get("origin") and _feed_key(str(old["origin"])) == _feed_key(str(new["origin"])):
        return None
    was, now = _record_site(old), new.get("site") or ""
    if not was or was == now:
        return None
    return f"{new['id']} was saved from {was}; a fetch from {now or 'elsewhere'} may not " \
           "replace it"


# -- pages -------------------------------------------------------------------------------

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


# -- HTML fragments of feed items -> text --------------------------------------------------

_BLOCK = frozenset("address article aside blockquote dd div dl dt figcaption figure footer "
                   "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody "
                   "thead tfoot tr ul".split())
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "iframe", "object"})


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n\n")
            self.pre += tag == "pre"
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK:
            self.parts.append("\n\n")
            if tag == "pre":
                self.pre = max(0, self.pre - 1)

    def handle_data(self, data):
        if self.skip:
            return
        self.parts.append(data if self.pre else re.sub(r"[ \t\r\n\f\v]+", " ", data))


def html_to_text(fragment: str) -> str:
    """Readable text of an HTML fragment (a feed item's content): blocks become
    paragraphs, scripts and styles are dropped, entities decoded."""
    parser = _TextParser()
    try:
        parser.feed(fragment)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; never fail on markup
        return normalize_text(html.unescape(re.sub(r"<[^>]*>", " ", fragment)))
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return normalize_text(text)


# -- feeds -------------------------------------------------------------------------------

def _feed_key(url: str) -> str:
    try:
        return canonical_url(url)
    except ValueError:
        return url.strip()


def _load_state(source: Path) -> dict[str, Any]:
    data = _read_json(source / FEEDS_FILE)
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), list):
        return {"version": 1, "feeds": []}
    data["feeds"] = [f for f in data["feeds"] if isinstance(f, dict) and
                     isinstance(f.get("url"), str)]
    for f in data["feeds"]:
        if not isinstance(f.get("items"), dict):
            f["items"] = {}
        if not isinstance(f.get("current"), list):
            f["current"] = []
        if not isinstance(f.get("seen"), dict):
            f["seen"] = {}
    return data


def _save_state(source: Path, state: dict[str, Any]) -> None:
    _write_atomic(source / FEEDS_FILE, json.dumps(state, ensure_ascii=False, indent=1) + "\n")


def _find(state: dict[str, Any], feed_url: str) -> dict[str, Any] | None:
    key = _feed_key(feed_url)
    return next((f for f in state["feeds"] if _feed_key(f["url"]) == key), None)


class _Locked:
    """The feeds file lock of one source folder (a file lock: threads and processes)."""

    def __init__(self, source: Path) -> None:
        from filelock import FileLock

        self.lock = FileLock(str(source / (FEEDS_FILE + ".lock")), timeout=LOCK_TIMEOUT)

    def __enter__(self):
        self.lock.acquire()
        return self

    def __exit__(self, *exc):
        self.lock.release()


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


def _poll(source: Path, feed: dict[str, Any], policy: FetchPolicy, max_items: int,
          *, first: bool) -> list[Fetched]:
    """Poll one remembered feed (``feed`` is updated in place); raises ``_Skip`` when the
    feed itself cannot be read."""
    import feedparser

    url = feed["url"]
    feed_host = _host_of(url)
    files_there = all(record_path(source, aid, feed_host).exists()
                      for aid in feed["items"].values())
    # an item skipped last time (its page failed) is tried again: no 304 may hide it
    all_saved = all(k in feed["items"] for k in feed.get("current") or ())
    conditional = not first and files_there and all_saved
    try:
        resp = fetch(url, policy, accept=FEED_ACCEPT,
                     etag=feed.get("etag") if conditional else None,
                     last_modified=feed.get("last_modified") if conditional else None)
    except FetchError as exc:
        raise _Skip(exc.reason) from None
    if resp.status == 304:
        feed["last_polled"] = _now()
        return [Fetched(url, url, "not modified")]
    _, body = _check_xml(resp.body)
    parsed = feedparser.parse(io.BytesIO(body), response_headers={
        "content-location": resp.final_url,
        "content-type": resp.headers.get("content-type", "application/xml")})
    if not parsed.get("version") and not parsed.entries:
        raise _Skip("not an RSS or Atom feed")
    feed_title = _clean(parsed.feed.get("title"))
    base = resp.final_url

    keyed: list[tuple[str, str, Any]] = []
    out: list[Fetched] = []
    seen_keys: set[str] = set()
    for n, entry in enumerate(parsed.entries, 1):
        ids = _item_key_and_id(entry, url, base)
        if ids is None:
            out.append(Fetched(url, f"{url} (item {n})", "skipped",
                               "the item has neither a guid nor a link"))
            continue
        if ids[0] in seen_keys:
            continue  # the same guid twice in one feed: the first one counts
        seen_keys.add(ids[0])
        keyed.append((ids[0], ids[1], entry))
    if all(_entry_date(e) for _, _, e in keyed):
        keyed.sort(key=lambda t: tuple(_entry_date(t[2])), reverse=True)  # newest first
    taken, rest = keyed[:max_items], keyed[max_items:]

    for key, article_id, entry in taken:
        link = entry.get("link")
        link = urljoin(base, link.strip()) if isinstance(link, str) and link.strip() else None
        shown = link or key
        try:
            fp = _fingerprint(entry)
            path = record_path(source, article_id, feed_host)
            if (feed["items"].get(key) == article_id and feed["seen"].get(key) == fp
                    and path.exists()):
                out.append(Fetched(url, shown, "unchanged", article_id=article_id))
                continue
            record, note = _item_record(entry, article_id, link, feed_title, feed_host,
                                        policy)
            record.update(origin=url, fetched=_now(), site=_site_of_url(base))
            action = _save(source, record, feed_host)
            feed["items"][key] = article_id
            if not note:
                feed["seen"][key] = fp
            else:  # the next poll tries the page again
                feed["seen"].pop(key, None)
            out.append(Fetched(url, shown, action, note, article_id=article_id))
        except Exception as exc:  # noqa: BLE001 - one bad item must not stop the rest
            out.append(Fetched(url, shown, "skipped", _failure(exc)))
    if rest:
        out.append(Fetched(url, url, "skipped",
                           f"{len(rest):,} older items not fetched (at most {max_items} "
                           "items per poll)"))
    feed.update(title=feed_title or feed.get("title"), etag=resp.etag,
                last_modified=resp.last_modified, last_polled=_now(),
                current=[k for k, _, _ in keyed])
    return out


def _poll_many(source: Path, feed_urls: list[str], policy: FetchPolicy | None,
               max_items: int, *, add: bool) -> list[Fetched]:
    source = Path(source)
    if not feed_urls:
        return []
    policy = policy or FetchPolicy()
    problem = _source_problem(source)
    if problem:
        return [Fetched(str(u), str(u), "skipped", problem) for u in feed_urls]
    out: list[Fetched] = []
    try:
        lock = _Locked(source)
        lock.__enter__()
    except Exception as exc:  # noqa: BLE001 - a Timeout or an unwritable folder
        return [Fetched(str(u), str(u), "skipped",
                        f"the feeds of {source} are busy or cannot be locked ({exc})")
                for u in feed_urls]
    try:
        state = _load_state(source)
        for raw in feed_urls:
            url = raw.strip() if isinstance(raw, str) else repr(raw)
            feed = _find(state, url)
            new = feed is None
            if new and not add:
                out.append(Fetched(url, url, "skipped", "not a remembered feed"))
                continue
            try:
                check_url(url)
            except FetchError as exc:
                out.append(Fetched(url, url, "skipped", exc.reason))
                continue
            if new:
                feed = {"url": url, "title": None, "etag": None, "last_modified": None,
                        "last_polled": None, "added": _now(), "items": {}, "current": [],
                        "seen": {}}
            try:
                out += _poll(source, feed, policy, max_items, first=new)
            except _Skip as exc:
                reason = str(exc) + ("; the feed was not remembered" if new else "")
                out.append(Fetched(url, url, "skipped", reason))
                if not new:
                    feed["last_polled"] = _now()
                    feed["last_error"] = str(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - one bad feed must not stop the rest
                out.append(Fetched(url, url, "skipped", _unexpected(exc)))
                continue
            feed.pop("last_error", None)
            if new:
                state["feeds"].append(feed)
            try:
                _save_state(source, state)  # after each feed: a crash keeps what was done
            except OSError as exc:
                out.append(Fetched(url, url, "skipped",
                                   f"could not remember the feed ({exc.strerror or exc})"))
        try:
            _save_state(source, state)
        except OSError:
            pass
    finally:
        lock.__exit__(None, None, None)
    return out


def add_feeds(source: Path | str, feed_urls: Iterable[str], policy: FetchPolicy | None = None,
              *, max_feed_items: int = MAX_FEED_ITEMS) -> list[Fetched]:
    """Remember each feed of ``feed_urls`` in ``<source>/.rag-feeds.json`` and poll it now.

    A feed that cannot be fetched or is not a safe, well-formed RSS/Atom feed is
    ``skipped`` and not remembered; a feed already remembered is polled again. One
    :class:`~rag.types.Fetched` per item (``origin`` the feed URL, ``item`` the item's
    link), one ``not modified`` line for a feed that answered 304, one ``skipped`` line
    for the items over ``max_feed_items``. Never raises for a bad feed or item."""
    return _poll_many(Path(source), list(feed_urls), policy, max_feed_items, add=True)


def poll_feeds(source: Path | str, policy: FetchPolicy | None = None, *,
               only: Iterable[str] | None = None,
               max_feed_items: int = MAX_FEED_ITEMS) -> list[Fetched]:
    """Poll every remembered feed (or those in ``only``), sending the stored ETag and
    Last-Modified, so an unchanged feed costs one ``not modified`` line. See
    :func:`add_feeds` for what comes back."""
    source = Path(source)
    if only is None:
        urls = [f["url"] for f in _load_state(source)["feeds"]] if source.is_dir() else []
    else:
        urls = list(only)
    return _poll_many(source, urls, policy, max_feed_items, add=False)


def list_feeds(source: Path | str) -> list[dict[str, Any]]:
    """The remembered feeds: ``url``, ``title``, ``etag``, ``last_modified``,
    ``last_polled``, ``added``, ``items`` (how many items were saved), ``current`` (how
    many items the last poll listed) and ``last_error`` when the last poll failed."""
    out = []
    for f in _load_state(Path(source))["feeds"]:
        out.append({"url": f["url"], "title": f.get("title"), "etag": f.get("etag"),
                    "last_modified": f.get("last_modified"),
                    "last_polled": f.get("last_polled"), "added": f.get("added"),
                    "items": len(f["items"]), "current": len(f["current"]),
                    **({"last_error": f["last_error"]} if f.get("last_error") else {})})
    return out


def _delete_items(source: Path, state: dict[str, Any], feed: dict[str, Any],
                  keys: Iterable[str]) -> list[str]:
    """Delete the record files of ``feed``'s items ``keys`` that this feed wrote and no
    other remembered feed lists now; returns their paths relative to ``source``."""
    feed_host = _host_of(feed["url"])
    others: set[str] = set()
    for f in state["feeds"]:
        if f is not feed:
            others |= {f["items"][k] for k in f["current"] if k in f["items"]}
    deleted = []
    for key in list(keys):
        article_id = feed["items"].get(key)
        if article_id is None or article_id in others:
            continue
        path = record_path(source, article_id, feed_host)
        old = _read_json(path)
        if isinstance(old, dict) and old.get("origin") \
                and _feed_key(str(old["origin"])) != _feed_key(feed["url"]):
            continue  # the page was added on its own (--url) or by another feed
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            continue
        else:
            deleted.append(path.relative_to(source).as_posix())
        feed["items"].pop(key, None)
        feed["seen"].pop(key, None)
    return deleted


def prune_feed(source: Path | str, feed_url: str) -> list[str]:
    """Delete the files of ``feed_url``'s items that were not in its last poll (items stay
    when they leave a feed until pruned). Returns the deleted files (relative to
    ``source``); ``[]`` for an unknown feed. Files another feed still lists, or that were
    added by another feed or as a page of their own, are kept."""
    source = Path(source)
    if not source.is_dir():
        return []
    with _Locked(source):
        state = _load_state(source)
        feed = _find(state, feed_url)
        if feed is None or feed.get("last_polled") is None:
            return []
        current = set(feed["current"])
        deleted = _delete_items(source, state, feed,
                                [k for k in feed["items"] if k not in current])
        _save_state(source, state)
    return deleted


def remove_feed(source: Path | str, feed_url: str, delete_items: bool = False) -> list[str]:
    """Forget ``feed_url``; with ``delete_items`` also delete its items' files (as
    :func:`prune_feed` would: not those another feed lists or another origin wrote).
    Returns the deleted files (relative to ``source``); ``[]`` when nothing was deleted
    or the feed was unknown."""
    source = Path(source)
    if not source.is_dir():
        return []
    with _Locked(source):
        state = _load_state(source)
        feed = _find(state, feed_url)
        if feed is None:
            return []
        deleted = _delete_items(source, state, feed, list(feed["items"])) if delete_items \
            else []
        state["feeds"] = [f for f in state["feeds"] if f is not feed]
        _save_state(source, state)
    return deleted
