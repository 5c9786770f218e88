"""The web fetcher (rag/ingest/fetch.py) and pages/feeds as articles (the rag/ingest/web package).

Offline and quick: every server is an http.server on 127.0.0.1 started here, allowed by
``FetchPolicy.allow_private`` for exactly its ip:port; every other name goes through an
injected resolver, and every refusal happens before a connection is opened, so nothing
here reaches another machine.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag.ingest.fetch import FetchError, FetchPolicy, address_problem, fetch
from rag.ingest.loaders import load_articles
from rag.types import Fetched
from rag.ingest.web import (FEEDS_FILE, add_feeds, add_urls, canonical_url, html_to_text,
                            list_feeds, poll_feeds, prune_feed, record_path, remove_feed)
from tests.conftest import Site

LONG = ("The harbour authority approved a new sea wall on Tuesday after a decade of "
        "floods. Engineers said the wall would rise four metres above the spring tide "
        "line and cost 48 million euros, paid over six years. ") * 4




@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    folder.mkdir()
    return folder


def article_html(title: str = "Sea wall approved", body: str = LONG, canonical: str | None = None,
                 author: str = "Ana Lima", date: str = "2024-03-05") -> str:
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    return (f"<!doctype html><html><head><title>{title} | Harbour News</title>{link}"
            f'<meta name="author" content="{author}">'
            f'<meta property="article:published_time" content="{date}T08:00:00Z">'
            f'<meta property="og:site_name" content="Harbour News"></head>'
            f"<body><nav><a href='/'>Home</a> <a href='/about'>About</a></nav>"
            f"<article><h1>{title}</h1><p>{body}</p></article>"
            f"<footer>Privacy policy. Cookie settings.</footer></body></html>")


def resolver_for(mapping: dict[str, list[str]], calls: list | None = None):
    """A resolver that knows only ``mapping`` (never the real DNS)."""

    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append((host, port))
        if host not in mapping:
            raise OSError(f"unknown test host {host}")
        return list(mapping[host])

    return resolve


# -- pages -------------------------------------------------------------------------------

def test_a_page_becomes_a_record_the_loader_reads(site, src):
    site.page("/news/sea-wall", article_html(canonical="/news/sea-wall"))
    url = site.url("/news/sea-wall?utm_source=feed&utm_medium=rss#top")
    site.redirect("/short", url)
    got = add_urls(src, [site.url("/short")], site.policy())
    canon = site.url("/news/sea-wall")
    assert [(f.action, f.article_id, f.origin) for f in got] == [
        ("added", canon, site.url("/short"))]
    path = record_path(src, canon)
    assert path == src / "web" / f"127.0.0.1_{site.port}" / (
        hashlib.sha256(canon.encode()).hexdigest()[:16] + ".json")
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["origin"] == site.url("/short") and record["fetched"].endswith("Z")
    assert not list(path.parent.glob(".*"))  # no temporary file left behind

    articles, skipped = load_articles(src)
    assert skipped == []
    (art,) = articles
    assert art.id == canon and art.url == canon
    assert art.title == "Sea wall approved"
    assert art.author == "Ana Lima" and art.published == "2024-03-05"
    assert art.source == "Harbour News"
    assert "48 million euros" in art.text and "Cookie settings" not in art.text
    # every request says who we are
    assert all(h["user-agent"].startswith("rag/") for _, h in site.log)


def test_refetch_is_unchanged_and_a_changed_page_is_updated(site, src):
    site.page("/p", article_html())
    policy = site.policy()
    (first,) = add_urls(src, [site.url("/p")], policy)
    path = record_path(src, first.article_id)
    stamp = path.stat().st_mtime_ns
    (again,) = add_urls(src, [site.url("/p")], policy)
    assert again.action == "unchanged" and again.article_id == first.article_id
    assert path.stat().st_mtime_ns == stamp  # not rewritten

    site.page("/p", article_html(body=LONG + " The mayor resigned on Friday."))
    (changed,) = add_urls(src, [site.url("/p")], policy)
    assert changed.action == "updated" and changed.article_id == first.article_id
    (art,), _ = load_articles(src)
    assert art.text.endswith("The mayor resigned on Friday.")
    assert len(list((src / "web").rglob("*.json"))) == 1


def test_two_urls_with_one_canonical_url_are_one_article(site, src):
    canon = site.url("/story")
    site.page("/story", article_html(canonical=canon))
    site.page("/amp/story", article_html(canonical=canon))
    got = add_urls(src, [site.url("/story?utm_campaign=x&fbclid=abc&gclid=1"),
                         site.url("/amp/story")], site.policy())
    assert [f.action for f in got] == ["added", "unchanged"]
    assert {f.article_id for f in got} == {canon}
    assert len(list((src / "web").rglob("*.json"))) == 1


def test_a_canonical_url_of_another_site_is_not_believed(site, src):
    site.page("/copy", article_html(canonical="https://victim.example/real-story"))
    (got,) = add_urls(src, [site.url("/copy")], site.policy())
    assert got.action == "added" and got.article_id == site.url("/copy")


def test_canonical_url_normal_form():
    assert canonical_url("HTTP://Example.COM:80/a?utm_source=x&b=2&fbclid=y#frag") == \
        "http://example.com/a?b=2"
    assert canonical_url("https://example.com:443") == "https://example.com/"
    assert canonical_url("https://example.com:8443/x?gclid=1") == "https://example.com:8443/x"
    with pytest.raises(ValueError):
        canonical_url("ftp://example.com/x")


def test_not_found_and_server_errors_are_skipped_with_the_status(site, src):
    site.page("/boom", "oops", ctype="text/plain", status=500)
    with pytest.raises(FetchError, match=r"^HTTP 404 Not Found$"):
        fetch(site.url("/missing"), site.policy())
    got = add_urls(src, [site.url("/missing"), site.url("/boom")], site.policy())
    assert [(f.action, f.reason) for f in got] == [
        ("skipped", "HTTP 404 Not Found"), ("skipped", "HTTP 500 Internal Server Error")]


def test_other_content_types_are_not_pages(site, src):
    site.page("/paper.pdf", b"%PDF-1.4 " + b"x" * 5000, ctype="application/pdf")
    site.page("/feed", "<rss/>", ctype="application/rss+xml")
    site.page("/empty", "<html><head><title>x</title></head><body><script>x()</script>"
                        "</body></html>")
    got = add_urls(src, [site.url("/paper.pdf"), site.url("/feed"), site.url("/empty"), 42],
                   site.policy())
    assert [f.reason for f in got] == ["not an HTML page (application/pdf)",
                                       "not an HTML page (application/rss+xml); add it as a "
                                       "feed",
                                       "no extractable text in HTML",
                                       "not a web address (give an http:// or https:// URL)"]
    assert not (src / "web").exists()


def test_a_missing_source_folder_is_reported_not_raised(tmp_path):
    (got,) = add_urls(tmp_path / "nope", ["http://example.test/"])
    assert got.action == "skipped" and "does not exist" in got.reason


# -- what is refused ---------------------------------------------------------------------

@pytest.mark.parametrize("url, reason", [
    ("file:///etc/passwd", "only http and https addresses are fetched, not file:"),
    ("ftp://example.test/x", "only http and https addresses are fetched, not ftp:"),
    ("data:text/html,<p>hi</p>", "only http and https addresses are fetched, not data:"),
    ("javascript:alert(1)", "only http and https addresses are fetched, not javascript:"),
    ("http://user:secret@example.test/", "addresses with a user name or password are refused"),
    ("http://bank.test@example.test/", "addresses with a user name or password are refused"),
    ("example.test/page", "not a web address (give an http:// or https:// URL)"),
    ("http:///nohost", "the address has no host name"),
    ("http://example.test:99999/", "not a valid web address"),
    ("http://exa mple.test/", "the address contains spaces or control characters"),
])
def test_refused_urls_never_reach_the_resolver(url, reason):
    calls: list = []
    policy = FetchPolicy(resolver=resolver_for({}, calls))
    with pytest.raises(FetchError) as info:
        fetch(url, policy)
    assert info.value.reason.startswith(reason)
    assert calls == []


def test_the_default_policy_refuses_this_machine(site, src):
    with pytest.raises(FetchError, match="127.0.0.1 is a loopback address"):
        fetch(site.url("/"), FetchPolicy())
    with pytest.raises(FetchError, match="loopback"):
        fetch(f"http://[::1]:{site.port}/", FetchPolicy())
    (got,) = add_urls(src, [site.url("/")])
    assert got.action == "skipped" and "only public addresses" in got.reason
    # another port of the allowed address is not allowed
    with pytest.raises(FetchError, match="loopback"):
        fetch(f"http://127.0.0.1:{site.port + 1 if site.port < 65535 else 1}/", site.policy())
    assert site.log == []


@pytest.mark.parametrize("ip, kind", [
    ("10.0.0.5", "private"), ("172.16.3.4", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("127.0.0.53", "loopback"), ("0.0.0.0", "unspecified"),
    ("100.64.0.1", "shared"), ("224.0.0.1", "multicast"), ("240.0.0.1", "reserved"),
    ("::1", "loopback"), ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"), ("ff02::1", "multicast"),
    ("::", "unspecified"), ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.5", "private"),
    ("2002:7f00:1::1", "loopback"),  # 6to4 around 127.0.0.1
    ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 around 169.254.169.254
    ("64:ff9b::a00:5", "private"),  # NAT64 around 10.0.0.5
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo (client 10.0.0.1)
])
def test_names_resolving_to_non_public_addresses_are_refused(ip, kind):
    calls: list = []
    policy = FetchPolicy(resolver=resolver_for({"evil.test": [ip]}, calls))
    with pytest.raises(FetchError) as info:
        fetch("http://evil.test/latest/meta-data/", policy)
    assert info.value.reason.startswith(f"refused: evil.test resolves to {ip}, which is ")
    assert kind in info.value.reason
    assert calls == [("evil.test", 80)]


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1", "017700000001"])
def test_numeric_host_spellings_of_loopback_are_refused(host):
    """Odd spellings of 127.0.0.1 are not IP literals to ipaddress, so they go through the
    resolver like names; what they resolve to is checked (AI_NUMERICHOST: no DNS)."""
    import socket

    def numeric_only(name: str, port: int) -> list[str]:
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_NUMERICHOST)
        return [i[4][0] for i in infos]

    with pytest.raises(FetchError, match="resolves to 127.0.0.1, which is a loopback"):
        fetch(f"http://{host}/", FetchPolicy(resolver=numeric_only))


def test_every_resolved_address_must_be_public():
    policy = FetchPolicy(resolver=resolver_for({"mixed.test": ["93.184.216.34", "10.0.0.5"]}))
    with pytest.raises(FetchError, match="resolves to 10.0.0.5, which is a private address"):
        fetch("https://mixed.test/", policy)


def test_public_addresses_pass_the_check():
    for ip in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34",
               "2002:5db8:d822::1"):
        assert address_problem(ip) is None, ip
    assert address_problem("not-an-ip") == "not an IP address"


def test_a_redirect_to_another_port_or_the_metadata_service_is_refused(site, other_site, src):
    other_site.page("/", "secret admin page")
    site.redirect("/to-port", other_site.url("/"))
    site.redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/iam/")
    site.redirect("/to-file", "file:///etc/passwd")
    policy = site.policy()
    with pytest.raises(FetchError) as info:
        fetch(site.url("/to-port"), policy)
    assert info.value.reason.startswith(f"redirected to {other_site.url('/')}: refused: "
                                        "127.0.0.1 is a loopback address")
    with pytest.raises(FetchError, match=r"^redirected to http://169\.254\.169\.254/latest/"
                                         r"meta-data/iam/: refused: .*link-local"):
        fetch(site.url("/to-metadata"), policy)
    with pytest.raises(FetchError, match="redirected to file:///etc/passwd: only http"):
        fetch(site.url("/to-file"), policy)
    assert site.paths() == ["/to-port", "/to-metadata", "/to-file"]  # first hops allowed
    assert other_site.log == []  # the second hop never connected
    (got,) = add_urls(src, [site.url("/to-metadata")], policy)
    assert got.action == "skipped" and "169.254.169.254" in got.reason


def test_redirects_are_followed_up_to_the_limit(site):
    for n in range(10):
        site.redirect(f"/hop/{n}", f"/hop/{n + 1}", status=(301, 302, 303, 307, 308)[n % 5])
    site.page("/hop/10", article_html())
    site.redirect("/hop/3-end", "/hop/10")
    with pytest.raises(FetchError, match=r"^too many redirects \(more than 3\)$"):
        fetch(site.url("/hop/0"), site.policy(max_redirects=3))
    assert site.paths() == ["/hop/0", "/hop/1", "/hop/2", "/hop/3"]
    resp = fetch(site.url("/hop/7"), site.policy(max_redirects=3))
    assert resp.status == 200 and resp.final_url == site.url("/hop/10")


def test_dns_rebinding_gets_no_second_answer(site):
    """The resolver answers the allowed address first and the metadata service after:
    the fetch connects to the address it checked, and asks the resolver once per hop
    (http.client never resolves the name itself: "rebind.test" exists nowhere else)."""
    site.page("/page", article_html())
    site.redirect("/hop", f"http://rebind2.test:{site.port}/page")
    calls: list = []
    answers = {"rebind.test": [["127.0.0.1"], ["169.254.169.254"]],
               "rebind2.test": [["127.0.0.1"], ["169.254.169.254"]]}

    def rebinding(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]

    policy = site.policy(resolver=rebinding)
    resp = fetch(f"http://rebind.test:{site.port}/hop", policy)
    assert resp.status == 200 and resp.address == "127.0.0.1"
    assert resp.final_url == f"http://rebind2.test:{site.port}/page"
    assert calls == [("rebind.test", site.port), ("rebind2.test", site.port)]
    assert [h["host"] for _, h in site.log] == [f"rebind.test:{site.port}",
                                                f"rebind2.test:{site.port}"]
    with pytest.raises(FetchError, match="resolves to 169.254.169.254"):
        fetch(f"http://rebind.test:{site.port}/page", policy)  # the next lookup is checked
    assert len(site.log) == 2


def _trickle_body(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", "100000")
    h.end_headers()
    _drip(h, b"x")


def _trickle_headers(h: BaseHTTPRequestHandler) -> None:
    h.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
    _drip(h, b"a")


def _drip(h: BaseHTTPRequestHandler, byte: bytes) -> None:
    site: Site = h.server.site  # type: ignore[attr-defined]
    for _ in range(100):  # a byte every 0.1 s: never idle long enough for a read timeout
        if site.closing.wait(0.1):
            return
        try:
            h.wfile.write(byte)
            h.wfile.flush()
        except OSError:
            return


@pytest.mark.parametrize("trickle", [_trickle_body, _trickle_headers])
def test_a_trickling_server_is_cut_at_the_deadline(site, trickle):
    site.routes["/slow"] = trickle
    with pytest.raises(FetchError, match=r"^took longer than the 0\.8 s limit"):
        fetch(site.url("/slow"), site.policy(deadline=0.8, connect_timeout=5))


def test_a_silent_server_times_out(site):
    site.routes["/silent"] = lambda h: site.closing.wait(5)
    with pytest.raises(FetchError, match="took longer than the 0.5 s limit"):
        fetch(site.url("/silent"), site.policy(deadline=0.5))


def test_bodies_over_the_size_cap_are_refused(site, src):
    big = b"<html><body><p>" + b"word " * 400 + b"</p></body></html>"
    site.page("/with-length", big)
    site.page("/no-length", big, **{"X-No-Length": "1"})
    policy = site.policy(max_bytes=1000)
    with pytest.raises(FetchError, match=r"^too large \(2,033 bytes > 1,000 bytes limit\)$"):
        fetch(site.url("/with-length"), policy)
    with pytest.raises(FetchError, match=r"^too large \(more than 1,000 bytes\)$"):
        fetch(site.url("/no-length"), policy)
    assert fetch(site.url("/no-length"), site.policy(max_bytes=len(big))).body == big
    (got,) = add_urls(src, [site.url("/no-length")], policy)
    assert got.action == "skipped" and got.reason.startswith("too large")


def test_compressed_bodies_are_capped_after_decompression(site):
    page = article_html().encode()
    site.page("/gz", gzip.compress(page), **{"Content-Encoding": "gzip"})
    bomb = gzip.compress(b"\0" * 5_000_000)  # ~5 KB on the wire, 5 MB unpacked
    site.page("/bomb", bomb, **{"Content-Encoding": "gzip"})
    site.page("/br", b"....", **{"Content-Encoding": "br"})
    policy = site.policy(max_bytes=100_000)
    assert fetch(site.url("/gz"), policy).body == page
    assert len(bomb) < 100_000
    with pytest.raises(FetchError, match=r"^too large \(more than 100,000 bytes\)$"):
        fetch(site.url("/bomb"), policy)
    with pytest.raises(FetchError, match=r"unsupported content encoding \(br\)"):
        fetch(site.url("/br"), policy)


def test_conditional_requests_send_the_validators(site):
    def conditional(h):
        if h.headers.get("If-None-Match") == '"v1"':
            h.send_response(304)
            h.end_headers()
            return
        h.send_response(200)
        h.send_header("ETag", '"v1"')
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"ok")

    site.routes["/c"] = conditional
    first = fetch(site.url("/c"), site.policy())
    assert first.status == 200 and first.etag == '"v1"' and first.body == b"ok"
    again = fetch(site.url("/c"), site.policy(), etag=first.etag,
                  last_modified="Tue, 05 Mar 2024 10:00:00 GMT")
    assert again.status == 304 and again.body == b""
    assert site.log[1][1]["if-modified-since"] == "Tue, 05 Mar 2024 10:00:00 GMT"


# -- HTTPS: the connection goes to the checked address, TLS checks the name -----------------

def _make_certs(folder: Path) -> tuple[Path, Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rag test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure.test")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("secure.test")]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(cert.public_bytes(pem))
    (folder / "key.pem").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder / "ca.pem", folder / "cert.pem", folder / "key.pem"


def test_https_connects_to_the_checked_address_and_verifies_the_name(tmp_path):
    import ssl

    ca, cert, key = _make_certs(tmp_path)
    s = Site()
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        s.server.socket = ctx.wrap_socket(s.server.socket, server_side=True)
        s.page("/", article_html())
        calls: list = []
        resolver = resolver_for({"secure.test": ["127.0.0.1"], "wrong.test": ["127.0.0.1"]},
                                calls)
        policy = s.policy(resolver=resolver, ca_file=str(ca))
        resp = fetch(f"https://secure.test:{s.port}/", policy)
        assert resp.status == 200 and resp.address == "127.0.0.1"
        assert s.log[0][1]["host"] == f"secure.test:{s.port}"
        with pytest.raises(FetchError, match="certificate is not valid"):
            fetch(f"https://wrong.test:{s.port}/", policy)  # SNI / name check: wrong.test
        with pytest.raises(FetchError, match="certificate is not valid"):
            fetch(f"https://secure.test:{s.port}/", s.policy(resolver=resolver))  # unknown CA
        assert calls == [("secure.test", s.port), ("wrong.test", s.port),
                         ("secure.test", s.port)]
    finally:
        s.close()


# -- feeds -------------------------------------------------------------------------------

def rss(items: list[dict], title: str = "Harbour News") -> str:
    parts = []
    for it in items:
        x = f"<item><title>{it['title']}</title>"
        if "link" in it:
            x += f"<link>{it['link']}</link>"
        if "guid" in it:
            perma = it.get("perma", True)
            x += f'<guid isPermaLink="{"true" if perma else "false"}">{it["guid"]}</guid>'
        if "date" in it:
            x += f"<pubDate>{format_datetime(it['date'])}</pubDate>"
        if "author" in it:
            x += f"<dc:creator>{it['author']}</dc:creator>"
        if "summary" in it:
            x += f"<description>{it['summary']}</description>"
        if "content" in it:
            x += f"<content:encoded><![CDATA[{it['content']}]]></content:encoded>"
        parts.append(x + "</item>")
    return ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
            f"<title>{title}</title><link>http://example.test/</link>"
            f"<description>d</description>{''.join(parts)}</channel></rss>")


DAY = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)


def feed_items(site: Site) -> list[dict]:
    return [
        {"title": "Sea wall approved", "guid": site.url("/news/1"), "link": site.url("/news/1"),
         "date": DAY, "author": "Ana Lima",
         "content": "<p>" + LONG + "</p><script>evil()</script><p>Second paragraph.</p>"},
        {"title": "Ferry strike ends", "guid": "ferry-2024", "perma": False,
         "link": site.url("/news/2"), "date": DAY + timedelta(days=1),
         "summary": "Ferries run again."},
        {"title": "Port budget", "guid": "tag:example.test,2024:3", "perma": False,
         "link": site.url("/news/3"), "date": DAY + timedelta(days=2),
         "content": "<p>" + LONG.replace("sea wall", "port budget") + "</p>"},
    ]


def serve_feed(site: Site, path: str, body: str, etag: str,
               ctype: str = "application/rss+xml") -> None:
    def handler(h):
        if h.headers.get("If-None-Match") == etag:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.end_headers()
            return
        data = body.encode("utf-8")
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("ETag", etag)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    site.routes[path] = handler


def test_an_rss_feed_is_remembered_and_its_items_saved(site, src):
    site.page("/news/2", article_html(title="Ferry page title", body="The ferry strike "
                                      "ended after nine days. " * 30, author="Page Author"))
    serve_feed(site, "/feed.xml", rss(feed_items(site)), '"v1"')
    feed = site.url("/feed.xml")
    got = add_feeds(src, [feed], site.policy())
    assert [(f.origin, f.action) for f in got] == [(feed, "added")] * 3
    # newest first; a bare guid is namespaced by the feed, tag: URIs and URLs are ids
    assert [f.article_id for f in got] == ["tag:example.test,2024:3", f"{feed}#ferry-2024",
                                           site.url("/news/1")]
    assert "/news/1" not in site.paths() and "/news/3" not in site.paths()
    assert "/news/2" in site.paths()  # too little text in the feed: the page was fetched

    articles = {a.id: a for a in load_articles(src)[0]}
    assert set(articles) == {f.article_id for f in got}
    wall = articles[site.url("/news/1")]
    assert wall.title == "Sea wall approved" and wall.author == "Ana Lima"
    assert wall.published == "2024-03-01" and wall.source == "Harbour News"
    assert wall.url == site.url("/news/1")
    assert "evil()" not in wall.text and wall.text.endswith("Second paragraph.")
    ferry = articles[f"{feed}#ferry-2024"]
    assert ferry.title == "Ferry strike ends"  # the item's title wins over the page's
    assert ferry.author == "Page Author" and "nine days" in ferry.text
    assert ferry.url == site.url("/news/2") and ferry.published == "2024-03-02"

    (remembered,) = list_feeds(src)
    assert remembered["url"] == feed and remembered["title"] == "Harbour News"
    assert remembered["etag"] == '"v1"' and remembered["items"] == 3
    assert remembered["last_polled"]
    assert (src / FEEDS_FILE).exists() and not any(
        a.id.endswith(FEEDS_FILE) for a in load_articles(src)[0])


def test_common_sloppiness_of_real_feeds_is_tolerated(site, src):
    """Leading blank lines, HTML entity names (&nbsp;) and a windows-1252 encoding."""
    body = ('\n\n<?xml version="1.0" encoding="windows-1252"?>\n<rss version="2.0"><channel>'
            "<title>Caf\u00e9&nbsp;News</title><item><title>\u201cQuoted\u201d&nbsp;title"
            f"</title><guid>{site.url('/q')}</guid><description>{LONG}&amp;more</description>"
            "</item></channel></rss>").encode("cp1252")

    def handler(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/xml")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    site.routes["/sloppy"] = handler
    (got,) = add_feeds(src, [site.url("/sloppy")], site.policy())
    assert got.action == "added", got.reason
    (art,) = load_articles(src)[0]
    assert art.title == "\u201cQuoted\u201d title" and art.source == "Caf\u00e9 News"
    assert art.text.endswith("&more")


def test_an_atom_feed(site, src):
    atom = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>Atom Harbour</title><id>urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6</id>"
            "<updated>2024-03-03T00:00:00Z</updated>"
            "<entry><title>Atom one</title><id>urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a</id>"
            f'<link href="{site.url("/a/1")}"/><updated>2024-03-02T10:00:00Z</updated>'
            f'<author><name>Bo Ek</name></author><content type="html">&lt;p&gt;{LONG}&lt;/p&gt;'
            "</content></entry>"
            "<entry><title>Atom two</title>"
            f'<link href="/a/2?utm_source=atom"/><updated>2024-03-01T10:00:00Z</updated>'
            f"<summary>{LONG} Two.</summary></entry></feed>")
    serve_feed(site, "/atom", atom, '"a1"', ctype="application/atom+xml")
    got = add_feeds(src, [site.url("/atom")], site.policy())
    assert [(f.action, f.article_id) for f in got] == [
        ("added", "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"),
        ("added", site.url("/a/2"))]  # no id: the canonical link
    arts = {a.id: a for a in load_articles(src)[0]}
    one = arts["urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a"]
    assert one.author == "Bo Ek" and one.published == "2024-03-02"
    assert one.source == "Atom Harbour" and one.url == site.url("/a/1")
    assert arts[site.url("/a/2")].text.endswith("Two.")
    # a tag:/urn: id lives in the feed's host folder
    assert record_path(src, one.id, "127.0.0.1").parent.name == "127.0.0.1"


def test_repolling_sends_the_etag_and_items_that_leave_stay_until_pruned(site, src):
    feed = site.url("/feed.xml")
    items = feed_items(site)
    site.page("/news/2", article_html(title="Ferry", body="The ferry strike ended. " * 30))
    serve_feed(site, "/feed.xml", rss(items), '"v1"')
    policy = site.policy()
    assert [f.action for f in add_feeds(src, [feed], policy)] == ["added"] * 3
    assert poll_feeds(src, policy) == [Fetched(feed, feed, "not modified")]
    assert site.log[-1][1]["if-none-match"] == '"v1"'

    # the ferry item leaves the feed; a new version of the feed
    serve_feed(site, "/feed.xml", rss([items[0], items[2]]), '"v2"')
    fetched_pages = site.paths().count("/news/2")
    got = poll_feeds(src, policy)
    assert [f.action for f in got] == ["unchanged", "unchanged"]  # nothing refetched
    assert site.paths().count("/news/2") == fetched_pages
    ids = {a.id for a in load_articles(src)[0]}
    assert f"{feed}#ferry-2024" in ids  # it stays
    assert list_feeds(src)[0]["current"] == 2 and list_feeds(src)[0]["items"] == 3

    gone = prune_feed(src, feed)
    assert len(gone) == 1 and gone[0].startswith(f"web/127.0.0.1_{site.port}/")
    assert {a.id for a in load_articles(src)[0]} == ids - {f"{feed}#ferry-2024"}
    assert prune_feed(src, feed) == []

    # an item whose content changed is updated in place
    changed = dict(items[2], content="<p>" + LONG + " Revised.</p>")
    serve_feed(site, "/feed.xml", rss([items[0], changed]), '"v3"')
    assert [f.action for f in poll_feeds(src, policy)] == ["updated", "unchanged"]

    removed = remove_feed(src, feed, delete_items=True)
    assert len(removed) == 2 and list_feeds(src) == []
    assert load_articles(src)[0] == []
    assert poll_feeds(src, policy) == []


def test_remove_feed_keeps_the_articles_by_default(site, src):
    serve_feed(site, "/f", rss(feed_items(site)[:1]), '"x"')
    add_feeds(src, [site.url("/f")], site.policy())
    assert remove_feed(src, site.url("/f")) == [] and list_feeds(src) == []
    assert len(load_articles(src)[0]) == 1
    assert remove_feed(src, site.url("/f")) == [] and prune_feed(src, site.url("/f")) == []


def test_a_huge_feed_takes_the_newest_items_and_reports_the_rest_once(site, src):
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    items = []
    for i in range(10_000):  # oldest first in the document
        it = {"title": f"Item {i}", "guid": f"item-{i}", "perma": False,
              "date": start + timedelta(hours=i)}
        if i >= 10_000 - 200:
            it["content"] = f"<p>Item number {i}. {LONG}</p>"
        items.append(it)
    serve_feed(site, "/big", rss(items), '"big"')
    got = add_feeds(src, [site.url("/big")], site.policy())
    assert len(got) == 201
    assert [f.action for f in got[:200]] == ["added"] * 200
    assert {f.article_id.rsplit("#", 1)[1] for f in got[:200]} == {
        f"item-{i}" for i in range(9_800, 10_000)}
    assert got[200] == Fetched(
        site.url("/big"), site.url("/big"), "skipped",
        "9,800 older items not fetched (at most 200 items per poll)")
    assert list_feeds(src)[0]["current"] == 10_000
    assert prune_feed(src, site.url("/big")) == []  # the older items are still in the feed


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title>
<item><title>&lol9;</title><guid>x</guid><description>&lol9;</description></item>
</channel></rss>"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title>
<item><title>&xxe;</title><guid>x</guid><description>&xxe;</description></item>
</channel></rss>"""


