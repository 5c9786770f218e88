"""The UI in a real browser: headless Debian Chromium driven by Playwright.

Needs ``/usr/bin/chromium`` (Debian packages ``chromium`` and ``chromium-driver``).
Screenshots of every step go to ``test-artifacts/screenshots/`` (printed at the start).
Assertions are about structure (a ``<mark>`` inside the right citation whose text equals
the citation's quote as the API returns it), not about which sentence is chosen, except
for facts only one sentence of an article holds.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from rag.app.web import BackgroundServer, create_app
from tests.conftest import DATA, ROOT

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "test-artifacts" / "screenshots"
SEED_ID = "deepseek-r1-disrupts-tech-industry.txt"
NEW_ARTICLE = ("The Zorblax Lantern Festival in Quillport\n\n"
               "The Zorblax Lantern Festival is held every October in the harbour town of "
               "Quillport. The festival attracts about 12,000 visitors every year, most of "
               "them arriving by ferry. Its lanterns are made from recycled sailcloth.")
NEW_QUESTION = "How many visitors does the Zorblax Lantern Festival attract every year?"
WAIT = 180_000  # ms; the first question loads the model

pytestmark = [pytest.mark.browser, pytest.mark.model]
if not Path(CHROMIUM).exists():  # pragma: no cover - the set-up command installs it
    pytest.skip("Debian chromium is not installed at /usr/bin/chromium",
                allow_module_level=True)


@pytest.fixture(scope="module")
def servers(writable_seed_index):
    """The seed index served twice: normally, and with abstain_threshold=1.0 (every
    answer abstains). This module's own copy: a test uploads and removes an article."""
    seed_index = writable_seed_index
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {SHOTS}")
    with BackgroundServer(create_app(seed_index)) as url, \
            BackgroundServer(create_app(seed_index.replace(abstain_threshold=1.0))) as url_na:
        yield url, url_na, seed_index


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT)
    yield pg
    ctx.close()


def shot(pg, name: str, full_page: bool = True) -> None:
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def open_app(pg, url: str) -> None:
    pg.goto(url)
    pg.locator("#rag-question textarea").wait_for()


def ask(pg, question: str) -> None:
    box = pg.locator("#rag-question textarea")
    box.fill(question)
    before = pg.locator("#rag-answer").inner_html()
    box.press("Enter")
    pg.wait_for_function("([b]) => { const e = document.querySelector('#rag-answer');"
                         " return e && e.innerHTML !== b && !e.querySelector('.rag-empty'); }",
                         arg=[before])
    pg.wait_for_timeout(300)


def api_answer(url: str, question: str, k: int = 5) -> dict:
    r = httpx.post(f"{url}/api/ask", json={"question": question, "k": k}, timeout=120)
    assert r.status_code == 200
    return r.json()


def card_marks(pg) -> dict[int, tuple[str, str]]:
    """{citation number: (article id, text of its <mark>)}."""
    out = {}
    for card in pg.locator("#rag-citations .rag-card").all():
        marks = card.locator(".rag-passage mark.rag-quote")
        assert marks.count() == 1
        out[int(card.get_attribute("data-n"))] = (card.get_attribute("data-article-id"),
                                                  marks.inner_text())
    return out


