"""Articles from where they live, end to end (fake embedder, a local HTTP server):
web pages and feeds through ``python -m rag.build --url/--feed`` and ``POST /api/sources``;
PDF citations carrying their page; syndicated copies quoted once with "also in"; the
build report per source. The fetcher's and the readers' own rules are tested in
test_fetch.py, test_documents.py (both here) and tests/index/test_copies.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import rag
from rag.cli import build_main, render_text
from rag.index.store import current_version
from tests.conftest import DATA, STEELWORKS


PAGE = """<!doctype html><html><head><title>Harbour wall approved | Coast News</title>
<meta name="author" content="Ana Ruiz"><meta property="article:published_time"
content="2026-11-20"><link rel="canonical" href="{canonical}"></head><body>
<nav>Home | World | Sport</nav><article><h1>Harbour wall approved</h1>
<p>The harbour authority approved a new sea wall on Tuesday after a decade of floods.</p>
<p>Engineers said the wall would rise four metres above the spring tide line and cost
48 million euros, paid over six years.</p>
<p>Fishermen welcomed the plan but asked for a wider channel for their boats.</p>
</article><footer>Copyright Coast News</footer></body></html>"""

FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Valley Post</title><link>{base}/</link>
<description>news</description>
<item><title>Bridge reopens</title><link>{base}/bridge.html</link><guid>{base}/bridge.html</guid>
<pubDate>Mon, 23 Nov 2026 09:00:00 GMT</pubDate></item>
</channel></rss>"""

BRIDGE = """<html><head><title>Bridge reopens</title></head><body><article>
<h1>Bridge reopens</h1><p>The old stone bridge over the river reopened to cars on Monday
after eighteen months of repairs that cost 3.2 million euros.</p>
<p>The mayor said buses would return to the bridge in January.</p></article></body></html>"""

LOCAL = "Town notes\n\nThe town library will open on Sundays from next month.\n"


@pytest.fixture
def served(site, cfg, monkeypatch, fake_embedder):
    """A page and a feed on the local site; the config (and the CLI's environment) allow
    exactly that server, as a test-only setting."""
    site.page("/wall.html", PAGE.format(canonical=site.url("/wall.html")))
    site.page("/bridge.html", BRIDGE)
    site.page("/feed.xml", FEED.format(base=site.url("").rstrip("/")),
              ctype="application/rss+xml")
    allow = f"127.0.0.1:{site.port}"
    (Path(cfg.source) / "notes.txt").write_text(LOCAL, encoding="utf-8")
    for name, value in (("RAG_MODEL", "fake"), ("RAG_SELECTOR", "0"), ("RAG_CHUNK_TOKENS", "40"),
                        ("RAG_CHUNK_OVERLAP", "5"), ("RAG_ABSTAIN_THRESHOLD", "0"),
                        ("RAG_FETCH_ALLOW_PRIVATE", allow)):
        monkeypatch.setenv(name, value)
    return site, cfg.replace(fetch_allow_private=allow)


