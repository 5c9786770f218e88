"""The web layer: HTML rendering (escaping, marks from offsets), article management
(upload checks, removal, failed changes leave the index as it was), the REST API's
errors, and a real server on a free port answering via httpx and gradio_client."""

from __future__ import annotations

import json
import re

import httpx
import pytest

import rag
from rag.app import render
from rag.app.library import Library, sanitize_filename
from rag.index.store import current_version
from rag.types import Answer, Article, Citation
from rag.app.web import BackgroundServer, create_app

ART = ("Solar power in Spain\n\nSpain installed record solar capacity in 2023. "
       "The grid operator said panels now supply a fifth of demand.")
ART2 = ("Chess final\n\nThe match in Singapore ended after fourteen games. "
        "Gukesh won the final game.")


def cite(passage, ps, s, e, **kw):
    return Citation(n=kw.pop("n", 1), article_id="a.txt", title=kw.pop("title", "T"),
                    source="a.txt", start=s, end=e, quote=passage[s - ps:e - ps],
                    passage=passage, passage_start=ps, passage_end=ps + len(passage),
                    score=0.5, **kw)


# -- rendering ------------------------------------------------------------------

def test_highlight_escapes_text_and_marks_the_offsets():
    text = 'a <script>x</script> & "the <b>quote</b>" end'
    s = text.index("the")
    e = text.index('"', s)
    out = render.highlight(text, s, e, mark_id="h")
    assert "<script>" not in out and "<b>" not in out
    assert '<mark class="rag-quote" id="h">the &lt;b&gt;quote&lt;/b&gt;</mark>' in out
    assert out.startswith("a &lt;script&gt;") and out.endswith("&quot; end")


def test_highlight_with_offsets_outside_the_text_marks_nothing():
    assert "<mark" not in render.highlight("short", 2, 99)
    assert "<mark" not in render.highlight("short", 3, 2)


def test_citation_marks_the_stored_occurrence_not_the_first_match():
    passage = "Prices rose. Then prices fell. Prices rose."
    second = passage.rindex("Prices rose.")
    c = cite(passage, 100, 100 + second, 100 + second + len("Prices rose."))
    html = render.render_citation(c)
    before, marked = html.split('<mark class="rag-quote">', 1)
    assert marked.startswith("Prices rose.</mark>")
    assert before.endswith("Prices rose. Then prices fell. ")


def test_citation_card_escapes_title_and_rejects_script_urls():
    c = cite("x <i>y</i>", 0, 0, 1, title="<img src=x onerror=alert(1)>",
             url="javascript:alert(1)", published="2025-01-27", answers=False)
    html = render.render_citation(c)
    assert "<img" not in html and "<i>" not in html and "javascript:" not in html
    assert "2025-01-27" in html and "does not answer" in html and "rag-card-na" in html
    ok = render.render_citation(cite("abc", 0, 0, 1, url="https://example.org/a?b=1&c=2"))
    assert 'href="https://example.org/a?b=1&amp;c=2"' in ok


def test_article_viewer_marks_quote_and_notes_a_changed_article():
    text = "One. Two <b>bold</b>. Three."
    s = text.index("Two")
    e = text.index(" Three")
    art = Article(id="a.txt", title="A & B", text=text, source="a.txt")
    c = cite(text, 0, s, e, n=2)
    html = render.render_article(art, c)
    assert f'id="{render.HIGHLIGHT_ID}">Two &lt;b&gt;bold&lt;/b&gt;.</mark>' in html
    assert "A &amp; B" in html and "[2]" in html
    changed = Article(id="a.txt", title="A", text="Zero. " + text, source="a.txt")
    html2 = render.render_article(changed, c)
    assert "<mark" not in html2 and "has changed" in html2


