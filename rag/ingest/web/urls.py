"""URLs and where their records go: canonical URLs, hosts and sites, record paths. Part of
:mod:`rag.ingest.web`."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..sites import site_of
from .constants import TRACKING_PARAMS, TRACKING_PREFIXES, WEB_FOLDER


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


def _feed_key(url: str) -> str:
    try:
        return canonical_url(url)
    except ValueError:
        return url.strip()
