"""Dates that are not publication dates (issue 24, item 1): a PDF's or DOCX's creation date
is the article's ``file_date``, never ``published``; every date says where it came from
(``date_source``), in the index, the API, MCP, the CLI and the UI; date filters use
``published`` only.

Real files: a PDF written by fpdf2 (it stamps the moment it runs as CreationDate), a DOCX
by python-docx (its template's core properties say created 2013-12-23), records, HTML
pages and a feed served on 127.0.0.1. The fake embedder; the browser test drives Debian's
Chromium (screenshots in ``test-artifacts/screenshots/``).
"""

from __future__ import annotations

import datetime
import io
import json
from email.utils import format_datetime
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient

import rag
from rag.app import render
from rag.app.web import create_app
from rag.cli import render_text
from rag.ingest.loaders import load_articles
from rag.ingest.web import add_feeds, add_urls
from rag.types import Citation, Filters, describe_date
from tests.conftest import ROOT

fpdf = pytest.importorskip("fpdf")
docx = pytest.importorskip("docx")

TODAY = datetime.datetime.now(datetime.timezone.utc).date().isoformat()  # fpdf stamps UTC
PDF_TEXT = ("Harbour wall report. The harbour wall was rebuilt with 4,000 tonnes of granite. "
            "Engineers finished the work in the spring.")
DOCX_TEXT = "Council minutes. The council approved a new library with 30,000 books."
RECORD = {"id": "wire-ferry", "title": "Ferry strike ends", "source": "Valley Post",
          "published": "2025-01-27",
          "text": "Ferry strike ends\n\nThe ferry strike ended after nine days of talks."}
TOKEN = "t0ken-for-file-dates-0123456789"
COPYRIGHT_PAGE = (  # no date in the markup: only a copyright line and an event in the text
    "<!doctype html><html><head><title>Lighthouse reopens</title></head><body><article>"
    "<h1>Lighthouse reopens</h1><p>" + "The old lighthouse reopened to visitors after the "
    "storm of 12 March 2019 damaged its lamp room. " * 6 + "</p></article>"
    "<footer>© 2023 Coast News Ltd</footer></body></html>")
DATED_PAGE = COPYRIGHT_PAGE.replace("ighthouse", "ightship").replace(
    "<title>", '<meta property="article:published_time" content="2024-03-14T09:30:00Z">'
    "<title>")


def fpdf_file() -> bytes:
    """A PDF as fpdf2 writes it by default: CreationDate is now."""
    pdf = fpdf.FPDF()
    pdf.set_title("Harbour wall report")
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 6, PDF_TEXT)
    return bytes(pdf.output())


def docx_file() -> bytes:
    """A DOCX as python-docx writes it by default: created 2013-12-23 (its template)."""
    doc = docx.Document()
    doc.add_paragraph(DOCX_TEXT)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def fill(source: Path) -> None:
    (source / "report.pdf").write_bytes(fpdf_file())
    (source / "minutes.docx").write_bytes(docx_file())
    (source / "news.jsonl").write_text(json.dumps(RECORD) + "\n", encoding="utf-8")
    (source / "lighthouse.html").write_text(COPYRIGHT_PAGE, encoding="utf-8")
    (source / "dated.html").write_text(DATED_PAGE, encoding="utf-8")


@pytest.fixture
def built(cfg):
    fill(cfg.source)
    report = rag.build(config=cfg)
    assert not report.skipped and len(report.added) == 5
    return cfg


def test_a_files_creation_date_is_its_file_date_never_published(tmp_path):
    fill(tmp_path)
    articles, skipped = load_articles(tmp_path)
    assert skipped == []
    got = {a.id: (a.published, a.file_date, a.date_source) for a in articles}
    assert got == {
        "report.pdf": (None, TODAY, "file"),          # fpdf: the moment it ran
        "minutes.docx": (None, "2013-12-23", "file"),  # python-docx's template
        "wire-ferry": ("2025-01-27", None, "record"),
        # a copyright year and an event in the text are not publication dates
        "lighthouse.html": (None, None, None),
        "dated.html": ("2024-03-14", None, "page"),
    }


