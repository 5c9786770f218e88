"""Polling feeds and the public feed functions (add, poll, list, prune, remove). Part of
:mod:`rag.ingest.web`."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from ...types import Fetched
from ..fetch import FetchError, FetchPolicy, check_url, fetch
from ..loaders import _Skip
from .constants import FEED_ACCEPT, MAX_FEED_ITEMS
from .feed_xml import _check_xml, _entry_date, _fingerprint, _item_key_and_id, _item_record
from .pages import _clean, _failure, _source_problem, _unexpected
from .records import _read_json, _save
from .state import _Locked, _find, _load_state, _save_state
from .urls import _feed_key, _host_of, _now, _site_of_url, record_path


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
