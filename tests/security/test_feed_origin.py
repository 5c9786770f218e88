"""Issue 22, item 5: a feed or a page must not overwrite another site's article.

The attacks, through ``POST /api/sources`` of a real server on 127.0.0.1:

- a feed on ``feeds.example.net`` whose item guid is the URL of a page of
  ``news.example.org`` that was added before: the item replaced that page's record, so
  the real URL served the feed's text;
- a page on ``m.org`` declaring ``<link rel=canonical>`` on ``news.example.org``: the
  ``m.`` prefix was stripped, leaving ``org``, of which every ``.org`` host is a
  "sub-domain", so the page took over the other site's article;
- a feed copying another feed's ``tag:`` guid (another origin) put a second record under
  that id.

All host names resolve to the local test site through an injected resolver (no DNS, no
traffic beyond 127.0.0.1). The rules are tested on their own below.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

import rag.ingest.fetch as fetch_module
from rag.ingest.fetch import FetchPolicy
from rag.ingest.loaders import load_articles
from rag.ingest.sites import same_site, site_of
from rag.ingest.web import add_feeds, add_urls

HOSTS = ("news.example.org", "feeds.example.net", "m.org")

REAL = ("The harbour authority approved a new sea wall on Tuesday after a decade of "
        "floods. Engineers said the wall would rise four metres above the spring tide "
        "line and cost 48 million euros, paid over six years. ") * 4
FAKE = ("The harbour authority cancelled the sea wall on Tuesday and kept the money. "
        "Engineers said no wall would ever be built and the floods were welcome. ") * 6


def _page(text: str, canonical: str = "") -> str:
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    return (f"<!doctype html><html><head><title>Sea wall</title>{link}</head><body>"
            f"<article><h1>Sea wall</h1><p>{text}</p></article></body></html>")


def _rss(guid: str, text: str, title: str = "Sea wall", link: str = "") -> str:
    link_tag = f"<link>{link}</link>" if link else ""
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
            f"<title>Feed</title><link>http://x/</link><description>d</description>"
            f"<item><title>{title}</title>{link_tag}<guid>{guid}</guid>"
            f"<content:encoded><![CDATA[<p>{text}</p>]]></content:encoded></item>"
            "</channel></rss>")


def _policy(site) -> FetchPolicy:
    """Every test host name is the local site; nothing else resolves."""

    def resolve(host: str, port: int) -> list[str]:
        if host in HOSTS or host == "127.0.0.1":
            return ["127.0.0.1"]
        raise OSError(f"unknown test host {host}")

    return FetchPolicy(allow_private=frozenset({f"127.0.0.1:{site.port}"}), resolver=resolve)


@pytest.fixture
def web_server(site, cfg, fake_embedder, served, monkeypatch):
    """The local site holds the real page, the attacker's feed and page; the server's
    fetch policy resolves the test host names to it."""
    monkeypatch.setattr(fetch_module, "policy_for", lambda _cfg: _policy(site))
    real = site.url("/story.html", host="news.example.org")
    site.page("/story.html", _page(REAL, canonical=real))
    (cfg.source / "notes.txt").write_text("Notes\n\nThe library opens on Sundays.\n",
                                          encoding="utf-8")
    with served(cfg) as base, httpx.Client(base_url=base, timeout=120) as client:
        r = client.post("/api/sources", json={"urls": [real]})
        assert r.status_code == 200, r.text
        assert [f["action"] for f in r.json()["fetched"]] == ["added"]
        yield client, site, real


def _text_of(client: httpx.Client, article_id: str) -> str:
    r = client.get(f"/api/articles/{quote(article_id, safe='')}")
    assert r.status_code == 200, r.text
    return r.json()["text"]


def test_a_feed_item_cannot_claim_another_sites_url(web_server):
    client, site, real = web_server
    feed = site.url("/evil-feed.xml", host="feeds.example.net")
    site.page("/evil-feed.xml", _rss(real, FAKE), ctype="application/rss+xml")
    r = client.post("/api/sources", json={"feeds": [feed]})
    assert r.status_code == 200, r.text
    assert "48 million euros" in _text_of(client, real)
    (item,) = r.json()["fetched"]
    assert item["article_id"] != real  # namespaced under the feed, not the other site's URL
    assert item["article_id"].startswith(feed + "#")
    assert "cancelled" in _text_of(client, item["article_id"])


def test_a_prefixed_host_cannot_claim_another_sites_canonical_url(web_server):
    client, site, real = web_server
    copy = site.url("/copy.html", host="m.org")
    site.page("/copy.html", _page(FAKE, canonical=real))
    r = client.post("/api/sources", json={"urls": [copy]})
    assert r.status_code == 200, r.text
    assert "48 million euros" in _text_of(client, real)
    (got,) = r.json()["fetched"]
    assert got["article_id"] == copy


def test_a_feed_cannot_replace_another_origins_tag_guid(web_server):
    client, site, real = web_server
    guid = "tag:news.example.org,2024:wall"
    mine = site.url("/feed.xml", host="news.example.org")
    evil = site.url("/copy-feed.xml", host="feeds.example.net")
    site.page("/feed.xml", _rss(guid, REAL.replace("sea wall", "harbour wall")),
              ctype="application/rss+xml")
    site.page("/copy-feed.xml", _rss(guid, FAKE), ctype="application/rss+xml")
    r = client.post("/api/sources", json={"feeds": [mine]})
    assert [f["action"] for f in r.json()["fetched"]] == ["added"]
    r = client.post("/api/sources", json={"feeds": [evil]})
    assert r.status_code == 200, r.text
    (item,) = r.json()["fetched"]
    assert item["action"] == "skipped" and "example.org" in item["reason"]
    assert "48 million euros" in _text_of(client, guid)


# -- the rules ------------------------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    ("example.com", "www.example.com"), ("m.example.com", "www.example.com"),
    ("example.com", "www.evil.example.com"), ("news.bbc.co.uk", "bbc.co.uk"),
    ("127.0.0.1", "127.0.0.1"), ("localhost", "localhost"), ("a.b.test", "b.test"),
    ("EXAMPLE.com.", "example.com"),
])
def test_same_site_is_the_same_registrable_domain(a, b):
    assert same_site(a, b) and same_site(b, a)


@pytest.mark.parametrize("a, b", [
    ("m.org", "news.example.org"),          # a prefix is no licence: m.org is a domain
    ("www.co.uk", "victim.co.uk"), ("amp.dev", "victim.dev"),
    ("alice.github.io", "bob.github.io"),   # private public suffixes count
    ("evil-example.com", "example.com"), ("example.com.evil.net", "example.com"),
    ("127.0.0.1", "127.0.0.2"), ("localhost", "127.0.0.1"), ("", ""), ("co.uk", "x.co.uk"),
])
def test_other_sites_are_not_the_same_site(a, b):
    assert not same_site(a, b) and not same_site(b, a)


def test_site_of():
    assert site_of("www.example.com") == "example.com"
    assert site_of("a.b.blogspot.com") == "b.blogspot.com"
    assert site_of("[::1]") == "::1" and site_of("127.0.0.1") == "127.0.0.1"
    assert site_of("x.y.test") == "y.test"  # not in the list: the default rule "*"
    assert site_of("") == ""


def test_feed_ids_on_the_feeds_own_site_are_kept(site, tmp_path):
    src = tmp_path / "articles"
    src.mkdir()
    own = site.url("/wall", host="news.example.org")
    other = site.url("/wall", host="feeds.example.net")
    site.page("/own.xml", _rss(own, REAL), ctype="application/rss+xml")
    site.page("/no-guid.xml", _rss("", REAL, link=other).replace("<guid></guid>", ""),
              ctype="application/rss+xml")
    feed = site.url("/own.xml", host="news.example.org")
    (got,) = add_feeds(src, [feed], _policy(site))
    assert got.action == "added" and got.article_id == own
    # a link on another site without a guid is namespaced under the feed too
    feed2 = site.url("/no-guid.xml", host="news.example.org")
    (got,) = add_feeds(src, [feed2], _policy(site))
    assert got.action == "added" and got.article_id == f"{feed2}#{other}"


def test_a_record_is_not_replaced_from_another_site(site, tmp_path):
    """A ``tag:`` guid is an id no site owns: the feed that saved it first keeps it, a
    feed of another site copying it is skipped with the reason, and the first feed still
    updates its own record."""
    src = tmp_path / "articles"
    src.mkdir()
    real = site.url("/story.html", host="news.example.org")
    site.page("/story.html", _page(REAL, canonical=real))
    (got,) = add_urls(src, [real], _policy(site))
    assert got.action == "added"
    # the same id from a feed of another site that the rules still trust (a tag: guid)
    site.page("/a.xml", _rss("tag:shared,2024:1", REAL), ctype="application/rss+xml")
    site.page("/b.xml", _rss("tag:shared,2024:1", FAKE), ctype="application/rss+xml")
    (a,) = add_feeds(src, [site.url("/a.xml", host="news.example.org")], _policy(site))
    (b,) = add_feeds(src, [site.url("/b.xml", host="feeds.example.net")], _policy(site))
    assert a.action == "added" and b.action == "skipped"
    assert b.reason == ("tag:shared,2024:1 was saved from example.org; a fetch from "
                        "example.net may not replace it")
    texts = {x.id: x.text for x in load_articles(src)[0]}
    assert "cancelled" not in texts["tag:shared,2024:1"]
    # the same feed polled again still updates its own record
    site.page("/a.xml", _rss("tag:shared,2024:1", REAL + " Revised."),
              ctype="application/rss+xml")
    (again,) = add_feeds(src, [site.url("/a.xml", host="news.example.org")], _policy(site))
    assert again.action == "updated"
