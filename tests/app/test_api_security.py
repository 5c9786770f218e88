"""rag.app.security: bearer token, bind check, rate limit, body cap, CORS, error shape.

A minimal FastAPI app built here (no index, no model, no sockets: TestClient only)."""

from __future__ import annotations

import asyncio
import hmac
import threading
import time

import pytest
from fastapi import FastAPI, Request, WebSocket
from fastapi.testclient import TestClient

from rag.app import security
from rag.app.security import RateLimiter, check_bind, check_token, error_response, install
from rag.types import RagError

TOKEN = "s3cret-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_app(**kwargs) -> FastAPI:
    app = FastAPI(docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)

    @app.get("/api/health")
    def health():
        return {"ok": True}

    @app.get("/api/thing")
    def thing():
        return {"thing": 1}

    @app.post("/api/echo")
    async def echo(request: Request):
        body = await request.body()
        return {"n": len(body), "text": body.decode("utf-8")}

    @app.get("/")
    def page():
        return {"page": "ui"}

    options = dict(token=None, rate_per_minute=0, max_body_bytes=1000)
    options.update(kwargs)
    install(app, **options)
    return app


def client(**kwargs) -> TestClient:
    """A client on another machine when there is a token; without one, on this machine
    (a token-less server answers only loopback: tests/security/test_boundary.py)."""
    if kwargs.get("token"):
        return TestClient(make_app(**kwargs), client=("10.0.0.7", 50000))
    return TestClient(make_app(**kwargs), client=("127.0.0.1", 50000),
                      base_url="http://127.0.0.1")


def assert_error(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "code"} and body["code"] == code and body["error"]
    return body


# -- error shape ---------------------------------------------------------------------------

def test_error_response_shape():
    r = error_response(404, "no such article", "not_found", {"X-A": "1"})
    assert r.status_code == 404 and r.headers["x-a"] == "1"
    assert r.body == b'{"error":"no such article","code":"not_found"}'


# -- token ---------------------------------------------------------------------------------

def test_without_token_everything_is_open():
    c = client()
    for path in ("/api/thing", "/api/health", "/", "/api/openapi.json", "/api/docs"):
        assert c.get(path).status_code == 200, path
    assert c.post("/api/echo", content=b"hi").json() == {"n": 2, "text": "hi"}


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-token-0123456789"},
    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN},
    {"Authorization": f"Bearer {TOKEN[:-1]}g"}, {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": "Bearer "}, {"Authorization": "Bearer"},
    {"Authorization": "Bearer t\u00f6ken-\u00e9\u00e8-0123456789".encode("utf-8")},
    {"Authorization": b"Bearer \xff\xfe\x80"},
])
def test_with_token_wrong_or_missing_is_401(headers):
    c = client(token=TOKEN)
    for r in (c.get("/api/thing", headers=headers),
              c.post("/api/echo", content=b"x", headers=headers)):
        body = assert_error(r, 401, "unauthorized")
        assert r.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in body["error"]


def test_with_token_right_one_passes_and_public_paths_stay_open():
    c = client(token=TOKEN)
    assert c.get("/api/thing", headers=AUTH).json() == {"thing": 1}
    assert c.get("/api/thing", headers={"Authorization": f"bearer  {TOKEN} "}).status_code == 200
    assert c.post("/api/echo", content=b"ok", headers=AUTH).json()["text"] == "ok"
    for path in ("/api/health", "/", "/api/openapi.json", "/api/docs"):
        assert c.get(path).status_code == 200, path
    assert c.get("/api/health/x").status_code == 401  # public means exactly that path


def test_check_token_parsing():
    assert check_token(f"Bearer {TOKEN}", TOKEN)
    assert check_token(f"BEARER {TOKEN}", TOKEN)
    assert not check_token(None, TOKEN) and not check_token("", TOKEN)
    assert not check_token(f"Basic {TOKEN}", TOKEN)
    assert not check_token("Bearer ", "") and not check_token("Bearer x", "")
    assert check_token("Bearer gr\u00fc\u00dfe-\u2603-0123456789", "gr\u00fc\u00dfe-\u2603-0123456789")
    assert not check_token("Bearer \udcff\ud800", TOKEN)  # lone surrogates: False, no crash