def test_ask_seed_question_shows_marked_quote_in_the_right_citation(servers, page):
    url, _, _ = servers
    q = "How much did it cost to train R1?"
    expected = api_answer(url, q)
    open_app(page, url)
    shot(page, "01-start")
    ask(page, q)
    shot(page, "02-answer")
    marks = card_marks(page)
    assert len(marks) == len(expected["citations"])
    for c in expected["citations"]:
        assert marks[c["n"]] == (c["article_id"], c["quote"])
    assert any("$5.6 million" in c["quote"] and c["article_id"] == SEED_ID
               for c in expected["citations"])
    if not expected["abstained"]:
        assert page.locator(".rag-answer-quote mark").inner_text() == expected["text"]

    # the source viewer: choose the last citation, see its quote marked and in view
    last = expected["citations"][-1]
    page.locator("#rag-chooser label").nth(last["n"] - 1).click()
    page.wait_for_function("(n) => { const h = document.querySelector('#rag-viewer .rag-n');"
                           " return h && h.textContent === `[${n}]`; }", arg=last["n"])
    page.wait_for_timeout(400)
    hl = page.locator("#rag-highlight")
    assert hl.inner_text() == last["quote"]
    box = page.locator("#rag-viewer .rag-viewer").bounding_box()
    mark = hl.bounding_box()
    assert box["y"] <= mark["y"] and mark["y"] + mark["height"] <= box["y"] + box["height"]
    full = page.locator("#rag-viewer .rag-article-text").inner_text()
    assert len(full) > 3 * len(last["passage"]) and last["passage"][:40] in full
    shot(page, "03-source-viewer")

    # the copy button copies the answer (or the not-found message) with its citation
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator("#rag-copy").click()
    page.wait_for_timeout(300)
    copied = page.evaluate("navigator.clipboard.readText()")
    if expected["abstained"]:
        assert copied.startswith(expected["message"])
    else:
        assert copied.startswith(f"“{expected['text']}” [1]") and SEED_ID in copied


def test_upload_then_answer_from_it_then_remove(servers, page, tmp_path):
    url, _, cfg = servers
    src = tmp_path / "Zorblax festival!.txt"
    src.write_text(NEW_ARTICLE, encoding="utf-8")
    open_app(page, url)
    page.get_by_role("tab", name="Articles").click()
    page.locator("#rag-articles .rag-table").wait_for()
    assert page.locator("#rag-articles tbody tr").count() == 1
    page.locator("#rag-upload input[type=file]").set_input_files(str(src))
    page.locator("#rag-upload-status .rag-done").wait_for()
    status = page.locator("#rag-upload-status .rag-done").inner_text()
    assert status.startswith("Added Zorblax_festival.txt"), status
    assert (cfg.source / "Zorblax_festival.txt").read_text(encoding="utf-8") == NEW_ARTICLE
    rows = page.locator("#rag-articles tbody tr")
    assert rows.count() == 2 and "Zorblax Lantern Festival" in rows.all_inner_texts()[0]
    page.locator("#rag-search input, #rag-search textarea").first.fill("zorblax")
    page.wait_for_function("() => document.querySelectorAll('#rag-articles tbody tr')"
                           ".length === 1")
    shot(page, "04-uploaded")

    page.get_by_role("tab", name="Ask").click()
    ask(page, NEW_QUESTION)
    shot(page, "05-answer-from-upload")
    expected = api_answer(url, NEW_QUESTION)
    assert not expected["abstained"] and "12,000 visitors" in expected["text"]
    assert page.locator(".rag-answer-quote mark").inner_text() == expected["text"]
    assert card_marks(page)[1] == ("Zorblax_festival.txt", expected["text"])

    page.get_by_role("tab", name="Articles").click()
    page.locator("#rag-remove-choice input").click()
    page.get_by_role("option", name="Zorblax_festival.txt", exact=False).click()
    page.locator("#rag-remove").click()
    page.locator("#rag-remove-confirm").wait_for(state="visible")
    shot(page, "06-remove-confirm")
    page.locator("#rag-remove-confirm").click()
    page.locator("#rag-remove-status .rag-done").wait_for()
    assert page.locator("#rag-remove-status .rag-done").inner_text().startswith(
        "Removed Zorblax_festival.txt. The index now holds 1 article")
    page.locator("#rag-search input, #rag-search textarea").first.fill("")
    page.wait_for_function("() => document.querySelectorAll('#rag-articles tbody tr')"
                           ".length === 1")
    assert "Zorblax" not in page.locator("#rag-articles").inner_text()
    assert not (cfg.source / "Zorblax_festival.txt").exists()
    shot(page, "07-removed")
    after = api_answer(url, NEW_QUESTION)
    assert all(c["article_id"] == SEED_ID for c in after["citations"])


