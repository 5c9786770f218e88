"""Attacks 2, 3, 8 and 9 of the security probe, each against a real server on 127.0.0.1:
DNS rebinding and cross-site requests, a token-less server reached from another machine
or started with a short token, password guessing on /login and over MCP, a rotating
X-Forwarded-For, and Gradio's CORS header.

A client "on another machine" is simulated the way uvicorn itself would see one: the
server believes ``X-Forwarded-For`` from 127.0.0.1 (uvicorn's default for ``--factory``;
``RAG_TRUSTED_PROXIES=127.0.0.1`` for ``rag-serve``), so the app sees that address. No
traffic leaves the loopback interface."""

from __future__ import annotations

import time

import httpx
import pytest

from rag.app.web import free_port
from rag.config import Config

TOKEN = "boundary-test-token-0123456789"
ATTACKER = "http://rebind.attacker.example"
STORY = b"Otters\n\nSea otters hold hands while they sleep.\n"


def article_ids(url: str, headers: dict | None = None) -> set[str]:
    r = httpx.get(url + "/api/articles", headers=headers or {}, timeout=30)
    assert r.status_code == 200, r.text
    return {a["id"] for a in r.json()["articles"]}


def assert_refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["code"] == code and r.json()["error"]


# -- 2. DNS rebinding and cross-site requests ---------------------------------------------

@pytest.mark.parametrize("path", ["/", "/config", "/api/articles", "/api/health",
                                  "/gradio_api/info"])
def test_a_rebound_host_name_is_refused_without_a_token(small_index, served, path):
    with served(small_index) as url:
        for host in ("rebind.attacker.example", "rebind.attacker.example:7860",
                     "192.168.1.10", "127.0.0.1.attacker.example"):
            assert_refused(httpx.get(url + path, headers={"Host": host}, timeout=30),
                           403, "bad_host")
        for host in ("127.0.0.1", "localhost", f"127.0.0.1:{url.rsplit(':', 1)[1]}",
                     "[::1]:80", "127.0.0.2"):
            assert httpx.get(url + path, headers={"Host": host}, timeout=30).status_code \
                in (200, 307), host


