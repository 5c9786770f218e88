"""Security: untrusted article text and questions never act as code.

* Nothing is loaded with pickle: the source has no pickle/joblib/marshal/eval, every
  ``np.load`` says ``allow_pickle=False``, and a build plus ``ask`` run with pickle
  disabled; the loader refuses index files that are not what their segment's manifest
  says (size, checksum, dtype, shape, a pickle-bearing ``.npy`` that would run code).
* HTML: article text, titles, urls and questions with ``<script>``, ``<img onerror>``,
  ``javascript:`` links, Markdown links and entities come out of every renderer as text;
  and in a real browser (headless Chromium via Playwright) no script runs and the text is
  visible literally.
* The server binds to 127.0.0.1 by default and serves no files outside what Gradio needs
  (no articles, no index files, no path traversal); oversized or malformed requests are
  refused with 4xx.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import rag
from rag.app import render
from rag.answer.pipeline import forget_corpus
from rag.config import Config
from rag.index.store import read_manifest, read_segment
from rag.types import Answer, Article, Citation, IndexMismatch

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "rag").rglob("*.py"), ROOT / "app.py"])


# -- nothing that can execute code is loaded ---------------------------------------------

def _code_lines(path: Path):
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        code = line.split("#", 1)[0]
        if code.strip():
            yield n, code


def test_source_uses_no_pickle_or_code_loading():
    banned = re.compile(r"\b(import\s+(c?pickle|dill|joblib|shelve|marshal|cloudpickle)"
                        r"|from\s+(c?pickle|dill|joblib|shelve|marshal|cloudpickle)\s+import"
                        r"|pickle\.|joblib\.|marshal\.loads?|shelve\.open"
                        r"|allow_pickle\s*=\s*True|allow_dangerous_deserialization"
                        r"|trust_remote_code\s*=\s*True|share\s*=\s*True"
                        r"|yaml\.load\(|yaml\.unsafe_load)")
    bare_eval = re.compile(r"(?<![\w.])(eval|exec)\s*\(")
    found = [f"{p.name}:{n}: {code.strip()}" for p in SOURCES for n, code in _code_lines(p)
             if banned.search(code) or bare_eval.search(code)]
    assert found == []


def test_every_np_load_refuses_pickles_and_torch_load_is_weights_only():
    calls = []
    for p in SOURCES:
        text = p.read_text(encoding="utf-8")
        for m in re.finditer(r"\b(np|numpy)\.load\(|\btorch\.load\(", text):
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            calls.append((p.name, text[m.start():i]))
    assert calls, "expected the index loader to use np.load"
    for name, call in calls:
        if "torch.load" in call:
            assert "weights_only=True" in call, (name, call)
        else:
            assert "allow_pickle=False" in call, (name, call)


@pytest.fixture
def no_pickle(monkeypatch):
    """pickle made unusable for loading: any use fails the test."""
    import pickle

    used = []

    def refuse(*args, **kwargs):
        used.append(args[:1])
        raise AssertionError("something tried to unpickle")

    class Refuse(pickle.Unpickler):
        def __init__(self, *args, **kwargs):
            refuse(*args)

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", Refuse)
    return used


def test_build_and_ask_never_unpickle(cfg, fake_embedder, no_pickle):
    (cfg.source / "a.txt").write_text("Solar power\n\nSpain installed record solar capacity "
                                      "in 2023. Panels supply a fifth of demand.")
    rag.build(config=cfg)
    forget_corpus(cfg.index_dir)
    a = rag.ask("How much of demand do panels supply?", config=cfg)
    assert a.citations and no_pickle == []
    (cfg.source / "b.txt").write_text("Chess\n\nGukesh won the final game.")
    rag.build(config=cfg)  # incremental: reads the previous version back
    assert no_pickle == []


# -- the loader refuses files that are not what the manifest says ---------------------------

class _Payload:
    """Unpickling this creates a folder: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def built(cfg, fake_embedder):
    (cfg.source / "a.txt").write_text("Solar power\n\nSpain installed record solar capacity "
                                      "in 2023. Panels supply a fifth of demand.")
    (cfg.source / "b.txt").write_text("Chess\n\nGukesh won the final game in Singapore.")
    rag.build(config=cfg)
    return cfg