def test_answer_found_and_not_found_states():
    c = cite("Quote <here>. More.", 0, 0, 13)
    found = Answer(question="q", text=c.quote, abstained=False, score=0.8, citations=(c,))
    html = render.render_answer(found)
    assert "rag-found" in html and "Quote &lt;here&gt;." in html and "[1]" in html
    assert 'data-copy="“Quote &lt;here&gt;.” [1]\n[1] T — a.txt"' in html
    na = Answer(question="q", text="", abstained=True, score=0.1, message="No answer.",
                citations=(cite("x", 0, 0, 1, answers=False),))
    html = render.render_answer(na)
    assert "Not found in the articles" in html and "none of them answers it" in html
    assert "Nearest passages" in render.render_citations(na)


def test_article_list_is_escaped_and_filtered():
    rows = [{"id": "a", "title": "<b>Solar</b>", "source": "a.txt", "published": None,
             "chunks": 3},
            {"id": "b", "title": "Chess", "source": "b.md", "published": "2024", "chunks": 1}]
    html = render.render_article_list(rows, "sol")
    assert "&lt;b&gt;Solar" in html and "Chess" not in html and "1 of 2 articles" in html


@pytest.mark.parametrize("name,expected", [
    ("../../etc/passwd.txt", "passwd.txt"),
    ("..\\..\\win.MD", "win.md"),
    (".hidden.txt", "hidden.txt"),
    ("weird name!*.TXT", "weird_name.txt"),
    ("café/ünï.json", "uni.json"),
    ("", "upload"),
    ("...", "upload"),
])
def test_sanitize_filename(name, expected):
    assert sanitize_filename(name) == expected


# -- article management (fake model) --------------------------------------------------

@pytest.fixture
def lib(cfg, fake_embedder, tmp_path):
    (cfg.source / "a.txt").write_text(ART, encoding="utf-8")
    rag.build(config=cfg)
    return Library(cfg)


def upload(tmp_path, name, data):
    """(path of the uploaded bytes, the file name the browser sent)."""
    folder = tmp_path / "uploads"
    folder.mkdir(exist_ok=True)
    p = folder / f"u{len(list(folder.iterdir()))}"
    p.write_bytes(data)
    return str(p), name


def test_upload_adds_an_article_and_removal_drops_it(lib, tmp_path):
    r = lib.add([upload(tmp_path, "../chess final.txt", ART2.encode())])
    assert r.ok and r.saved == ("chess_final.txt",), r.message
    assert (lib.cfg.source / "chess_final.txt").is_file()
    assert {a["id"] for a in lib.articles()} == {"a.txt", "chess_final.txt"}
    again = lib.add([upload(tmp_path, "chess final.txt", ART2.encode() + b" Later.")])
    assert again.saved == ("chess_final-2.txt",)
    assert lib.remove("chess_final.txt").ok and lib.remove("chess_final-2.txt").ok
    assert [a["id"] for a in lib.articles()] == ["a.txt"]
    assert not (lib.cfg.source / "chess_final.txt").exists()


@pytest.mark.parametrize("name,data,why", [
    ("evil.exe", b"MZ", "only .txt"),
    ("empty.txt", b"   \n", "no article could be read"),
    ("big.txt", b"x" * 5000, "over the limit"),
    ("bad.json", b"{not json", "no article could be read"),
])
def test_rejected_upload_leaves_folder_and_index_as_they_were(lib, tmp_path, name, data, why):
    lib.cfg = lib.cfg.replace(max_upload_bytes=4000)
    before = (sorted(p.name for p in lib.cfg.source.iterdir()),
              current_version(lib.cfg.index_dir))
    r = lib.add([upload(tmp_path, name, data)])
    assert not r.ok and why in r.message and "Nothing was added" in r.message
    assert (sorted(p.name for p in lib.cfg.source.iterdir()),
            current_version(lib.cfg.index_dir)) == before


def test_failed_build_undoes_the_upload(lib, tmp_path, monkeypatch):
    version = current_version(lib.cfg.index_dir)

    def boom(*a, **k):
        raise rag.BuildError("disk full")

    monkeypatch.setattr(lib, "_build", boom)
    r = lib.add([upload(tmp_path, "c.txt", ART2.encode())])
    assert not r.ok and "undone" in r.message and "disk full" in r.message
    assert not (lib.cfg.source / "c.txt").exists()
    assert current_version(lib.cfg.index_dir) == version