@pytest.mark.parametrize("body, reason", [
    (BILLION_LAUGHS, "refused: the feed declares XML entities (entity expansion"),
    (XXE, "refused: the feed declares an external XML entity"),
    ("<rss version='2.0'><channel><title>t</title><item><title>broken</item></channel>",
     "not a well-formed XML feed (mismatched tag"),
    ("", "not a well-formed XML feed"),
    ("<rss version='2.0'><channel><title>&bogus;</title></channel></rss>",
     "not a well-formed XML feed (undefined entity"),
    ("<?xml version='1.0'?><html><body>hi</body></html>", "not an RSS or Atom feed (the "
     "document is <html>)"),
])
def test_unsafe_or_broken_feeds_are_refused_and_not_remembered(site, src, body, reason):
    serve_feed(site, "/bad", body, '"b"', ctype="application/xml")
    (got,) = add_feeds(src, [site.url("/bad")], site.policy())
    assert got.action == "skipped" and got.reason.startswith(reason), got.reason
    assert got.reason.endswith("; the feed was not remembered")
    assert list_feeds(src) == [] and not (src / "web").exists()


def test_feed_problems_are_lines_not_exceptions(site, src):
    serve_feed(site, "/ok", rss(feed_items(site)[:1]), '"o"')
    got = add_feeds(src, ["file:///etc/passwd", site.url("/missing"), site.url("/ok")],
                    site.policy())
    assert [(f.action, f.reason) for f in got] == [
        ("skipped", "only http and https addresses are fetched, not file:"),
        ("skipped", "HTTP 404 Not Found; the feed was not remembered"),
        ("added", "")]
    assert [f["url"] for f in list_feeds(src)] == [site.url("/ok")]
    (got,) = poll_feeds(src, site.policy(), only=[site.url("/elsewhere")])
    assert (got.action, got.reason) == ("skipped", "not a remembered feed")
    # a remembered feed that fails is reported and kept
    site.routes.pop("/ok")
    (got,) = poll_feeds(src, site.policy())
    assert (got.action, got.reason) == ("skipped", "HTTP 404 Not Found")
    (kept,) = list_feeds(src)
    assert kept["last_error"] == "HTTP 404 Not Found"