def segment_path(index_dir: Path) -> Path:
    """The folder of the live version's one segment (a fresh build writes exactly one):
    where the index files are."""
    _, manifest = read_manifest(index_dir)
    [entry] = manifest["segments"]
    path = Path(index_dir) / "segments" / entry["name"]
    assert (path / "chunks.npy").is_file(), path
    return path


def replace_consistently(cfg: Config, name: str, writer) -> None:
    """Replace an index file of the live segment AND update the segment's manifest to
    match (size and sha256), as an attacker with write access to the folder could: only
    the content checks remain."""
    path, manifest = read_segment(cfg.index_dir, segment_path(cfg.index_dir).name)
    assert name in manifest["files"], name
    f = path / name
    f.unlink()
    writer(f)
    data = f.read_bytes()
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (path / "manifest.json").write_text(json.dumps(manifest))
    read_segment(cfg.index_dir, path.name)  # the checksums pass: only content checks left
    forget_corpus(cfg.index_dir)


def test_loader_refuses_a_file_of_another_size(built):
    path = segment_path(built.index_dir)
    with open(path / "chunk_vectors.npy", "ab") as f:
        f.write(b"\0" * 64)
    forget_corpus(built.index_dir)
    with pytest.raises(IndexMismatch, match="chunk_vectors.npy has .* bytes, the manifest says"):
        rag.ask("solar", config=built)


def test_loader_refuses_a_same_size_file_with_other_bytes(built):
    path = segment_path(built.index_dir)
    arr = np.load(path / "chunks.npy", allow_pickle=False)
    arr = arr.copy()
    arr[:, 1:3] = 0  # offsets changed, size unchanged
    np.save(path / "chunks.npy", arr, allow_pickle=False)
    forget_corpus(built.index_dir)
    with pytest.raises(IndexMismatch, match="chunks.npy .*does not match the checksum"):
        rag.ask("solar", config=built)


@pytest.mark.parametrize("name, make, says", [
    ("chunks.npy", lambda n, d: np.zeros((n, 5), np.float64), "expected .* int32"),
    ("chunks.npy", lambda n, d: np.zeros((n, 4), np.int32), r"expected \(\*, 5\)"),
    ("chunks.npy", lambda n, d: np.zeros((n,), np.int32), "has shape"),
    ("chunk_vectors.npy", lambda n, d: np.zeros((n, d + 1), np.float32), "has shape"),
    ("sentence_vectors.npy", lambda n, d: np.zeros((n, d), np.float64), "float16"),
    ("chunk_vectors.npy", lambda n, d: np.zeros((n + 1, d), np.float32), "inconsistent"),
])
def test_loader_refuses_wrong_dtype_or_shape(built, name, make, says):
    _, manifest = read_segment(built.index_dir, segment_path(built.index_dir).name)
    n, dim = manifest["counts"]["chunks"], manifest["dim"]
    replace_consistently(built, name, lambda f: np.save(f, make(n, dim), allow_pickle=False))
    with pytest.raises(IndexMismatch, match=says) as info:
        rag.ask("solar", config=built)
    assert "--rebuild" in str(info.value)


@pytest.mark.parametrize("name", ["chunks.npy", "terms/indptr.npy", "terms/lengths.npy"])
def test_a_garbled_npy_header_is_a_damaged_index_not_a_crash(built, name):
    """numpy parses the header with ast: a garbled one raises tokenize's TokenError."""
    replace_consistently(built, name, lambda f: f.write_bytes(
        b"\x93NUMPY\x01\x00\x20\x00{'descr': '<i4', " + bytes(64)))
    with pytest.raises(IndexMismatch, match="is damaged.*--rebuild"):
        rag.ask("solar", config=built)


@pytest.mark.parametrize("name", ["chunks.npy", "sentences.npy", "chunk_vectors.npy",
                                  "sentence_vectors.npy", "terms/indptr.npy", "terms/docs.npy",
                                  "terms/tf.npy", "terms/lengths.npy"])