def test_describe_date_says_where_the_date_came_from():
    assert describe_date("2025-01-27", "page") == "2025-01-27 (published, from the page)"
    assert describe_date("2025-01-27", "feed") == "2025-01-27 (published, from the feed)"
    assert describe_date("2025-01-27", "record") == "2025-01-27 (published, from the record)"
    assert describe_date("2025-01-27") == "2025-01-27 (published)"  # an index before the field
    assert describe_date(None, "file", "2013-12-23") == "file created 2013-12-23"
    assert describe_date(None) == ""


def test_the_index_keeps_file_dates_apart_and_filters_ignore_them(built):
    cfg = built
    art = rag.get_article("minutes.docx", config=cfg)
    assert (art.published, art.file_date, art.date_source) == (None, "2013-12-23", "file")
    # a date filter matches published dates only: the PDF (created today) and the DOCX
    # (created 2013-12-23) are never in it
    for since, until in (("2000-01-01", None), (TODAY, TODAY), ("2013-12-23", "2013-12-23")):
        hits = rag.search("harbour wall granite council library ferry", k=10, config=cfg,
                          filters=Filters(since=since, until=until))
        assert not {h.article_id for h in hits} & {"report.pdf", "minutes.docx"}, since
    hits = rag.search("harbour wall granite", k=10, config=cfg)
    pdf = next(h for h in hits if h.article_id == "report.pdf")
    assert (pdf.published, pdf.file_date, pdf.date_source) == (None, TODAY, "file")
    answer = rag.ask("What was the library approved by the council?", config=cfg,
                     filters=Filters(since="2013-01-01"))
    assert "minutes.docx" not in {c.article_id for c in answer.citations}


def test_api_and_cli_say_file_created_not_published(built):
    with TestClient(create_app(built.replace(api_token=TOKEN, rate_limit=1000))) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        rows = {r["id"]: r for r in client.get("/api/articles").json()["articles"]}
        assert {k: (r["published"], r["file_date"], r["date_source"])
                for k, r in rows.items()} == {
            "report.pdf": (None, TODAY, "file"), "minutes.docx": (None, "2013-12-23", "file"),
            "wire-ferry": ("2025-01-27", None, "record"),
            "lighthouse.html": (None, None, None), "dated.html": ("2024-03-14", None, "page")}
        since = client.get("/api/articles", params={"since": "2000-01-01"}).json()
        assert {r["id"] for r in since["articles"]} == {"wire-ferry", "dated.html"}
        one = client.get("/api/articles/minutes.docx").json()
        assert (one["published"], one["file_date"], one["date_source"]) == (
            None, "2013-12-23", "file")
        body = client.post("/api/ask", json={
            "question": "How many books will the new library hold?", "k": 5}).json()
        cite = next(c for c in body["citations"] if c["article_id"] == "minutes.docx")
        assert (cite["published"], cite["file_date"], cite["date_source"]) == (
            None, "2013-12-23", "file")
        spec = client.app.openapi()["components"]["schemas"]
        for name in ("Citation", "ArticleRow", "ArticleOut"):
            assert {"file_date", "date_source"} <= set(spec[name]["properties"]), name
    answer = rag.ask("How many books will the new library hold?", config=built)
    text = render_text(answer)
    assert "file created 2013-12-23" in text and "published 2013" not in text


def test_ui_cards_and_articles_table_say_where_the_date_came_from(built):
    from rag.app.library import Library

    rows = Library(built).articles()
    table = render.render_article_list(rows)
    assert "file created 2013-12-23" in table and f"file created {TODAY}" in table
    assert "2025-01-27 (published, from the record)" in table
    assert "2024-03-14 (published, from the page)" in table
    card = render.render_citation(Citation(
        n=1, article_id="minutes.docx", title="Council minutes", source="minutes.docx",
        start=0, end=5, quote="Counc", passage="Council minutes.", passage_start=0,
        passage_end=16, score=0.5, file_date="2013-12-23", date_source="file"))
    assert 'class="rag-date rag-file-date">file created 2013-12-23<' in card
    assert "published" not in card
    answer = rag.ask("How many books will the new library hold?", config=built)
    first = answer.citations[0]
    if first.article_id == "minutes.docx":
        assert "file created 2013-12-23" in render.render_answer(answer)


