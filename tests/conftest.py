"""Shared fixtures for every test under tests/: a tiny deterministic fake embedder, configs
in tmp_path, the real bundled model's index of the seed articles, a local test site; and
the test tiers.

Layout: the tests mirror the package. tests/<subpackage>/ holds the tests of
rag/<subpackage>/ (ingest, embedding, index, answer, app, distributed, evaluation,
training); tests/security/ is the security suite (its own conftest); tests/ itself holds
the tests of the top-level modules (rag.open's handle) and the ones that cut across the
package (import layers, README examples, bad input, security, speed). tests/data/ holds
the committed test files (``DATA`` below). Every folder is a package (``tests.app.
test_web``), so two folders may hold test files of the same name; helpers are imported
as ``from tests.conftest import SEEDS`` (children started by a test import this file as
plain ``conftest`` from ``TESTS``, which registers the fake embedder there too).

Tiers, as pytest markers (pyproject.toml registers them); select with ``-m``:

- ``quick``: the fake embedder only: no real embedding model, no answer selector, no
  browser, no Ray. Set here on every test that is none of the three below, so it needs
  no marking by hand. ``./scripts/test -m quick`` (or ``python -m pytest -m quick``)
  runs these, in a few minutes.
- ``model``: runs the real bundled embedding model (all-MiniLM-L6-v2) or the shipped
  answer selector, in this process or in a child: every test that uses ``seed_index`` or
  ``writable_seed_index`` (set here), and the tests marked ``@pytest.mark.model`` (a
  ``Config`` without ``model="fake"`` or without ``selector=False`` where it asks).
- ``browser``: drives headless Chromium through Playwright (skipped without
  ``/usr/bin/chromium``); marked by hand.
- ``ray``: a local Ray cluster (skipped without the ``distributed`` extra); marked by
  hand (tests/distributed/).

A test may carry several (the browser tests on the seed index are ``browser`` and
``model``). ``-m "not browser and not ray"`` is everything but those; ``-m model`` the
real-model tests. A quick test that reaches the real embedding model or the selector
through ``get_embedder``/``get_selector`` fails, saying to mark it ``model``
(:func:`_quick_tests_load_no_real_model`).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from rag.embedding import model as embed  # noqa: E402
from rag.config import Config  # noqa: E402
from rag.ingest.fetch import FetchPolicy  # noqa: E402

TESTS = Path(__file__).resolve().parent  # tests/ (test modules live in its subfolders)
DATA = TESTS / "data"  # files committed for the tests
ROOT = TESTS.parent  # the repository
SEEDS = ROOT / "seeds"
SHARED = ROOT.parent / "shared"  # ../shared: corpora that may not be redistributed
_WORD = re.compile(r"\w+|[^\w\s]")


class FakeEmbedder:
    """Bag of hashed words -> unit vector. Deterministic, instant, and similar texts get
    similar vectors, which is all the unit tests need. Records what it embeds."""

    dim = 64
    max_tokens = 254
    model_id = "fake-hash-64"

    def __init__(self, threads: int = 0, batch_size: int = 32) -> None:
        self.embedded: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text))

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for w in re.findall(r"\w+", text.lower()):
            rng = np.random.default_rng(zlib.crc32(w.encode()))
            v += rng.standard_normal(self.dim).astype(np.float32)
        n = np.linalg.norm(v)
        if n == 0:
            v[0] = 1.0
            return v
        return v / n

    def embed_queries(self, texts):
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim))

    def embed_passages(self, texts, spans, progress=None):
        self.embedded.extend(texts)
        vecs = np.stack([self._vec(t) for t in texts]).astype(np.float32)
        svecs = [np.stack([self._vec(t[a:b]) for a, b in sp]).astype(np.float32)
                 if sp else np.zeros((0, self.dim), np.float32) for t, sp in zip(texts, spans)]
        if progress:
            progress(len(texts))
        return vecs, svecs


_FAKE = FakeEmbedder()
# One instance whatever the threads/batch/backend settings, so tests can see what it embedded.
embed.EMBEDDERS["fake"] = lambda **settings: _FAKE


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    _FAKE.embedded.clear()
    return _FAKE


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    """A config for the fake model, with its source and index under tmp_path. The fast
    path (no trained selector): these unit tests do not need a real model; the selector
    is tested with the real embedder (seed_index, tests/answer/test_selector.py)."""
    src = tmp_path / "articles"
    src.mkdir()
    return Config(source=src, index_dir=tmp_path / "index", model="fake",
                  chunk_tokens=40, chunk_overlap=5, abstain_threshold=0.0, selector=False)


def _build_seed_index(tmp_path_factory) -> Config:
    import rag

    base = tmp_path_factory.mktemp("seed")
    shutil.copytree(SEEDS, base / "seeds")
    cfg = Config(source=base / "seeds", index_dir=base / "index")
    rag.build(config=cfg)
    return cfg


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory) -> Config:
    """The real model's index of the seed articles (default Config: the real embedder and
    the selector), built once per run and shared by every module: read it only. A test
    that adds or removes articles (or rebuilds) uses ``writable_seed_index``."""
    return _build_seed_index(tmp_path_factory)


@pytest.fixture(scope="module")
def writable_seed_index(tmp_path_factory) -> Config:
    """Like ``seed_index``, but the module's own copy (built for the module), which its
    tests may change."""
    return _build_seed_index(tmp_path_factory)


# -- tiers (see the module docstring) ----------------------------------------------------

TIERS = ("model", "browser", "ray")
MODEL_FIXTURES = frozenset({"seed_index", "writable_seed_index"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if MODEL_FIXTURES.intersection(item.fixturenames) and not item.get_closest_marker("model"):
            item.add_marker(pytest.mark.model)
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(pytest.mark.quick)


@pytest.fixture(autouse=True)
def _quick_tests_load_no_real_model(request, monkeypatch):
    """In a ``quick`` test, asking for the real embedder or the answer selector (through
    ``get_embedder``/``get_selector``, fresh: their caches are emptied for the test)
    fails, naming the marker to add. Children and direct constructions are not seen."""
    if request.node.get_closest_marker("quick") is None:
        yield
        return
    from rag.answer import selector

    def refuse(what: str):
        def load(*args, **kwargs):
            raise RuntimeError(f"{request.node.nodeid} is in the quick tier but loads {what}: "
                               "mark it @pytest.mark.model (tests/conftest.py)")
        return load

    for name in [n for n in embed.EMBEDDERS if n != "fake"]:
        monkeypatch.setitem(embed.EMBEDDERS, name, refuse(f"the embedding model {name!r}"))
    monkeypatch.setattr(embed, "_cache", {})
    monkeypatch.setattr(selector, "_cache", {})
    monkeypatch.setattr(selector, "Selector", refuse("the answer selector"))
    yield


# -- a local test site -------------------------------------------------------------------

class Site:
    """Routes: path -> (status, headers, body) or a callable(handler). Logs requests."""

    def __init__(self) -> None:
        self.routes: dict[str, object] = {}
        self.log: list[tuple[str, dict[str, str]]] = []
        self.closing = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.site = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def policy(self, **kwargs) -> FetchPolicy:
        return FetchPolicy(allow_private=frozenset({f"127.0.0.1:{self.port}"}), **kwargs)

    def page(self, path: str, body: str | bytes, ctype: str = "text/html; charset=utf-8",
             status: int = 200, **headers: str) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = (status, {"Content-Type": ctype, **headers}, data)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.routes[path] = (status, {"Location": location}, b"")

    def paths(self) -> list[str]:
        return [p for p, _ in self.log]

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # bodies may end at the close (no Content-Length)

    def do_GET(self) -> None:  # noqa: N802
        site: Site = self.server.site  # type: ignore[attr-defined]
        site.log.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = site.routes.get(self.path, site.routes.get(self.path.split("?")[0]))
        if route is None:
            route = (404, {"Content-Type": "text/plain"}, b"no such page")
        if callable(route):
            route(self)
            return
        status, headers, body = route
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers and "X-No-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def site():
    s = Site()
    yield s
    s.close()


@pytest.fixture
def other_site():
    s = Site()
    yield s
    s.close()


# one news story, for the tests of syndicated copies
STEELWORKS = ("The regional council approved a plan on Tuesday to build four hundred homes on the "
         "site of the former steelworks, ending a dispute that lasted six years. Residents had "
         "opposed earlier versions because of traffic on the valley road. The new plan adds a "
         "bus line, a school and a park along the river, and keeps the old furnace as a "
         "museum. Building work will start next spring and take five years, the council said. "
         "The developer will pay for the new bridge over the river as part of the deal. "
         "Opposition members said the plan still had too few affordable homes. The mayor "
         "said the council would review the numbers again before the final vote in March.")