def test_pickle_bearing_npy_is_refused_and_never_runs(built, tmp_path, name):
    marker = tmp_path / "code-ran"
    payload = np.array([_Payload(marker), 1], dtype=object)
    replace_consistently(built, name, lambda f: np.save(f, payload, allow_pickle=True))
    with pytest.raises(IndexMismatch, match="--rebuild"):
        rag.ask("solar", config=built)
    assert not marker.exists()
    # as the message says: a rebuild replaces the bad segment (a plain build reads only
    # the manifests, which the attacker made consistent, and finds nothing changed)
    assert rag.build(config=built, rebuild=True).wrote
    assert rag.ask("Who won the final game?", config=built).citations
    assert not marker.exists()


@pytest.mark.parametrize("name, data, says", [
    ("vectors.faiss", os.urandom(256), "vectors.faiss"),
    ("articles.sqlite", b"SQLite format 3\0" + os.urandom(512), "articles.sqlite"),
    ("terms/vocab.json", b"[not json", "keyword index"),
    ("terms/vocab.json", b'{"k1": 1.5}', "keyword index"),
    ("terms/docs.npy", lambda f: np.save(f, np.zeros(3, np.int32), allow_pickle=False),
     "keyword index .*postings do not match the vocabulary"),
    ("terms/lengths.npy", lambda f: np.save(f, np.zeros(99, np.int32), allow_pickle=False),
     r"inconsistent \(terms\)"),
])
def test_other_foreign_files_are_refused(built, name, data, says):
    replace_consistently(built, name, data if callable(data) else lambda f: f.write_bytes(data))
    with pytest.raises(IndexMismatch, match=says) as info:
        rag.ask("solar", config=built)
    assert "--rebuild" in str(info.value)


# -- HTML: shown as text, never run -----------------------------------------------------------

EVIL = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    "<svg onload=window.__xss=3>",
    '<a href="javascript:window.__xss=4">click</a>',
    "[click me](javascript:window.__xss=5)",
    "![img](x onerror=window.__xss=6)",
    "&lt;b&gt;entity&lt;/b&gt; &amp; &#60;script&#62; &quot;",
    '"><iframe src=javascript:window.__xss=7>',
    "</mark></div><script>window.__xss=8</script>",
    "' onmouseover='window.__xss=9",
]
SAFE_TAGS = {"div", "span", "p", "mark", "sup", "a", "article", "header", "section", "h3",
             "table", "thead", "tbody", "tr", "th", "td", "b",
             "bdi"}  # isolates a title's direction (right-to-left scripts)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v or "") for k, v in attrs)

    def handle_data(self, data):
        self.text.append(data)


def assert_inert(markup: str, *literal: str) -> None:
    """Only harmless tags and attributes, no event handlers or script links; and each
    ``literal`` appears in the displayed text exactly."""
    p = _Tags()
    p.feed(markup)
    p.close()
    assert set(p.tags) <= SAFE_TAGS, set(p.tags) - SAFE_TAGS
    for tag, key, value in p.attrs:
        assert not key.startswith("on"), (tag, key, value)
        assert key in {"class", "id", "href", "target", "rel", "title", "style", "role",
                       "data-n", "data-article-id", "data-copy", "dir"}, key
        if key == "dir":  # the browser picks the direction from the text, never ours
            assert value == "auto", value
        if key == "href":
            assert value.startswith(("http://", "https://")), value
        if key == "style":
            assert re.fullmatch(r"width:\d+%", value), value
    shown = "".join(p.text)
    for text in literal:
        assert text in shown, (text, shown[:300])


def _evil_answer() -> tuple[Answer, Article]:
    text = "Title " + EVIL[0] + "\n\n" + " ".join(f"Sentence {i}: {e}." for i, e in
                                                  enumerate(EVIL))
    s = text.index("Sentence 1")
    e = text.index("Sentence 2")
    art = Article(id='x"><script>1</script>.txt', title="<img src=x onerror=alert(1)>",
                  text=text, source="javascript:alert(2)", url="javascript:alert(3)",
                  published="<b>2025</b>")
    cite = Citation(n=1, article_id=art.id, title=art.title, source=art.source, start=s,
                    end=e, quote=text[s:e], passage=text, passage_start=0,
                    passage_end=len(text), score=0.9, url=art.url, published=art.published)
    near = Citation(**{**cite.__dict__, "n": 2, "answers": False,
                       "url": "JaVaScRiPt:alert(4)"})
    ans = Answer(question="<script>q()</script> [x](javascript:y) &amp;", text=text[s:e],
                 abstained=False, score=0.9, citations=(cite, near), article_id=art.id,
                 start=s, end=e, message="note <img src=z onerror=alert(5)>")
    return ans, art


