"""The Ask tab's examples (rag.app.examples) and the Articles tab (paging, search,
authors, copy markers, feeds, messages), on a 64-article index of real news and
encyclopedia text built with the fake embedder. The browser check is in
tests/app/test_browser.py (test_articles_tab_at_64_articles)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rag
from rag.app import examples, render
from rag.app.library import Library
from rag.config import Config
from tests.conftest import DATA, STEELWORKS

AUTHORS = ("Ana Lima", "Tom Reyes", "Mei Chen")
DEEPSEEK = ("How much did it cost to train R1?", "Who founded DeepSeek?",
            "What did Marc Andreessen call DeepSeek R1?", "Which AI models is R1 compared with?")


def write_corpus(src: Path) -> None:
    """64 articles: 62 paragraphs of 14 Wikipedia articles (tests/data/wiki_sample.jsonl;
    each paragraph an article under its article's title, dated a day apart, every third
    with an author) and a council story with a syndicated copy (a folded copy)."""
    from datetime import date, timedelta

    src.mkdir(parents=True, exist_ok=True)
    records = []
    for r in (json.loads(x) for x in (DATA / "wiki_sample.jsonl").open(encoding="utf-8")):
        for k, para in enumerate(p for p in r["text"].split("\n\n") if p.strip()):
            i = len(records)
            records.append({"id": f"{r['id']}-{k + 1}", "title": r["title"],
                            "source": "Wikipedia", "text": para,
                            "published": str(date(2024, 1, 1) + timedelta(days=i)),
                            **({"author": AUTHORS[i // 3 % 3]} if i % 3 == 0 else {})})
    council = [{"id": "steelworks", "title": "Steelworks homes approved", "source": "Valley Post",
                "author": "Ana Lima", "published": "2025-03-04", "text": STEELWORKS},
               {"id": "steelworks-copy", "title": "Council backs homes on steelworks site",
                "source": "County Wire", "published": "2025-03-05",
                "text": STEELWORKS.rsplit(" The mayor", 1)[0]}]
    with (src / "articles.jsonl").open("w", encoding="utf-8") as f:
        for r in records[:62] + council:
            f.write(json.dumps(r) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Config:
    base = tmp_path_factory.mktemp("articles64")
    write_corpus(base / "articles")
    cfg = Config(source=base / "articles", index_dir=base / "index", model="fake",
                 chunk_tokens=120, chunk_overlap=10, abstain_threshold=0.0, selector=False)
    assert rag.build(config=cfg).articles == 64
    return cfg


# -- examples -----------------------------------------------------------------------------

def test_examples_are_made_from_the_titles_and_answered(corpus):
    asked = []

    def ask(q):
        asked.append(q)
        return rag.ask(q, config=corpus)

    got = examples.example_questions(corpus.replace(k=4), ask=ask)
    # newest first; the steelworks stories give none (a plain headline, and a copy)
    assert got == ["What do the articles say about Fresno, California?",
                   "What do the articles say about Islamism?",
                   "What do the articles say about Apollo program?",
                   "What do the articles say about Sky United Kingdom?"]
    assert not set(got) & set(DEEPSEEK)
    assert asked == got  # each shown was asked, and answered


def test_an_example_the_articles_do_not_answer_is_not_offered(corpus):
    class Abstains:
        abstained = True

    assert examples.example_questions(corpus.replace(k=3), ask=lambda q: Abstains()) == []


def test_a_curated_list_beside_the_articles_wins(corpus, tmp_path):
    cfg = corpus.replace(source=tmp_path)
    (tmp_path / examples.CURATED).write_text(
        "# questions for the demo\n\nWho sued 45 banks?\n  What did BMW recall? \n"
        "Who sued 45 banks?\n" + "x" * (cfg.max_question_chars + 1) + "?\n", encoding="utf-8")
    assert examples.example_questions(cfg) == ["Who sued 45 banks?", "What did BMW recall?"]
    (tmp_path / examples.CURATED).write_text("# none for now\n", encoding="utf-8")
    assert examples.example_questions(cfg) == []  # an empty list: show none


def test_title_questions():
    q = examples.question_from_title
    assert q("Chinese AI DeepSeek R1 disrupts tech industry") == \
        "What do the articles say about Chinese AI DeepSeek R1?"
    assert q("Tsunami 'to hit Sri Lanka banks'") == "What do the articles say about Sri Lanka?"
    assert q("BMW drives record sales in Asia") == "What do the articles say about BMW?"
    assert q("The Council of Europe meets in Paris") == \
        "What do the articles say about Council of Europe?"
    assert q("Why did Nvidia shares fall?") == "Why did Nvidia shares fall?"
    assert q("Kenya") == "What do the articles say about Kenya?"
    for none in ("Yukos unit buyer faces loan claim", "Singapore growth at 8.1% in 2004",
                 "Retail sales show festive fervour", ""):
        assert q(none) is None, none


def test_the_ui_hides_the_examples_without_an_index_and_shows_the_index_ones(corpus, tmp_path):
    from rag.app.ui import create_blocks

    def update(cfg):
        demo = create_blocks(cfg)
        fns = {f.fn.__name__: f.fn for f in demo.fns.values() if f.fn is not None}
        return fns["examples_update"]()

    row, *buttons = update(Config(source=tmp_path, index_dir=tmp_path / "none", model="fake"))
    assert row.visible is False and all(b.visible is False for b in buttons)
    row, *buttons = update(corpus)
    shown = [b.value for b in buttons if b.visible]
    assert row.visible is True and len(shown) == 4 and not set(shown) & set(DEEPSEEK)


# -- the Articles table ---------------------------------------------------------------------

def test_the_table_pages_searches_and_shows_authors_and_copies(corpus):
    rows = Library(corpus).articles()
    html, page = render.render_article_page(rows, "", 0, 20)
    assert page == 0 and html.count("<tr><td") == 20
    assert "1–20 of 64 articles · page 1 of 4" in html
    html, page = render.render_article_page(rows, "", 99, 20)  # past the end: the last page
    assert page == 3 and html.count("<tr><td") == 4 and "61–64 of 64 articles" in html
    assert "<th>Author</th>" in html and 'class="rag-author">Ana Lima<' in html
    assert ('Council backs homes on steelworks site <span class="rag-copy-mark" '
            'title="answers quote Steelworks homes approved">copy of Steelworks homes '
            'approved</span>') in html
    html, _ = render.render_article_page(rows, "mei chen", 0, 20)  # an author, any case
    n = sum(1 for r in rows if r.get("author") == "Mei Chen")
    assert n and html.count("<tr><td") == n and f"{n} of 64 articles" in html
    html, _ = render.render_article_page(rows, "nikola wikipedia", 0, 20)  # every word
    assert html.count("<tr><td") == 5
    html, _ = render.render_article_page(rows, "zorblax", 0, 20)
    assert "No article matches “zorblax” (64 articles)" in html


def test_an_action_empties_the_other_actions_messages(corpus, tmp_path):
    from rag.app.ui import create_blocks

    cfg = corpus.replace(source=tmp_path / "articles", index_dir=tmp_path / "index")
    write_corpus(cfg.source)
    (cfg.source / "ferry.txt").write_text(
        "Harbour ferries\n\nThe harbour ferry will add three night crossings from June.",
        encoding="utf-8")
    rag.build(config=cfg)
    demo = create_blocks(cfg)
    fns = {f.fn.__name__: f.fn for f in demo.fns.values() if f.fn is not None}
    _, upload, web, removed, feeds, table, page, *_ = fns["on_remove"]("ferry.txt", "")
    assert "Removed ferry.txt" in removed and (upload, web, feeds) == ("", "", "")
    assert "ferry" not in table.lower() and page == 0
    upload, web, removed, feeds, *_ = fns["on_unsubscribe"](None, False, "")
    assert "Choose a feed first." in feeds and (upload, web, removed) == ("", "", "")


def test_a_feed_is_unsubscribed_from_the_library_with_or_without_its_articles(cfg, site):
    from tests.ingest.test_fetch import feed_items, rss, serve_feed

    cfg = cfg.replace(fetch_allow_private=f"127.0.0.1:{site.port}")
    write_corpus(cfg.source)
    serve_feed(site, "/feed", rss(feed_items(site)[::2]), '"v1"')
    lib = Library(cfg)
    assert lib.add_web(feeds=[site.url("/feed")]).ok
    assert len(lib.articles()) == 66
    result = lib.remove_feed(site.url("/feed"))
    assert result.ok and result.message == ("Unsubscribed from Harbour News; its articles "
                                            "stay in the index.")
    assert lib.feeds() == [] and len(lib.articles()) == 66
    assert not lib.remove_feed(site.url("/feed")).ok  # not remembered any more
    assert lib.add_web(feeds=[site.url("/feed")]).ok
    result = lib.remove_feed(site.url("/feed"), delete_items=True)
    assert result.ok and result.message.startswith(
        "Unsubscribed from Harbour News and removed 2 articles. The index now holds 64")
    assert len(lib.articles()) == 64


def test_one_article_is_counted_in_the_singular():
    from rag.app import render

    row = {"id": "a.txt", "title": "A", "source": "a.txt", "chunks": 1}
    assert '<div class="rag-count">1 article</div>' in render.render_article_page([row], "", 0, 20)[0]
    assert render.render_status({"created": "2026-12-06T10:00:00", "articles": 1}).endswith(
        "· 1 article</div>")
    two = render.render_article_page([row, {**row, "id": "b.txt"}], "", 0, 20)[0]
    assert '<div class="rag-count">2 articles</div>' in two
