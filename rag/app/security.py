"""What makes the server safe to run and deployable by a team: who may ask at all, bearer
token, rate limits, body cap, CORS.

Contracts:

- :func:`error_response` is the one error shape of the API: ``{"error": message,
  "code": code}`` (``error`` is the human message; ``code`` a short snake_case word).
- :func:`install` adds a pure ASGI middleware (streaming and SSE untouched; lifespan
  passes through). On **every** HTTP and websocket request (UI, API, Gradio's routes):

  a. without a token, the server is this machine's alone: a client whose address is not
     loopback gets 403 ``not_loopback`` (also under ``uvicorn --factory ... --host
     0.0.0.0``), and a ``Host`` header that is not a loopback name (``localhost``,
     ``127.0.0.0/8``, ``[::1]``) gets 403 ``bad_host`` (DNS rebinding);
  b. with or without a token, a state-changing request (any method but GET, HEAD,
     OPTIONS; every websocket) sent by a browser from another origin (``Origin``, else
     ``Referer``, or ``Sec-Fetch-Site: cross-site/same-site``) gets 403 ``cross_origin``
     unless that origin is in ``cors_origins`` (CSRF; a program sends no ``Origin``);
  c. ``POST /login`` (the UI's password) is limited to ``login_per_minute`` a client
     address (429 ``rate_limited``);
  d. responses lose the ``Access-Control-*`` headers an inner app added (Gradio allows
     ``localhost`` origins with credentials): CORS is only what ``cors_origins`` allows.

  It then guards HTTP requests whose path starts with ``protected_prefix`` (``/api/``),
  in this order:

  1. public: ``public_paths`` (health) and the app's own docs/schema URLs
     (``openapi_url``, ``docs_url``, ``redoc_url``, the OAuth2 redirect) pass through
     untouched, even with a token: the schema describes the API, it holds no data.
  2. rate limit (``rate_per_minute``, 0: off): one token bucket per client, keyed by
     ``sha256(token)[:16]`` and the client IP when the request carries the right token
     (a team shares one token), else by the client IP alone (``scope["client"][0]``;
     ``X-Forwarded-For`` is ignored unless ``RAG_TRUSTED_PROXIES`` names the proxy:
     :func:`rag.app.web.proxy_settings`). Failed token guesses spend the IP's budget.
     429 with ``Retry-After`` (whole seconds), code ``rate_limited``.
  3. token (when set): ``Authorization: Bearer <token>``, constant-time comparison;
     else 401, ``WWW-Authenticate: Bearer``, code ``unauthorized``.
  4. body (``max_body_bytes``, <= 0: off): a ``Content-Length`` over the cap is refused
     (413 ``too_large``) before anything is read; a body without one (chunked) is
     buffered up to the cap and replayed to the app, or refused once past it, so the app
     never starts a response it cannot finish.

- :func:`protect` wraps any ASGI app (``rag-mcp``'s HTTP transport) in the same guard on
  every path.
- CORS only when ``cors_origins`` is given (exactly those origins, GET/POST/DELETE,
  headers Authorization/Content-Type); it wraps the guard, so preflights (which carry no
  token) are answered first. Without origins no ``Access-Control-Allow-Origin`` is sent.
- :func:`check_bind` refuses to listen beyond loopback without a token; it, ``install``,
  ``protect`` and :meth:`rag.config.Config.validate` refuse tokens under 16 characters.
- :class:`RateLimiter` is thread-safe (one lock) and keeps at most ``max_keys`` buckets.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import threading
import time
from collections import OrderedDict

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from ..config import MIN_TOKEN_CHARS, check_token_rules  # noqa: F401 (re-exported)
from ..types import RagError

# sign-in attempts a minute per client address on the UI's /login (a person needs a few;
# a password guesser is held to this many)
LOGIN_PER_MINUTE = 10
AUTH_MESSAGE = "missing or wrong bearer token: send 'Authorization: Bearer <RAG_API_TOKEN>'"


def error_response(status: int, message: str, code: str,
                   headers: dict | None = None) -> JSONResponse:
    """The API's one error shape: ``{"error": message, "code": code}``."""
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