def test_every_renderer_escapes_untrusted_text():
    ans, art = _evil_answer()
    assert_inert(render.render_answer(ans), EVIL[1], "note <img src=z onerror=alert(5)>")
    assert_inert(render.render_citations(ans), *EVIL, "<img src=x onerror=alert(1)>",
                 "javascript:alert(2)", "<b>2025</b>")
    assert_inert(render.render_article(art, ans.citations[0]), *EVIL)
    assert_inert(render.render_article(art), *EVIL)
    assert_inert(render.render_article_list([{"id": art.id, "title": art.title,
                                              "source": art.source, "url": art.url,
                                              "published": art.published, "chunks": 1}],
                                            query="<script>"))
    assert_inert(render.render_error("bad question <script>x()</script>"),
                 "bad question <script>x()</script>")
    abstained = Answer(**{**ans.__dict__, "abstained": True, "text": "",
                          "message": "<script>m()</script>"})
    assert_inert(render.render_answer(abstained), "<script>m()</script>")
    assert "javascript:" not in "".join(
        re.findall(r'href="([^"]*)"', render.render_citations(ans))).lower()


def test_renderers_fail_if_escaping_is_removed(monkeypatch):
    """The check above is able to fail: without escaping the same input is caught."""
    ans, _ = _evil_answer()
    monkeypatch.setattr(render, "esc", lambda t: "" if t is None else str(t))
    with pytest.raises(AssertionError):
        assert_inert(render.render_answer(ans))


# -- the server ------------------------------------------------------------------------------

def test_default_bind_address_is_loopback(monkeypatch):
    for key in ("GRADIO_SERVER_NAME", "RAG_HOST"):
        monkeypatch.delenv(key, raising=False)
    assert Config().host == "127.0.0.1" and Config.from_env({}).host == "127.0.0.1"
    assert Config.from_env({"GRADIO_SERVER_NAME": "0.0.0.0"}).host == "0.0.0.0"  # asked for


def test_served_app_listens_on_loopback_only(monkeypatch, tmp_path):
    import uvicorn

    from rag.app import web

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    monkeypatch.setattr(web, "create_app", lambda cfg, **kw: object())
    for key in ("GRADIO_SERVER_NAME", "RAG_HOST", "GRADIO_SERVER_PORT", "RAG_PORT"):
        monkeypatch.delenv(key, raising=False)
    assert web.main(["--no-build", "--index", str(tmp_path)]) == 0
    assert seen["host"] == "127.0.0.1"


MALICIOUS = {
    "id": "evil",
    "title": "Secret <img src=x onerror=\"window.__xss='title'\"> codes",
    "url": "javascript:window.__xss='url'",
    "text": ("The vault code is 4711 <img src=x onerror=\"window.__xss='img'\"> and it "
             "opens the vault.\n\nThe vault also hides <script>window.__xss='script'</script>"
             " a [vault link](javascript:window.__xss='md') &lt;b&gt;vault&lt;/b&gt; "
             "&amp; more <svg onload=\"window.__xss='svg'\"> vault."),
}


@pytest.fixture
def server(cfg, fake_embedder):
    """The web app on a free loopback port over a seeded malicious article."""
    from rag.app.web import BackgroundServer, create_app

    (cfg.source / "evil.jsonl").write_text(json.dumps(MALICIOUS) + "\n")
    (cfg.source / "plain.txt").write_text("Weather\n\nIt rained in Oslo on Monday.")
    rag.build(config=cfg)
    with BackgroundServer(create_app(cfg), host="127.0.0.1", port=0) as url:
        yield url, cfg