@pytest.mark.parametrize("headers", [
    {"Origin": ATTACKER},
    {"Origin": "null"},
    {"Origin": "http://localhost:3000"},          # another port is another origin
    {"Referer": ATTACKER + "/page.html"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://127.0.0.1"},              # another scheme
])
def test_a_cross_site_upload_adds_nothing(small_index, served, headers):
    with served(small_index) as url:
        before = article_ids(url)
        r = httpx.post(url + "/api/articles", headers=headers, timeout=30,
                       files={"file": ("otters.txt", STORY, "text/plain")})
        assert_refused(r, 403, "cross_origin")
        r = httpx.post(url + "/api/ask", headers=headers, json={"question": "Nile?"},
                       timeout=30)
        assert_refused(r, 403, "cross_origin")
        r = httpx.post(url + "/gradio_api/queue/join", headers=headers, timeout=30,
                       json={"data": [], "fn_index": 0, "session_hash": "x"})
        assert_refused(r, 403, "cross_origin")
        assert article_ids(url) == before
        assert not (small_index.source / "otters.txt").exists()


def test_same_origin_and_programs_still_change_things(small_index, served):
    with served(small_index) as url:
        r = httpx.post(url + "/api/articles", headers={"Origin": url,
                                                       "Sec-Fetch-Site": "same-origin"},
                       files={"file": ("otters.txt", STORY, "text/plain")}, timeout=60)
        assert r.status_code == 200, r.text
        r = httpx.post(url + "/api/ask", json={"question": "What do sea otters hold?"},
                       timeout=60)  # curl, a script: no Origin
        assert r.status_code == 200 and "hands" in r.json()["text"]


def test_a_listed_cors_origin_may_post(small_index, served):
    team = "https://team.example"
    with served(small_index.replace(cors_origins=team)) as url:
        r = httpx.post(url + "/api/ask", headers={"Origin": team}, timeout=60,
                       json={"question": "How long is the Nile?"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == team
        assert_refused(httpx.post(url + "/api/ask", headers={"Origin": ATTACKER},
                                  json={"question": "Nile?"}, timeout=30),
                       403, "cross_origin")


def test_with_a_token_a_cross_site_login_is_refused(small_index, served):
    """Gradio's session cookie is SameSite=None: a token server refuses cross-site
    state changes too (CSRF on the UI), though any Host is fine behind a domain name."""
    with served(small_index.replace(api_token=TOKEN)) as url:
        form = {"username": "a", "password": TOKEN}
        assert_refused(httpx.post(url + "/login", data=form, headers={"Origin": ATTACKER},
                                  timeout=30), 403, "cross_origin")
        r = httpx.get(url + "/api/health", headers={"Host": "rag.example.org"}, timeout=30)
        assert r.status_code == 200
        assert httpx.post(url + "/login", data=form, headers={"Origin": url},
                          timeout=30).status_code == 200


# -- 3. uvicorn --factory: no token means loopback clients only; short tokens refused ------

def factory_argv(port: int) -> list[str]:
    return ["-m", "uvicorn", "--factory", "rag.app.web:create_app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning"]


def test_uvicorn_factory_without_a_token_refuses_other_machines(small_index, server_proc):
    """As ``uvicorn --factory rag.app.web:create_app --host 0.0.0.0`` would be reached
    from another machine: uvicorn (default ``--proxy-headers``, trusting 127.0.0.1) hands
    the app the forwarded address."""
    port = free_port()
    env = {"RAG_SOURCE": str(small_index.source), "RAG_INDEX": str(small_index.index_dir),
           "RAG_MODEL": "minilm", "RAG_API_TOKEN": ""}
    with server_proc(factory_argv(port), env, port) as url:
        for path in ("/", "/api/articles", "/api/health", "/config"):
            r = httpx.get(url + path, headers={"X-Forwarded-For": "203.0.113.9"}, timeout=30)
            assert_refused(r, 403, "not_loopback")
        assert httpx.get(url + "/api/health", timeout=30).status_code == 200  # this machine


def test_uvicorn_factory_refuses_a_short_token(tmp_path):
    import subprocess
    import sys

    port = free_port()
    env = {"RAG_SOURCE": str(tmp_path), "RAG_INDEX": str(tmp_path / "index"),
           "RAG_API_TOKEN": "abc", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, *factory_argv(port)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0
    assert "too short (3 characters)" in done.stdout + done.stderr


def test_config_and_ray_serve_refuse_short_tokens(monkeypatch, capsys):
    from rag.app.security import check_bind
    from rag.distributed import serve
    from rag.types import RagError

    with pytest.raises(RagError, match="too short"):
        Config.from_env({"RAG_API_TOKEN": "abc"})
    monkeypatch.setenv("RAG_API_TOKEN", "abc")
    assert serve.main(["--host", "0.0.0.0"]) != 0
    assert "too short (3 characters)" in capsys.readouterr().err
    for host in ("127.0.0.2", "::1", "[::1]", "localhost"):
        check_bind(host, None)  # what serve.py wrongly refused before


# -- 8. rate limits: /login, a rotating X-Forwarded-For, MCP ---------------------------------

def serve_argv(cfg: Config, port: int) -> list[str]:
    return ["-m", "rag.app.web", "--no-build", "--source", str(cfg.source), "--index",
            str(cfg.index_dir), "--host", "127.0.0.1", "--port", str(port)]


def test_login_guessing_is_limited(small_index, server_proc):
    port = free_port()
    with server_proc(serve_argv(small_index, port), {"RAG_API_TOKEN": TOKEN}, port) as url:
        started = time.monotonic()
        codes = [httpx.post(url + "/login", data={"username": "a", "password": f"guess{i}"},
                            timeout=30).status_code for i in range(30)]
        # a token bucket of 10 refilled at 10 a minute: on a loaded machine the 30 tries
        # may take long enough for a refill or two (one more try each 6 s), no more
        refills = int((time.monotonic() - started) / 6)
        assert set(codes[:10]) == {400} and set(codes) == {400, 429}
        assert 10 <= codes.count(400) <= 10 + refills
        right = httpx.post(url + "/login", data={"username": "a", "password": TOKEN},
                           timeout=30)
        assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1


def test_a_rotating_forwarded_for_does_not_escape_the_limit(small_index, server_proc):
    port = free_port()
    env = {"RAG_API_TOKEN": TOKEN, "RAG_RATE_LIMIT": "5"}
    with server_proc(serve_argv(small_index, port), env, port) as url:
        codes = [httpx.get(url + "/api/articles", timeout=30,
                           headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                 for i in range(12)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}


def test_a_configured_proxy_is_believed(small_index, server_proc):
    port = free_port()
    env = {"RAG_API_TOKEN": TOKEN, "RAG_RATE_LIMIT": "3", "RAG_TRUSTED_PROXIES": "127.0.0.1"}
    with server_proc(serve_argv(small_index, port), env, port) as url:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for client in ("198.51.100.1", "198.51.100.2"):  # each its own budget
            codes = [httpx.get(url + "/api/feeds", timeout=30, headers={
                **auth, "X-Forwarded-For": client}).status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]


def test_mcp_token_guessing_is_limited(small_index):
    pytest.importorskip("mcp")
    from rag.app.mcp import create_http_app
    from rag.app.web import BackgroundServer

    cfg = small_index.replace(rate_limit=5)
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    with BackgroundServer(create_http_app(cfg, token=TOKEN)) as url:
        codes = [httpx.post(url + "/mcp", json=init, timeout=30, headers={
            **accept, "Authorization": f"Bearer wrong-{i:04d}-0123456789"}).status_code
            for i in range(8)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        assert httpx.post(url + "/mcp", json=init, headers={**accept, "Origin": ATTACKER,
                          "Authorization": f"Bearer {TOKEN}"}, timeout=30).status_code == 403


# -- 9. CORS: no Access-Control-Allow-Origin unless RAG_CORS_ORIGINS -----------------------

@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:3000", "null",
                                    ATTACKER])
def test_gradio_routes_send_no_cors_header(small_index, served, origin):
    with served(small_index) as url:
        for path in ("/config", "/gradio_api/info", "/api/health", "/"):
            r = httpx.get(url + path, headers={"Origin": origin}, timeout=30)
            assert not [h for h in r.headers if h.lower().startswith("access-control-")], \
                (path, dict(r.headers))
        r = httpx.options(url + "/gradio_api/queue/join", timeout=30, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers
