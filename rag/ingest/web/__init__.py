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

from .constants import FEEDS_FILE, WEB_FOLDER
from .feeds import add_feeds, list_feeds, poll_feeds, prune_feed, remove_feed
from .html_text import html_to_text
from .pages import add_urls
from .urls import canonical_url, record_path

__all__ = ["add_urls", "add_feeds", "poll_feeds", "list_feeds", "prune_feed", "remove_feed",
           "canonical_url", "record_path", "html_to_text", "FEEDS_FILE", "WEB_FOLDER"]