def test_removal_refuses_paths_outside_and_keeps_the_last_article(lib):
    outside = lib.cfg.source.parent / "outside.txt"
    outside.write_text(ART2, encoding="utf-8")
    assert not lib.remove("../outside.txt").ok and outside.exists()
    r = lib.remove("a.txt")
    assert not r.ok and "at least one article" in r.message
    assert (lib.cfg.source / "a.txt").read_text(encoding="utf-8") == ART


# -- the REST API's errors (fake model, in-process client) ---------------------------

def test_api_errors_are_json_with_4xx(cfg, fake_embedder):
    from fastapi.testclient import TestClient

    with TestClient(create_app(cfg), base_url="http://127.0.0.1",
                    client=("127.0.0.1", 50000)) as client:
        r = client.post("/api/ask", json={"question": "Where is the solar power?"})
        assert r.status_code == 503 and "no index" in r.json()["error"]
        (cfg.source / "a.txt").write_text(ART, encoding="utf-8")
        rag.build(config=cfg)
        assert client.post("/api/ask", json={"question": " ?! "}).status_code == 400
        r = client.post("/api/ask", json={"question": "solar", "k": 0})
        assert r.status_code == 400 and "k must be" in r.json()["error"]
        r = client.post("/api/ask", content=b"not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "error" in r.json()
        limit = cfg.max_question_chars
        long_q = ("Where was solar capacity installed? " * 100)[:limit + 1]
        says = f"the question is too long ({limit + 1:,} characters; at most {limit:,})"
        for route, field in (("/api/ask", "question"), ("/api/search", "query")):
            r = client.post(route, json={field: long_q})
            assert r.status_code == 413 and r.json()["error"] == says, r.text
            assert client.post(route, json={field: long_q[:limit]}).status_code == 200
        ok = client.post("/api/ask", json={"question": "Where was solar capacity installed?",
                                           "k": 2, "retrieval": "keyword"})
        assert ok.status_code == 200 and ok.json()["citations"][0]["article_id"] == "a.txt"
        # the response is the Answer of rag.ask, field for field
        same = json.loads(rag.ask("Where was solar capacity installed?", k=2, config=cfg,
                                  retrieval="keyword").to_json())
        assert {**ok.json(), "timings_ms": {}} == {**same, "timings_ms": {}}
        # the schema is declared once, by the rag.types dataclasses
        spec = client.get("/api/openapi.json").json()
        schemas = spec["components"]["schemas"]
        assert "/api/ask" in spec["paths"] and {"Answer", "Citation"} <= set(schemas)
        assert set(schemas["Answer"]["properties"]) == set(Answer.__dataclass_fields__)
        assert "empty when abstained" in schemas["Answer"]["properties"]["text"]["description"]
        assert schemas["AskRequest"]["properties"]["retrieval"]["anyOf"][0]["enum"] == \
            ["hybrid", "dense", "keyword"]


# -- a real server with the real model ---------------------------------------------

@pytest.fixture(scope="module")
def server(seed_index):
    with BackgroundServer(create_app(seed_index)) as url:
        yield url, seed_index


@pytest.mark.model
def test_server_answers_via_http_and_gradio_client(server):
    from gradio_client import Client

    url, cfg = server
    q = "How much did it cost to train R1?"
    r = httpx.post(f"{url}/api/ask", json={"question": q, "k": 3}, timeout=120)
    assert r.status_code == 200
    data = r.json()
    assert data["question"] == q and 1 <= len(data["citations"]) <= 3
    text = Library(cfg).article(data["citations"][0]["article_id"]).text
    for c in data["citations"]:
        assert Library(cfg).article(c["article_id"]).text[c["start"]:c["end"]] == c["quote"]
    assert "$5.6 million" in " ".join(c["quote"] for c in data["citations"])
    if not data["abstained"]:
        assert data["text"] in text and data["text"] == data["citations"][0]["quote"]
    via_client = Client(url, verbose=False).predict(q, 3, "hybrid", api_name="/answer")
    strip = lambda d: {k: v for k, v in d.items() if k != "timings_ms"}  # noqa: E731
    assert strip(via_client) == strip(data)


@pytest.mark.model
def test_server_does_not_serve_article_or_index_files(server):
    url, cfg = server
    seed = next(cfg.source.iterdir()).resolve()
    manifest = next(cfg.index_dir.glob("v*/manifest.json")).resolve()
    for path in (seed, manifest):
        for route in (f"/gradio_api/file={path}", f"/file={path}"):
            r = httpx.get(url + route, timeout=30)
            assert r.status_code in (403, 404), route


def test_nearest_passages_are_marked_differently_from_answers():
    yes = render.render_citation(cite("Alpha. Beta.", 0, 0, 6))
    no = render.render_citation(cite("Alpha. Beta.", 0, 0, 6, answers=False))
    assert '<mark class="rag-quote">Alpha.</mark>' in yes
    assert '<mark class="rag-quote rag-near">Alpha.</mark>' in no


def test_ui_messages_for_errors_a_person_can_fix():
    from rag.app.errors import message_for

    assert "no index yet" in message_for(rag.IndexMissing("no index in x")).lower()
    assert "rebuilt" in message_for(rag.IndexMismatch("built with model 'fake'"))
    assert message_for(rag.InvalidQuestion("it is empty")).startswith("Please check")


def test_one_error_table_subclasses_first_and_every_rag_error_has_a_row():
    """Issue 25, item 4: REST, MCP and the UI read one table (rag/app/errors.py)."""
    from rag.app.errors import ERRORS, FAILED, error_kind
    from rag.types import QuestionTooLong

    classes = [cls for cls, _ in ERRORS]
    for i, cls in enumerate(classes):  # no row is shadowed by an earlier base class
        assert not any(issubclass(cls, earlier) for earlier in classes[:i]), cls
    assert error_kind(QuestionTooLong.of(3000, 2000)).code == "too_large"
    assert error_kind(rag.InvalidQuestion("x")).status == 400
    assert error_kind(rag.ArticleNotFound("x")).status == 404
    assert error_kind(RuntimeError("x")) is FAILED
    public = [rag.InvalidQuestion, rag.ArticleNotFound, rag.IndexMissing, rag.IndexMismatch]
    assert all(error_kind(cls("x")) is not FAILED for cls in public)


def test_the_ui_refuses_a_question_over_the_one_limit_with_its_message(cfg, fake_embedder):
    import gradio as gr

    from rag.app.ui import create_blocks

    (cfg.source / "a.txt").write_text(ART, encoding="utf-8")
    rag.build(config=cfg)
    demo = create_blocks(cfg)
    fns = {f.fn.__name__: f.fn for f in demo.fns.values() if f.fn is not None}
    limit = cfg.max_question_chars
    question = ("Where was solar capacity installed? " * 100)[:limit + 1]
    says = f"the question is too long ({limit + 1:,} characters; at most {limit:,})"
    html = fns["on_ask"](question, 3, "hybrid")[0]
    assert f"Please check the question: {says}." in html
    assert "a.txt" in str(fns["on_ask"](question[:limit], 3, "hybrid")[2])
    with pytest.raises(gr.Error, match=re.escape(says)):  # the UI's /answer client API
        fns["answer_api"](question, 3, "hybrid")
    # the question box does not cut a paste short: the message above says why
    box = next(b for b in demo.blocks.values() if getattr(b, "elem_id", "") == "rag-question")
    assert box.max_length is None


def test_relative_time_in_a_quote_is_placed_at_the_published_date():
    passage = "The unveiling of R1, which happened last year, caught everyone by surprise."
    c = cite(passage, 0, 0, len(passage), published="2025-01-27")
    card = render.render_citation(c)
    assert "“last year” here is relative to 2025-01-27" in card
    assert "relative to" not in render.render_citation(cite(passage, 0, 0, len(passage)))
    plain = cite("Prices rose in 2023.", 0, 0, 20, published="2025-01-27")
    assert "relative to" not in render.render_citation(plain)
    a = Answer(question="q", text=passage, abstained=False, score=0.9, citations=(c,))
    assert "“last year” here is relative to 2025-01-27" in render.render_answer(a)