def test_abstaining_question_shows_not_found_state(servers, page):
    _, url_na, _ = servers
    open_app(page, url_na)
    ask(page, "What is the boiling point of mercury?")
    assert page.locator("#rag-answer .rag-notfound").is_visible()
    assert "Not found in the articles" in page.locator("#rag-answer").inner_text()
    cards = page.locator("#rag-citations .rag-card")
    assert cards.count() >= 1
    assert cards.count() == page.locator("#rag-citations .rag-card-na .rag-badge").count()
    assert "do not answer" in page.locator("#rag-citations h3").inner_text()
    shot(page, "08-not-found")


def test_empty_question_message_and_settings(servers, page):
    from playwright.sync_api import expect

    url, _, _ = servers
    open_app(page, url)
    page.locator("#rag-question textarea").press("Enter")
    page.locator("#rag-answer .rag-error").wait_for()
    assert "Please check the question" in page.locator("#rag-answer").inner_text()
    assert "Traceback" not in page.content()

    page.get_by_role("tab", name="Settings").click()
    k = page.locator("#rag-k input[type=number]")
    k.fill("2")
    k.press("Tab")
    page.get_by_label("Keywords only (BM25)").check()
    shot(page, "11-settings")
    page.get_by_role("tab", name="Ask").click()
    ask(page, "Who founded DeepSeek?")
    # the citations render after the answer: poll (a loaded machine can take seconds)
    expect(page.locator("#rag-citations .rag-card")).to_have_count(2, timeout=WAIT)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_phone_width_in_light_and_dark(servers, browser, theme):
    url, _, _ = servers
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme=theme,
                              is_mobile=True, has_touch=True)
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT)
    try:
        pg.goto(f"{url}/?__theme={theme}")
        pg.locator("#rag-question textarea").wait_for()
        ask(pg, "Who founded DeepSeek?")
        assert pg.locator("#rag-citations .rag-card mark").count() >= 1
        overflow = pg.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"page is {overflow}px wider than the phone screen"
        dark = pg.evaluate("document.body.classList.contains('dark') || "
                           "document.documentElement.classList.contains('dark')")
        assert dark == (theme == "dark")
        shot(pg, f"09-phone-{theme}", full_page=False)
        pg.locator("#rag-chooser label").nth(1).click()
        pg.locator("#rag-highlight").wait_for()
        pg.wait_for_timeout(400)
        mark = pg.locator("#rag-highlight").bounding_box()
        assert 0 <= mark["y"] and mark["y"] + min(mark["height"], 100) <= 844, mark
        shot(pg, f"10-phone-{theme}-viewer", full_page=False)
    finally:
        ctx.close()


# -- sources: web pages, a watched folder, PDF pages, syndicated copies ------------------

WEB_PAGE = """<html><head><title>Harbour wall approved | Coast News</title>
<meta name="author" content="Ana Ruiz"></head><body><article><h1>Harbour wall approved</h1>
<p>The harbour authority approved a new sea wall on Tuesday after a decade of floods.</p>
<p>Engineers said the wall would rise four metres above the spring tide line and cost
48 million euros, paid over six years.</p></article></body></html>"""


@pytest.fixture(scope="module")
def sources_app(tmp_path_factory):
    """A fresh index (real model) of the seed article as a PDF and a story with its
    syndicated copy, served with a watched folder and a local web site it may fetch."""
    import json
    import shutil

    import rag
    from tests.conftest import STEELWORKS, Site
    from rag.app.watch import Updater
    from rag.config import Config

    base = tmp_path_factory.mktemp("sources")
    src = base / "articles"
    src.mkdir()
    shutil.copy(DATA / "seed-article.pdf", src / "deepseek.pdf")
    (src / "steelworks.txt").write_text("Steelworks homes approved\n\n" + STEELWORKS,
                                        encoding="utf-8")
    (src / "valley-post.json").write_text(json.dumps({
        "id": "valley-post-homes", "title": "Council backs homes on steelworks site",
        "source": "Valley Post", "url": "https://valley.example/homes",
        "text": "By Staff Reporter\n\n" + STEELWORKS.rsplit(" The mayor", 1)[0]}), encoding="utf-8")
    site = Site()
    site.page("/wall.html", WEB_PAGE)
    cfg = Config(source=src, index_dir=base / "index",
                 fetch_allow_private=f"127.0.0.1:{site.port}")
    rag.build(config=cfg)
    updater = Updater(cfg, watch=True, debounce_ms=500, log=None).start()
    try:
        with BackgroundServer(create_app(cfg, updater=updater)) as url:
            yield url, cfg, site
    finally:
        updater.stop()
        site.close()