def test_check_token_uses_compare_digest_on_bytes(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    assert check_token(f"Bearer {TOKEN}", TOKEN)
    assert not check_token(f"Bearer {TOKEN[:-1]}", TOKEN)
    assert calls == [(bytes, bytes), (bytes, bytes)]
    c = client(token=TOKEN)
    assert c.get("/api/thing", headers=AUTH).status_code == 200 and len(calls) == 3


# -- bind ----------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.1.2.3", "example.org"])
def test_check_bind_refuses_open_host_without_token(host):
    for token in (None, ""):
        with pytest.raises(RagError, match="without RAG_API_TOKEN.*Authorization: Bearer"):
            check_bind(host, token)
    check_bind(host, TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost",
                                  "LOCALHOST"])
def test_check_bind_allows_loopback_without_token(host):
    check_bind(host, None)
    check_bind(host, "")


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_check_bind_refuses_short_or_spaced_token(host):
    with pytest.raises(RagError, match="too short"):
        check_bind(host, "x" * 15)
    with pytest.raises(RagError, match="spaces"):
        check_bind(host, "a token with spaces in it")
    check_bind(host, "x" * 16)


# -- rate limit ----------------------------------------------------------------------------

def test_rate_limiter_bucket_refill_and_independent_clients():
    clock = FakeClock()
    rl = RateLimiter(60, burst=3, clock=clock)  # one a second, three at once
    assert [rl.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rl.take("a") == pytest.approx(1.0)
    assert rl.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert rl.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert rl.take("a") == 0.0 and rl.take("a") > 0
    clock.now += 3600
    assert [rl.take("a") for _ in range(4)][:3] == [0.0] * 3  # refills to burst, no more


def test_rate_limiter_disabled_and_bounded():
    rl = RateLimiter(0, clock=FakeClock())
    assert all(rl.take("a") == 0.0 for _ in range(1000)) and len(rl) == 0
    clock = FakeClock()
    rl = RateLimiter(60, clock=clock, max_keys=100)
    for i in range(1000):
        rl.take(f"k{i}")
    assert len(rl) <= 100
    clock.now += 120  # all buckets refilled: idle ones are forgotten on the next new key
    rl.take("new")
    assert len(rl) == 1


def test_rate_limiter_is_thread_safe():
    class SlowKey(str):  # yields to other threads between reading and writing a bucket
        def __hash__(self):
            time.sleep(0.0001)
            return str.__hash__(self)

    rl = RateLimiter(60, burst=50, clock=FakeClock())  # frozen clock: no refill
    allowed = []
    barrier = threading.Barrier(16)

    def worker():
        barrier.wait()
        allowed.append(sum(rl.take(SlowKey("shared")) == 0.0 for _ in range(20)))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 50


def test_rate_limit_in_app_429_retry_after_and_keys(monkeypatch):
    clock = FakeClock()
    real = RateLimiter
    monkeypatch.setattr(security, "RateLimiter", lambda n: real(n, clock=clock))
    app = make_app(token=TOKEN, rate_per_minute=2)
    a = TestClient(app, client=("10.0.0.1", 1))
    b = TestClient(app, client=("10.0.0.2", 1))
    assert [a.get("/api/thing", headers=AUTH).status_code for _ in range(2)] == [200, 200]
    r = a.get("/api/thing", headers=AUTH)
    assert_error(r, 429, "rate_limited")
    assert r.headers["retry-after"] == "30"
    # same (team) token from another address: its own bucket
    assert [b.get("/api/thing", headers=AUTH).status_code for _ in range(2)] == [200, 200]
    assert_error(b.get("/api/thing", headers=AUTH), 429, "rate_limited")
    c = TestClient(app, client=("10.0.0.3", 1))
    assert c.get("/api/health").status_code == 200  # public paths are not limited
    assert c.get("/api/thing").status_code == 401  # no token: keyed by IP, own bucket
    assert c.get("/api/thing").status_code == 401
    assert_error(c.get("/api/thing"), 429, "rate_limited")  # guesses spend the IP's budget
    clock.now += 30
    assert a.get("/api/thing", headers=AUTH).status_code == 200


# -- body cap ------------------------------------------------------------------------------

def test_body_over_content_length_is_413_before_reading():
    c = client(token=TOKEN, max_body_bytes=100)
    assert_error(c.post("/api/echo", content=b"x" * 101, headers=AUTH), 413, "too_large")
    assert c.post("/api/echo", content=b"x" * 100, headers=AUTH).json()["n"] == 100
    r = c.post("/api/echo", content=b"x", headers={**AUTH, "Content-Length": "abc"})
    assert_error(r, 400, "invalid_request")


def test_chunked_body_over_limit_is_413_and_under_is_echoed():
    c = client(max_body_bytes=100)

    def chunks(n):
        for _ in range(n):
            yield b"0123456789"

    assert_error(c.post("/api/echo", content=chunks(11)), 413, "too_large")
    r = c.post("/api/echo", content=chunks(10))
    assert r.json() == {"n": 100, "text": "0123456789" * 10}
    text = "h\u00e9llo w\u00f6rld \u2603"
    assert c.post("/api/echo", content=(p.encode() for p in text.split(" "))).json()["text"] \
        == text.replace(" ", "")


def _asgi(app, chunks: list[bytes], headers=()):
    """Drive ``app`` with raw ASGI messages (several body chunks); return what it sent."""
    sent, incoming = [], [{"type": "http.request", "body": c, "more_body": True}
                          for c in chunks] + [{"type": "http.request", "body": b""}]

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/api/echo", "raw_path": b"/api/echo",
             "query_string": b"", "root_path": "", "headers": list(headers),
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    return sent


def test_chunked_body_in_many_messages_replayed_or_refused_without_a_partial_response():
    app = make_app(max_body_bytes=25)
    sent = _asgi(app, [b"0123456789"] * 3)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 413
    sent = _asgi(app, [b"0123456789", b"abcde", b"", b"XYZ"])
    assert sent[0]["status"] == 200
    assert b'"0123456789abcdeXYZ"' in b"".join(m.get("body", b"") for m in sent)


# -- CORS ----------------------------------------------------------------------------------

def test_no_cors_headers_without_origins():
    c = client(token=TOKEN)
    origin = {"Origin": "https://evil.example"}
    for r in (c.get("/api/thing", headers={**AUTH, **origin}), c.get("/", headers=origin),
              c.options("/api/thing", headers={**origin, "Access-Control-Request-Method": "GET"})):
        assert "access-control-allow-origin" not in r.headers


def test_cors_preflight_answered_before_auth_and_only_for_listed_origins():
    c = client(token=TOKEN, cors_origins=("https://team.example",))
    pre = {"Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type"}
    r = c.options("/api/echo", headers={"Origin": "https://team.example", **pre})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://team.example"
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    r = c.options("/api/echo", headers={"Origin": "https://evil.example", **pre})
    assert "access-control-allow-origin" not in r.headers
    assert_error(r, 400, "cors_refused")
    r = c.get("/api/thing", headers={**AUTH, "Origin": "https://team.example"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://team.example"
    r = c.get("/api/thing", headers={**AUTH, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = c.get("/api/thing", headers={"Origin": "https://team.example"})  # 401 readable
    assert_error(r, 401, "unauthorized")


def test_non_http_scopes_pass_through():
    app = make_app(token=TOKEN)

    @app.websocket("/api/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    with TestClient(app).websocket_connect("/api/ws") as s:
        assert s.receive_text() == "hi"