def test_an_item_without_text_or_guid_is_skipped_alone(site, src):
    items = [{"title": "Nothing here"},  # no guid, no link
             {"title": "Dead link", "guid": "dead", "perma": False,
              "link": site.url("/gone")},
             {"title": "Short", "guid": "short", "perma": False,  # 6 characters: a teaser
              "link": site.url("/gone"), "summary": "Ferry!"},
             feed_items(site)[0]]
    serve_feed(site, "/f", rss(items), '"f"')
    got = add_feeds(src, [site.url("/f")], site.policy())
    page_failed = ("its page failed (HTTP 404 Not Found) and the feed gives only {} "
                   "characters of text (at least 200 stand in for a page)")
    assert [(f.action, f.reason) for f in got] == [
        ("skipped", "the item has neither a guid nor a link"),
        ("skipped", page_failed.format(0)), ("skipped", page_failed.format(6)),
        ("added", "")]
    assert [a.id for a in load_articles(src)[0]] == [site.url("/news/1")]


# three sentences of a real story: a body, though short of MIN_FEED_TEXT
BODY = ("The regional council approved a plan on Tuesday to build four hundred homes on the "
        "site of the former steelworks, ending a dispute that lasted six years. Residents "
        "had opposed earlier versions because of traffic on the valley road. The new plan "
        "adds a bus line, a school and a park along the river.")