def test_sources_fetch_watch_pages_and_copies(sources_app, page):
    url, cfg, site = sources_app
    SHOTS.mkdir(parents=True, exist_ok=True)
    open_app(page, url)
    page.get_by_role("tab", name="Articles").click()
    status = page.locator("#rag-index-status .rag-status")
    status.wait_for()
    assert "3 articles" in status.inner_text() and "watching" in status.inner_text()
    page.locator("#rag-web-url textarea").fill(site.url("/wall.html"))
    page.locator("#rag-web-add").click()
    page.locator("#rag-web-status .rag-done").wait_for()
    assert "1 added" in page.locator("#rag-web-status").inner_text()
    page.wait_for_function("() => document.querySelectorAll('#rag-articles tbody tr')"
                           ".length === 4")
    assert "Harbour wall approved" in page.locator("#rag-articles").inner_text()
    shot(page, "10-fetched-a-web-page")

    # a file dropped into the folder is indexed by the watcher; the status line says so
    (cfg.source / "ferry.txt").write_text(
        "Night ferries\n\nThe harbour ferry will add three night crossings from June.\n",
        encoding="utf-8")
    page.wait_for_function("() => (document.querySelector('#rag-index-status')"
                           " || {}).innerText.includes('5 articles')")
    assert "1 added" in page.locator("#rag-index-status").inner_text()
    shot(page, "11-watched-folder-updated")

    page.get_by_role("tab", name="Ask").click()
    ask(page, "Who founded DeepSeek?")
    expected = api_answer(url, "Who founded DeepSeek?")
    first = expected["citations"][0]
    assert first["article_id"] == "deepseek.pdf" and first["page"] >= 1
    card = page.locator("#rag-citations .rag-card").first
    assert f"page {first['page']}" in card.locator(".rag-meta").inner_text()
    shot(page, "12-pdf-citation-with-page")

    ask(page, "How many homes will be built on the steelworks site?")
    expected = api_answer(url, "How many homes will be built on the steelworks site?")
    story = {"steelworks.txt", "valley-post-homes"}
    cited = [c for c in expected["citations"] if c["article_id"] in story]
    assert len(cited) == 1 and len(cited[0]["also_in"]) == 1
    card = page.locator(f"#rag-citations .rag-card[data-n='{cited[0]['n']}']")
    assert card.locator(".rag-also").inner_text().startswith("also in:")
    shot(page, "13-copies-quoted-once")


# -- filters, dates read from the question, "Why this answer?", the token --------------

UI_TOKEN = "browser-test-token-0123456789"


@pytest.fixture(scope="module")
def dated_app(tmp_path_factory):
    """The seed article as a dated record of "Tech Wire" and the steelworks story of
    "Valley Post" (real model), served with an API token."""
    import json

    import rag
    from tests.conftest import SEEDS, STEELWORKS
    from rag.config import Config

    base = tmp_path_factory.mktemp("dated")
    src = base / "articles"
    src.mkdir()
    seed = (SEEDS / SEED_ID).read_text(encoding="utf-8")
    title, _, body = seed.partition("\n")
    records = [{"id": "tech-wire-deepseek", "title": title.strip(), "text": seed,
                "source": "Tech Wire", "author": "Staff Writer", "published": "2025-01-27"},
               {"id": "valley-post-homes", "title": "Steelworks homes approved",
                "text": "Steelworks homes approved\n\n" + STEELWORKS, "source": "Valley Post",
                "published": "2025-01-20"}]
    (src / "news.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n",
                                    encoding="utf-8")
    cfg = Config(source=src, index_dir=base / "index", api_token=UI_TOKEN)
    rag.build(config=cfg)
    with BackgroundServer(create_app(cfg)) as url:
        yield url, cfg