def test_no_files_outside_what_gradio_needs(server):
    import httpx

    url, cfg = server
    path, _ = read_manifest(cfg.index_dir)
    segment = segment_path(cfg.index_dir)
    secrets = [cfg.source / "plain.txt", cfg.source / "evil.jsonl", path / "manifest.json",
               segment / "manifest.json", segment / "articles.sqlite",
               segment / "terms" / "vocab.json", cfg.index_dir / "CURRENT",
               Path("/etc/passwd"), Path(__file__)]
    tried = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        for secret in secrets:
            for route in ("/file={}", "/gradio_api/file={}", "/file/{}", "/gradio_api/file/{}",
                          "/static/../../../../../..{}", "/assets/..%2f..%2f..%2f..{}",
                          "/gradio_api/file=..%2f..%2f..%2f..{}"):
                r = http.get(route.format(secret))
                tried += 1
                assert r.status_code in (400, 403, 404, 405), (route, secret, r.status_code)
                assert b"Oslo" not in r.content and b"root:" not in r.content
                assert b"vault" not in r.content
        # the page and the API work, so the refusals above are not just a dead server
        assert http.get("/").status_code == 200
        assert http.post("/api/ask", json={"question": "Where did it rain?"}).status_code == 200
    assert tried >= 40


def test_oversized_and_malformed_requests_get_4xx(server):
    import httpx

    url, _ = server
    with httpx.Client(base_url=url, timeout=60) as http:
        r = http.post("/api/ask", json={"question": "x" * 2_000_000})
        assert r.status_code == 413 and "too long" in r.json()["error"]
        for body, says in ((b"not json", "invalid request"),
                           (json.dumps({"question": 5}).encode(), "question"),
                           (json.dumps({"question": "rain", "k": 0}).encode(), "k must be"),
                           (json.dumps({"question": "rain", "k": 10**9}).encode(), "k must be"),
                           (json.dumps({"question": "<script>x</script>"}).encode(), None),
                           (json.dumps({"question": "   "}).encode(), "empty")):
            r = http.post("/api/ask", content=body, headers={"Content-Type": "application/json"})
            if says is None:  # HTML-looking but usable: answered, returned as data
                assert r.status_code == 200 and r.json()["question"] == "<script>x</script>"
                assert r.headers["content-type"].startswith("application/json")
                continue
            assert r.status_code == 400, (body, r.status_code, r.text)
            assert says in r.json()["error"] and "Traceback" not in r.text


@pytest.mark.browser
def test_browser_shows_malicious_article_as_text_and_runs_no_script(server):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed (scripts/test installs it)")
    from playwright.sync_api import sync_playwright

    url, cfg = server
    question = "What is the vault code? <img src=q onerror=\"window.__xss='question'\">"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox"])
        try:
            page = browser.new_page()
            dialogs = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="load")
            box = page.locator("#rag-question textarea, #rag-question input").first
            box.wait_for(timeout=60_000)
            box.fill(question)
            box.press("Enter")
            page.wait_for_function(
                "() => (document.querySelector('#rag-viewer') || {}).innerText"
                "?.includes('4711')", timeout=60_000)
            page.wait_for_timeout(300)  # let any injected handler fire if it could
            state = page.evaluate("""() => ({
                xss: window.__xss,
                answer: document.querySelector('#rag-answer').innerText,
                cites: document.querySelector('#rag-citations').innerText,
                viewer: document.querySelector('#rag-viewer').innerText,
                imgs: document.querySelectorAll(
                    '#rag-answer img, #rag-citations img, #rag-viewer img').length,
                svgs: document.querySelectorAll('#rag-viewer svg, #rag-citations svg').length,
                scripts: document.querySelectorAll(
                    '#rag-answer script, #rag-citations script, #rag-viewer script').length,
                jsLinks: [...document.querySelectorAll('a[href]')]
                    .filter(a => a.href.trim().toLowerCase().startsWith('javascript:')).length,
            })""")
        finally:
            browser.close()
    assert state["xss"] is None and dialogs == []
    assert state["imgs"] == 0 and state["scripts"] == 0 and state["svgs"] == 0
    assert state["jsLinks"] == 0
    # the article's markup is visible literally, as the article says it
    shown = state["answer"] + state["cites"] + state["viewer"]
    for literal in ("<img src=x onerror=\"window.__xss='img'\">",
                    "<script>window.__xss='script'</script>",
                    "[vault link](javascript:window.__xss='md')",
                    "&lt;b&gt;vault&lt;/b&gt; &amp; more",
                    "Secret <img src=x onerror=\"window.__xss='title'\"> codes"):
        assert literal in shown, literal
    assert "4711" in state["answer"] + state["cites"]