def _utf8(text: str) -> bytes | None:
    try:  # surrogateescape round-trips header bytes that were not valid UTF-8
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def check_token(header_value: str | None, token: str) -> bool:
    """Whether ``header_value`` is ``Bearer <token>`` (scheme case-insensitive), compared
    in constant time on the UTF-8 bytes. Missing header, other scheme or no token: False."""
    if not header_value or not token:
        return False
    scheme, _, given = header_value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    given_b, token_b = _utf8(given.strip()), _utf8(token)
    if given_b is None or token_b is None:
        return False
    return hmac.compare_digest(given_b, token_b)


def _is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def check_bind(host: str, token: str | None) -> None:
    """Raise :class:`RagError` when the server must not start: a token (any host) that
    breaks :func:`check_token_rules`, or a non-loopback ``host`` without a token."""
    check_token_rules(token)
    if not token and not _is_loopback(host):
        raise RagError(f"refusing to listen on {host} without RAG_API_TOKEN: set a token "
                       "(clients send 'Authorization: Bearer <token>') or listen on 127.0.0.1")


class RateLimiter:
    """Token bucket per key: ``burst`` requests at once (default ``per_minute``), refilled
    at ``per_minute / 60`` a second. :meth:`take` returns 0.0 when allowed, else the
    seconds until one request is. ``per_minute <= 0``: no limit. Thread-safe; idle (full)
    and least recently used buckets are forgotten beyond ``max_keys``."""

    def __init__(self, per_minute: int, burst: int | None = None, clock=time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.per_minute = per_minute
        self.capacity = float(max(1, burst if burst is not None else per_minute))
        self.rate = per_minute / 60.0
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def _full(self, tokens: float, at: float, now: float) -> bool:
        return tokens + (now - at) * self.rate >= self.capacity

    def take(self, key: str) -> float:
        if self.per_minute <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            if key in self._buckets:
                tokens, at = self._buckets.pop(key)
                tokens = min(self.capacity, tokens + max(0.0, now - at) * self.rate)
            else:
                tokens = self.capacity
                while self._buckets:  # oldest first: drop the full ones and the surplus
                    old_key, (old_tokens, old_at) = next(iter(self._buckets.items()))
                    if len(self._buckets) < self.max_keys and not self._full(old_tokens, old_at, now):
                        break
                    del self._buckets[old_key]
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PATHS = frozenset({"/login", "/login/"})
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
NOT_LOOPBACK = ("this server has no RAG_API_TOKEN, so it answers only on this machine "
                "(loopback): set a token (16+ characters) to serve other machines")
BAD_HOST = ("this server has no RAG_API_TOKEN and answers only to loopback names "
            "(localhost, 127.0.0.1, [::1]) in the Host header")
CROSS_ORIGIN = ("a cross-origin request may not change anything here: call the API from "
                "this server's own page, from a program (no Origin header), or from an "
                "origin listed in RAG_CORS_ORIGINS")


def _netloc(scheme: str, host: str, port: str | None) -> str:
    """``host[:port]`` lower-cased, without the scheme's default port."""
    host = host.lower().rstrip(".")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if not port or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"


def _split_host(value: str) -> tuple[str, str | None]:
    """A Host header's (name, port): ``[::1]:7860`` -> (``::1``, ``7860``)."""
    value = value.strip()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else None
    name, sep, port = value.rpartition(":")
    return (name, port) if sep and port.isdigit() else (value, None)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL (Origin or Referer), lower-cased and without the
    default port; None when it has no host (``null``, ``file:``, garbage)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    scheme = parts.scheme.lower()
    return f"{scheme}://" + _netloc(scheme, host, str(port) if port else None)


def is_cross_origin(method: str | None, headers: Headers, allowed: frozenset[str]) -> bool:
    """Whether a browser sent this state-changing request (any method but GET, HEAD and
    OPTIONS; ``method`` None: a websocket) from another origin than the ``Host`` it is
    addressed to, and that origin is not in ``allowed`` (``RAG_CORS_ORIGINS``). Read
    from ``Origin``, else ``Referer``; ``Sec-Fetch-Site: cross-site``/``same-site``
    counts as cross-origin too. A request with none of them (curl, a program) is not."""
    if method is not None and method.upper() in SAFE_METHODS:
        return False
    host = headers.get("host")
    claimed = headers.get("origin")
    if claimed is None:
        claimed = headers.get("referer")
    fetch_site = (headers.get("sec-fetch-site") or "").strip().lower()
    if claimed is None:
        return fetch_site in ("cross-site", "same-site")
    origin = origin_of(claimed)
    if origin is None:  # "null" (sandboxed frames, file: pages) or unreadable
        return True
    if origin in allowed:
        return False
    if fetch_site in ("cross-site", "same-site") or host is None:
        return True
    scheme = origin.partition("://")[0]
    name, port = _split_host(host)
    return origin.partition("://")[2] != _netloc(scheme, name, port)


class _Guard:
    """Pure ASGI middleware (see the module docstring): on every HTTP and websocket
    request the loopback rules (no token) and the cross-origin rule; on ``/login`` the
    login limit; on ``prefix`` the rate limit, bearer token and body cap. Responses lose
    any ``Access-Control-*`` header that an inner app (Gradio) added: CORS is only what
    ``RAG_CORS_ORIGINS`` allows, added outside this guard."""

    def __init__(self, app, *, token: str | None, limiter: RateLimiter, max_body_bytes: int,
                 prefix: str, public: frozenset[str], cors_origins: tuple[str, ...] = (),
                 login_limiter: RateLimiter | None = None,
                 auth_header: str = "Bearer") -> None:
        self.app, self.token, self.limiter = app, token or None, limiter
        self.max_body, self.prefix, self.public = max_body_bytes, prefix, public
        self.allowed_origins = frozenset(filter(None, (origin_of(o) for o in cors_origins)))
        self.login_limiter = RateLimiter(0) if login_limiter is None else login_limiter
        self.auth_header = auth_header
        self.token_key = ("token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
                          if token else None)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        refusal = self._boundary_refusal(scope, headers)
        if scope["type"] == "websocket":
            if refusal is not None:
                return await send({"type": "websocket.close", "code": 1008})
            return await self.app(scope, receive, send)
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root + "/"):
            path = path[len(root):]
        if refusal is None and path in LOGIN_PATHS and scope["method"] == "POST":
            refusal = self._limited(self.login_limiter, "login:" + _client(scope))
        guarded = path.startswith(self.prefix) and path not in self.public
        if refusal is None and guarded:
            refusal = self._refusal(scope, headers)
            if refusal is None and self.max_body > 0:
                refusal, receive = await self._cap_body(headers, receive)
                if refusal is None and receive is None:
                    return  # the client went away while sending
        if refusal is not None:
            return await refusal(scope, receive, send)
        await self.app(scope, receive, _without_cors(send))

    def _boundary_refusal(self, scope, headers: Headers) -> Response | None:
        """Who may ask at all: without a token, loopback clients addressing a loopback
        name (no DNS rebinding); always, no state change from another origin (CSRF)."""
        if not self.token:
            client = scope.get("client")
            if client and not _is_loopback(client[0]):
                return error_response(403, NOT_LOOPBACK, "not_loopback")
            host = headers.get("host")
            if host is not None and not _is_loopback(_split_host(host)[0]):
                return error_response(403, BAD_HOST, "bad_host")
        if is_cross_origin(scope.get("method"), headers, self.allowed_origins):
            return error_response(403, CROSS_ORIGIN, "cross_origin")
        return None

    @staticmethod
    def _limited(limiter: RateLimiter, key: str) -> Response | None:
        wait = limiter.take(key)
        if wait <= 0:
            return None
        seconds = max(1, math.ceil(wait))
        return error_response(429, f"too many requests: try again in {seconds} s",
                              "rate_limited", {"Retry-After": str(seconds)})

    def _refusal(self, scope, headers: Headers) -> Response | None:
        authorized = False
        if self.token:
            raw = headers.raw
            value = next((v for k, v in raw if k == b"authorization"), None)
            value = value.decode("utf-8", "surrogateescape") if value is not None else None
            authorized = check_token(value, self.token)
        address = _client(scope)
        # per client: a team shares one token, so the token alone would be one bucket
        key = f"{self.token_key}|{address}" if authorized else "ip:" + address
        limited = self._limited(self.limiter, key)
        if limited is not None:
            return limited
        if self.token and not authorized:
            return error_response(401, AUTH_MESSAGE, "unauthorized",
                                  {"WWW-Authenticate": self.auth_header})
        return None

    async def _cap_body(self, headers: Headers, receive):
        """(refusal, receive): a 413/400, or the receive to give the app (None: gone)."""
        too_large = error_response(413, f"the request body is larger than {self.max_body} "
                                   "bytes", "too_large")
        length = headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                return error_response(400, "invalid Content-Length", "invalid_request"), receive
            return (too_large if int(length) > self.max_body else None), receive
        chunks, size = [], 0
        while True:  # no Content-Length (chunked): buffer up to the cap, then replay
            message = await receive()
            if message["type"] == "http.disconnect":
                return None, None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return too_large, receive
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return None, replay