def test_filters_dates_and_why_this_answer_behind_the_token(dated_app, page):
    url, cfg = dated_app
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert httpx.post(f"{url}/api/ask", json={"question": "x"}).status_code == 401
    page.goto(url)
    # the UI asks for the token as its password
    page.locator("input[type=password]").wait_for()
    shot(page, "14-login-with-the-api-token")
    page.locator("input[type=text]").first.fill("team")
    page.locator("input[type=password]").fill(UI_TOKEN)
    page.get_by_role("button", name="Login").click()
    page.locator("#rag-question textarea").wait_for()

    # time words dating an event: nothing published then answers, so all articles do,
    # and the answer says so
    ask(page, "How much did it cost to train R1 last week?")
    box = page.locator("#rag-answer")
    assert "$5.6 million" in box.locator("mark.rag-quote").inner_text()
    assert box.locator(".rag-scope").inner_text().startswith("Nothing published 20")
    assert '(from "last week") answers; from all articles' in \
        box.locator(".rag-scope").inner_text()
    shot(page, "15-time-words-of-an-event-fall-back-to-all-articles")

    # about the articles themselves: a date filter, read as of the day given
    page.locator("#rag-filters").get_by_text("Filters: which articles to use").click()
    page.locator("#rag-f-as-of textarea, #rag-f-as-of input").first.fill("2025-02-03")
    ask(page, "What did the news say last week about the cost of training R1?")
    page.wait_for_function("() => (document.querySelector('#rag-answer .rag-scope') || "
                           "{}).innerText?.includes('2025-01-27')", timeout=60_000)
    assert box.locator(".rag-scope").inner_text() == \
        'Only articles published 2025-01-27 to 2025-02-02 (from "last week")'
    ids = {c.get_attribute("data-article-id")
           for c in page.locator("#rag-citations .rag-card").all()}
    assert ids == {"tech-wire-deepseek"}
    shot(page, "15b-news-from-last-week-as-of-a-day")
    page.locator("#rag-f-as-of textarea, #rag-f-as-of input").first.fill("")

    # the filters panel: one outlet, since a date; then why this answer
    source = page.locator("#rag-f-source input")
    source.fill("Tech Wire")
    source.press("Enter")
    page.locator("#rag-f-since textarea, #rag-f-since input").first.fill("2025-01-01")
    ask(page, "How much did it cost to train R1?")
    try:
        page.wait_for_function("() => (document.querySelector('#rag-answer .rag-scope') || "
                               "{}).innerText?.includes('Tech Wire')", timeout=60_000)
    finally:
        shot(page, "16-filters-and-why-this-answer")
    assert box.locator(".rag-scope").inner_text() == \
        "Only articles source: Tech Wire · published since 2025-01-01"
    assert "$5.6 million" in box.locator("mark.rag-quote").inner_text()
    ids = {c.get_attribute("data-article-id")
           for c in page.locator("#rag-citations .rag-card").all()}
    assert ids == {"tech-wire-deepseek"}
    why = box.locator("details.rag-why")
    assert why.get_attribute("data-reason") == "answered"
    why.locator("summary").click()
    assert why.locator(".rag-why-table tbody tr").count() >= 5
    assert "selector" in why.inner_text() and "threshold" in why.inner_text()
    shot(page, "16-filters-and-why-this-answer")


# -- the Articles tab at 64 articles; examples drawn from the index -------------------------