def test_mcp_get_article_says_where_the_date_came_from(built):
    pytest.importorskip("mcp")
    from mcp import Client

    from rag.app import mcp as rag_mcp

    server = rag_mcp.create_server(built)

    async def go():
        async with Client(server) as client:
            return [await client.call_tool("get_article", {"id": i})
                    for i in ("report.pdf", "wire-ferry")]

    pdf, record = (r.structured_content for r in anyio.run(go))
    assert (pdf["published"], pdf["file_date"], pdf["date_source"]) == (None, TODAY, "file")
    assert (record["published"], record["date_source"]) == ("2025-01-27", "record")


def test_web_pages_and_feed_items_say_page_or_feed(site, tmp_path):
    src = tmp_path / "articles"
    src.mkdir()
    site.page("/news/dated", DATED_PAGE)
    site.page("/news/undated", COPYRIGHT_PAGE.replace("Lighthouse", "Pier"))
    body = "<p>" + "The pier will be rebuilt in oak over two summers. " * 15 + "</p>"
    day = datetime.datetime(2024, 3, 2, 9, 0, tzinfo=datetime.timezone.utc)
    feed = ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
            "<title>Coast News</title><link>http://example.test/</link><description>d"
            "</description><item><title>Pier rebuilt</title>"
            f"<link>{site.url('/news/pier')}</link><guid>{site.url('/news/pier')}</guid>"
            f"<pubDate>{format_datetime(day)}</pubDate>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded></item>"
            "</channel></rss>")
    site.page("/feed.xml", feed, ctype="application/rss+xml")
    assert [f.action for f in add_urls(src, [site.url("/news/dated"),
                                             site.url("/news/undated")], site.policy())] \
        == ["added", "added"]
    assert [f.action for f in add_feeds(src, [site.url("/feed.xml")], site.policy())] \
        == ["added"]
    got = {a.title: (a.published, a.date_source) for a in load_articles(src)[0]}
    assert got == {"Lightship reopens": ("2024-03-14", "page"),
                   "Pier reopens": (None, None),  # the copyright year is no date
                   "Pier rebuilt": ("2024-03-02", "feed")}


@pytest.mark.browser
def test_browser_citation_card_and_articles_tab_show_file_created(built):
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian chromium is not installed at /usr/bin/chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    from rag.app.web import BackgroundServer

    shots = ROOT / "test-artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with BackgroundServer(create_app(built)) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 900})
            pg.set_default_timeout(120_000)
            pg.goto(url)
            box = pg.locator("#rag-question textarea")
            box.fill("How many books will the new library hold?")
            box.press("Enter")
            pg.locator("#rag-citations .rag-card").first.wait_for()
            card = pg.locator("#rag-citations .rag-card[data-article-id='minutes.docx']")
            assert "file created 2013-12-23" in card.locator(".rag-meta").inner_text()
            assert "published" not in card.locator(".rag-meta").inner_text()
            pg.screenshot(path=str(shots / "24-file-date-on-a-docx-citation.png"),
                          full_page=True)
            pg.get_by_role("tab", name="Articles").click()
            pg.wait_for_function("() => document.querySelectorAll('#rag-articles tbody tr')"
                                 ".length === 5")
            table = pg.locator("#rag-articles").inner_text()
            assert "file created 2013-12-23" in table and f"file created {TODAY}" in table
            assert "2025-01-27 (published, from the record)" in table
            pg.screenshot(path=str(shots / "24-file-dates-in-the-articles-tab.png"),
                          full_page=True)
        finally:
            browser.close()