def _client(scope) -> str:
    """The client's address as the server saw it (no ``X-Forwarded-For``: uvicorn runs
    with ``proxy_headers`` off unless ``RAG_TRUSTED_PROXIES`` names the proxies)."""
    client = scope.get("client")
    return client[0] if client else "?"


def _without_cors(send):
    """``send`` minus the ``Access-Control-*`` response headers."""
    async def strip(message):
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                  if not k.lower().startswith(b"access-control-")]
        await send(message)
    return strip


class _CORS(CORSMiddleware):
    """Starlette's CORS, with a refused preflight in the API's error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        why = response.body.decode("utf-8", "replace")
        keep = {k: v for k, v in response.headers.items()
                if k.lower() not in ("content-length", "content-type")}
        return error_response(response.status_code, why, "cors_refused", keep)


def install(app, *, token: str | None, rate_per_minute: int, max_body_bytes: int,
            cors_origins: tuple[str, ...] = (), protected_prefix: str = "/api/",
            public_paths: tuple[str, ...] = ("/api/health",),
            login_per_minute: int = LOGIN_PER_MINUTE) -> None:
    """Add the guard (and CORS when ``cors_origins``) to ``app``; call before it starts.
    The app's docs and schema URLs are public too (see the module docstring)."""
    check_token_rules(token)
    docs = (getattr(app, name, None) for name in
            ("openapi_url", "docs_url", "redoc_url", "swagger_ui_oauth2_redirect_url"))
    public = frozenset(public_paths) | {p for p in docs if p}
    app.add_middleware(_Guard, token=token or None, limiter=RateLimiter(rate_per_minute),
                       max_body_bytes=max_body_bytes, prefix=protected_prefix, public=public,
                       cors_origins=tuple(cors_origins),
                       login_limiter=RateLimiter(login_per_minute))
    if cors_origins:  # added last = outermost: preflights are answered before the guard
        app.add_middleware(_CORS, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])


def protect(app, *, token: str | None, rate_per_minute: int, max_body_bytes: int,
            realm: str = "rag"):
    """``app`` (any ASGI app) behind the same guard on every path: loopback rules, no
    cross-origin changes, rate limit, bearer token, body cap. For ``rag-mcp``'s HTTP
    transport."""
    check_token_rules(token)
    return _Guard(app, token=token or None, limiter=RateLimiter(rate_per_minute),
                  max_body_bytes=max_body_bytes, prefix="/", public=frozenset(),
                  auth_header=f'Bearer realm="{realm}"')