@pytest.fixture
def library_app(tmp_path):
    """64 articles of real text (tests/app/test_articles_tab.py's corpus) with the fake
    embedder: the layout is what is checked here, not the answers."""
    import rag
    from rag.config import Config
    from tests.app.test_articles_tab import write_corpus

    SHOTS.mkdir(parents=True, exist_ok=True)
    cfg = Config(source=tmp_path / "articles", index_dir=tmp_path / "index", model="fake",
                 chunk_tokens=120, chunk_overlap=10, abstain_threshold=0.0, selector=False)
    write_corpus(cfg.source)
    rag.build(config=cfg)
    with BackgroundServer(create_app(cfg)) as url:
        yield url, cfg


def top(pg, selector: str) -> float:
    return pg.locator(selector).bounding_box()["y"]


def test_articles_tab_at_64_articles(library_app, page, tmp_path):
    url, cfg = library_app
    open_app(page, url)
    # the examples are the index's (newest titles the articles answer), not DeepSeek's
    buttons = page.locator("#rag-examples button")
    buttons.first.wait_for()
    shown = [b.inner_text() for b in buttons.all() if b.is_visible()]
    assert shown[0] == "What do the articles say about Fresno, California?"
    assert len(shown) == 4 and not any("DeepSeek" in q or "R1" in q for q in shown)
    shot(page, "20-examples-from-the-index", full_page=False)
    buttons.first.click()
    page.wait_for_function("() => { const e = document.querySelector('#rag-answer');"
                           " return e && e.innerText.includes('Fresno'); }")

    page.get_by_role("tab", name="Articles").click()
    table = page.locator("#rag-articles .rag-table")
    table.wait_for()
    assert page.locator("#rag-articles tbody tr").count() == 20
    assert "1–20 of 64 articles · page 1 of 4" in page.locator("#rag-articles").inner_text()
    # the actions come first, all of them within the first screen; the table after them
    for action in ("#rag-upload", "#rag-web-url", "#rag-remove", "#rag-unsubscribe"):
        assert top(page, action) < top(page, "#rag-articles"), action
        assert top(page, action) < 900, action
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 2000, height  # 2,900 px with all 64 rows
    head = page.locator("#rag-articles thead").inner_text()
    assert [h.strip() for h in head.split("\t")] == ["Title", "Source", "Author", "Date",
                                                     "Chunks"]
    shot(page, "21-articles-64-page-1")

    page.locator("#rag-next").click()
    page.wait_for_function("() => document.querySelector('#rag-articles')"
                           ".innerText.includes('21–40 of 64')")
    page.locator("#rag-search input, #rag-search textarea").first.fill("steelworks")
    page.wait_for_function("() => document.querySelectorAll('#rag-articles tbody tr')"
                           ".length === 2")
    copy = page.locator("#rag-articles .rag-copy-mark")
    assert copy.count() == 1 and copy.inner_text() == "copy of Steelworks homes approved"
    assert "Ana Lima" in page.locator("#rag-articles").inner_text()
    shot(page, "22-articles-search-copy-and-author")

    # an upload says "Added"; a removal then replaces that message, it does not stay
    story = tmp_path / "ferry.txt"
    story.write_text(NEW_ARTICLE, encoding="utf-8")
    page.locator("#rag-upload input[type=file]").set_input_files(str(story))
    page.locator("#rag-upload-status .rag-done").wait_for()
    assert page.locator("#rag-upload-status").inner_text().startswith("Added ferry.txt")
    added_at = top(page, "#rag-upload-status")
    assert added_at < 900  # the result is on screen, beside the action
    page.locator("#rag-remove-choice input").click()
    page.get_by_role("option", name="ferry.txt").first.click()
    page.locator("#rag-remove").click()
    page.locator("#rag-remove-confirm").click()
    page.locator("#rag-remove-status .rag-done").wait_for()
    assert page.locator("#rag-remove-status").inner_text().startswith("Removed ferry.txt")
    assert page.locator("#rag-upload-status").inner_text().strip() == ""
    shot(page, "23-articles-after-removal")


