"""Limits, names and patterns shared by the web fetcher's parts. Part of
:mod:`rag.ingest.web`."""

from __future__ import annotations

import re


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