def _cli_build(cfg, *args, capsys) -> tuple[int, dict]:
    code = build_main(["--source", str(cfg.source), "--index", str(cfg.index_dir), "--json",
                       "--quiet", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else {})


def test_cli_fetches_a_page_and_a_feed_and_answers_from_them(served, capsys):
    site, cfg = served
    code, report = _cli_build(cfg, "--url", site.url("/wall.html"), "--feed",
                              site.url("/feed.xml"), capsys=capsys)
    assert code == 0
    actions = {(f["item"], f["action"]) for f in report["fetched"]}
    assert (site.url("/wall.html"), "added") in actions
    assert (site.url("/bridge.html"), "added") in actions
    assert set(report["added"]) == {"notes.txt", site.url("/wall.html"),
                                    site.url("/bridge.html")}
    answer = rag.ask("How much will the sea wall cost?", config=cfg, retrieval="keyword")
    top = answer.citations[0]
    assert top.article_id == site.url("/wall.html") and top.url == site.url("/wall.html")
    assert "48 million euros" in top.quote and top.author == "Ana Ruiz"
    assert top.published == "2026-11-20"
    # the feed is remembered and polled on the next build; the page is unchanged
    code, again = _cli_build(cfg, capsys=capsys)
    assert code == 0 and not again["added"] and not again["updated"]
    assert {f["action"] for f in again["fetched"]} <= {"unchanged", "not modified"}
    assert again["fetched"] and all(f["origin"] == site.url("/feed.xml")
                                    for f in again["fetched"])
    code, _ = _cli_build(cfg, "--list-feeds", capsys=capsys)
    assert code == 0
    # an edited page updates the same article instead of adding a second one
    site.page("/wall.html", PAGE.format(canonical=site.url("/wall.html"))
              .replace("48 million", "52 million"))
    code, third = _cli_build(cfg, "--no-poll", "--url", site.url("/wall.html?utm_source=x"),
                             capsys=capsys)
    assert third["updated"] == [site.url("/wall.html")] and not third["added"]


def test_bad_sources_are_skipped_with_reasons_and_the_build_goes_on(served, capsys,
                                                                     monkeypatch):
    site, cfg = served
    site.page("/report.pdf", b"%PDF-1.4 ...", ctype="application/pdf")
    site.redirect("/metadata", "http://169.254.169.254/latest/meta-data/")
    site.redirect("/loop", f"http://127.0.0.1:{site.port + 1}/")
    site.page("/bomb.xml", '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">'
              '<!ENTITY b "&a;&a;&a;&a;">]><rss><channel>&b;</channel></rss>',
              ctype="application/rss+xml")
    urls = ["/missing.html", "/report.pdf", "/metadata", "/loop"]
    args = [x for u in urls for x in ("--url", site.url(u))]
    code, report = _cli_build(cfg, *args, "--url", "file:///etc/passwd",
                              "--feed", site.url("/bomb.xml"), capsys=capsys)
    assert code == 0 and report["added"] == ["notes.txt"]
    reasons = {f["item"]: f["reason"] for f in report["fetched"] if f["action"] == "skipped"}
    assert "404" in reasons[site.url("/missing.html")]
    assert "application/pdf" in reasons[site.url("/report.pdf")]
    assert "169.254.169.254" in reasons[site.url("/metadata")]
    assert "not public" in reasons[site.url("/loop")] or "127.0.0.1" in reasons[site.url("/loop")]
    assert "http" in reasons["file:///etc/passwd"]
    assert "entit" in reasons[site.url("/bomb.xml")]
    # without the test-only allowance the fetcher refuses the loopback server itself
    monkeypatch.delenv("RAG_FETCH_ALLOW_PRIVATE")
    code, report = _cli_build(cfg, "--url", site.url("/wall.html"), capsys=capsys)
    (only,) = report["fetched"]
    assert only["action"] == "skipped" and "127.0.0.1" in only["reason"]


def test_api_adds_sources_and_reports_status(served):
    from fastapi.testclient import TestClient

    from rag.app.web import create_app

    site, cfg = served
    with TestClient(create_app(cfg), base_url="http://127.0.0.1",
                    client=("127.0.0.1", 50000)) as client:
        r = client.post("/api/sources", json={"urls": [site.url("/wall.html")],
                                              "feeds": [site.url("/feed.xml")]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert sorted(f["action"] for f in body["fetched"]) == ["added", "added"]
        assert body["wrote"] and body["articles"] == 3
        feeds = client.get("/api/feeds").json()
        assert [f["url"] for f in feeds] == [site.url("/feed.xml")]
        status = client.get("/api/status").json()
        assert status["articles"] == 3 and status["version"] == current_version(cfg.index_dir)
        ask = client.post("/api/ask", json={"question": "When will buses return to the bridge?"})
        assert ask.json()["citations"][0]["article_id"] == site.url("/bridge.html")
        # bad requests are 4xx JSON, never a 500
        assert client.post("/api/sources", json={}).status_code == 400
        assert client.post("/api/sources", json={"urls": "x"}).status_code == 400
        r = client.post("/api/sources", json={"urls": ["http://10.0.0.1/x"]})
        assert r.status_code == 200
        (skip,) = r.json()["fetched"]
        assert skip["action"] == "skipped" and "10.0.0.1" in skip["reason"]
        spec = client.get("/api/openapi.json").json()
        assert {"/api/sources", "/api/feeds", "/api/status"} <= set(spec["paths"])
        assert "Fetched" in spec["components"]["schemas"]


def test_pdf_citations_carry_their_page(cfg, fake_embedder):
    shutil.copy(DATA / "seed-article.pdf", cfg.source / "seed-article.pdf")
    rag.build(config=cfg)
    answer = rag.ask("Who founded DeepSeek?", config=cfg, k=5, retrieval="keyword")
    assert answer.citations
    from rag.app.library import Library

    art = Library(cfg).article("seed-article.pdf")
    assert len(art.pages) >= 2
    for c in answer.citations:
        assert art.text[c.start:c.end] == c.quote
        assert c.page == art.page_at(c.start) and 1 <= c.page <= len(art.pages)
    assert f"page {answer.citations[0].page}" in render_text(answer)
    later = [c for c in answer.citations if c.page and c.page > 1]
    if later:  # a quote from a later page starts at or after that page's first character
        assert later[0].start >= art.pages[later[0].page - 1]


def test_syndicated_copies_are_quoted_once_with_also_in(cfg, fake_embedder):
    src = Path(cfg.source)
    (src / "a-wire.txt").write_text("Steelworks homes approved\n\n" + STEELWORKS, encoding="utf-8")
    copy = STEELWORKS.rsplit(" The mayor", 1)[0]  # a trimmed ending
    (src / "b-outlet.json").write_text(json.dumps({
        "id": "b-outlet", "title": "Council backs homes on steelworks site",
        "source": "Valley Post", "url": "https://valley.example/homes",
        "text": "By Staff Reporter\n\nLONDON - " + copy}), encoding="utf-8")
    (src / "c-other.txt").write_text(
        "Steelworks museum\n\nThe steelworks museum will open a new hall about furnaces and "
        "rivers next spring, with a café and a bus stop by the valley road.", encoding="utf-8")
    report = rag.build(config=cfg)
    assert [(f.article_id, f.copy_of) for f in report.folded] == [("b-outlet", "a-wire.txt")]
    assert "copies: 1 article repeats" in report.summary()
    answer = rag.ask("How many homes will be built on the steelworks site?", config=cfg, k=5)
    ids = [c.article_id for c in answer.citations]
    assert len({"a-wire.txt", "b-outlet"} & set(ids)) == 1  # the story is quoted once
    quoted = next(c for c in answer.citations if c.article_id in ("a-wire.txt", "b-outlet"))
    other = ({"a-wire.txt", "b-outlet"} - {quoted.article_id}).pop()
    assert [x.article_id for x in quoted.also_in] == [other]
    assert "also in" in render_text(answer)
    from rag.app.library import Library

    rows = {r["id"]: r for r in Library(cfg).articles()}
    assert rows["b-outlet"]["copy_of"] == "a-wire.txt" and rows["a-wire.txt"]["copy_of"] is None
    # nothing is dropped from the index, and the setting turns folding off
    assert {"a-wire.txt", "b-outlet", "c-other.txt"} == set(report.added)
    off = cfg.replace(fold_copies=False)
    rag.build(config=off, rebuild=True)
    answer = rag.ask("How many homes will be built on the steelworks site?", config=off, k=5)
    assert {"a-wire.txt", "b-outlet"} <= {c.article_id for c in answer.citations}
    assert all(not c.also_in for c in answer.citations)


def test_an_index_written_whole_by_an_older_rag_is_refused_then_rebuilt(cfg, fake_embedder):
    """An index of schema 2 (every version written whole, before segments): asking says
    to rebuild; the next build re-embeds everything into segments and answers."""
    (Path(cfg.source) / "notes.txt").write_text(LOCAL, encoding="utf-8")
    rag.build(config=cfg)
    path = Path(cfg.index_dir) / current_version(cfg.index_dir)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["schema"] = 2
    (path / "manifest.json").write_text(json.dumps(manifest))
    from rag.answer.pipeline import forget_corpus

    forget_corpus(cfg.index_dir)
    with pytest.raises(rag.IndexMismatch, match="schema 2 .written whole by an older rag"
                                                ".*reads schema 3.*--rebuild"):
        rag.ask("When will the library open on Sundays?", config=cfg)
    fake_embedder.embedded.clear()
    report = rag.build(config=cfg)
    assert report.added == ("notes.txt",) and fake_embedder.embedded
    answer = rag.ask("When will the library open on Sundays?", config=cfg)
    assert answer.citations[0].article_id == "notes.txt"
    assert answer.citations[0].page is None and answer.citations[0].also_in == ()