def test_articles_tab_at_64_articles_on_a_phone(library_app, browser):
    url, _ = library_app
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                              has_touch=True)
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT)
    try:
        open_app(pg, url)
        pg.get_by_role("tab", name="Articles").click()
        pg.locator("#rag-articles .rag-table").wait_for()
        overflow = pg.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"page is {overflow}px wider than the phone screen"
        assert pg.locator("#rag-articles tbody tr").count() == 20
        assert top(pg, "#rag-upload") < top(pg, "#rag-articles")
        shot(pg, "24-articles-64-phone")
    finally:
        ctx.close()


def test_a_damaged_pdf_dropped_into_a_watched_folder_shows_in_the_articles_tab(page, tmp_path):
    import rag
    from rag.app.watch import Updater
    from rag.config import Config
    from tests.app.test_articles_tab import write_corpus

    SHOTS.mkdir(parents=True, exist_ok=True)
    cfg = Config(source=tmp_path / "articles", index_dir=tmp_path / "index", model="fake",
                 chunk_tokens=120, chunk_overlap=10, abstain_threshold=0.0, selector=False)
    write_corpus(cfg.source)
    rag.build(config=cfg)
    updater = Updater(cfg, watch=True, debounce_ms=300, log=None).start()
    try:
        with BackgroundServer(create_app(cfg, updater=updater)) as url:
            open_app(page, url)
            page.get_by_role("tab", name="Articles").click()
            page.locator("#rag-articles .rag-table").wait_for()
            pdf = DATA / "seed-article.pdf"
            (cfg.source / "report.pdf").write_bytes(pdf.read_bytes()[:5000])  # cut short
            page.wait_for_function("() => (document.querySelector('#rag-index-status') || {})"
                                   ".innerText.includes('report.pdf skipped: damaged PDF')")
            assert "1 item was not indexed" in page.locator("#rag-index-status").inner_text()
            shot(page, "25-watched-damaged-pdf-skipped", full_page=False)
    finally:
        updater.stop()


ARABIC = ("متحف المدينة\n\n"
          "افتتح متحف المدينة عام 1901 في وسط البلدة القديمة. "
          "أسست المتحف الرسامة آدا فوس بعد عودتها من باريس. "
          "يضم المتحف أربعة آلاف لوحة ومكتبة كبيرة من الخرائط.")


def test_an_arabic_answer_reads_right_to_left(page, tmp_path):
    """Issue 27: a quote and its passage in a right-to-left script are laid out right to
    left (dir="auto"), titles are isolated (<bdi>), and the Articles tab counts the
    article's language. The fake embedder: this is about layout, not about models."""
    import rag
    from rag.config import Config

    SHOTS.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "articles"
    src.mkdir()
    (src / "museum-ar.txt").write_text(ARABIC, encoding="utf-8")
    cfg = Config(source=src, index_dir=tmp_path / "index", model="fake", selector=False,
                 abstain_threshold=0.0)
    rag.build(config=cfg)
    with BackgroundServer(create_app(cfg)) as url:
        open_app(page, url)
        ask(page, "من أسس المتحف؟")
        quote = page.locator(".rag-answer-quote")
        assert quote.get_attribute("dir") == "auto"
        assert quote.evaluate("e => getComputedStyle(e).direction") == "rtl"
        passage = page.locator("#rag-citations .rag-passage").first
        assert passage.evaluate("e => getComputedStyle(e).direction") == "rtl"
        assert page.locator(".rag-answer-quote mark").inner_text() in ARABIC
        viewer = page.locator(".rag-article-text").first
        viewer.wait_for()
        assert viewer.evaluate("e => getComputedStyle(e).direction") == "rtl"
        shot(page, "rtl-answer")
        page.get_by_role("tab", name="Articles").click()
        status = page.locator("#rag-index-status .rag-status")
        status.wait_for()
        assert "languages: ar 1" in status.inner_text()
        shot(page, "rtl-articles-tab")