def test_a_feed_body_stands_in_for_a_dead_page_and_says_so(site, cfg):
    import rag

    src = cfg.source
    assert 200 <= len(BODY) < 500
    items = [{"title": "Homes on the steelworks site", "guid": "homes", "perma": False,
              "link": site.url("/gone"), "summary": BODY}]
    serve_feed(site, "/f", rss(items), '"f"')
    (got,) = add_feeds(src, [site.url("/f")], site.policy())
    assert (got.action, got.reason) == (
        "added", f"the feed's text only ({len(BODY)} characters): its page failed: "
                 "HTTP 404 Not Found")
    (article,) = load_articles(src)[0]
    assert article.text == BODY
    # and a build says so too (the report's summary, e.g. the log of --watch and the CLI)
    site.page("/f2", rss([{"title": "Teaser", "guid": "t", "perma": False,
                           "link": site.url("/gone"), "summary": "Ferries."}]),
              "application/rss+xml")
    report = rag.build(config=cfg, feeds=[site.url("/f2")],
                       poll=False, fetch_policy=site.policy())
    assert [(f.item, f.action) for f in report.fetched] == [(site.url("/gone"), "skipped")]
    assert f"skipped {site.url('/gone')}: its page failed (HTTP 404 Not Found) and the " \
           "feed gives only 8 characters" in report.summary()


def test_html_fragments_become_paragraphs():
    text = html_to_text("<div><p>One &amp; <b>two</b></p><script>x()</script>"
                        "<ul><li>a</li><li>b</li></ul>line<br>break</div>")
    assert text == "One & two\n\na\n\nb\n\nline\nbreak"


def test_the_feeds_file_survives_damage(site, src):
    (src / FEEDS_FILE).write_text("{not json", encoding="utf-8")
    assert list_feeds(src) == []
    serve_feed(site, "/f", rss(feed_items(site)[:1]), '"f"')
    assert [f.action for f in add_feeds(src, [site.url("/f")], site.policy())] == ["added"]
    assert json.loads((src / FEEDS_FILE).read_text(encoding="utf-8"))["version"] == 1


def test_the_default_policy():
    policy = FetchPolicy()
    assert policy.deadline == 30 and policy.max_bytes == 10 * 2**20
    assert policy.max_redirects == 5 and policy.allow_private == frozenset()
    assert policy.user_agent.startswith("rag/") and "fetches pages the user listed" in \
        policy.user_agent
