"""What makes the API deployable by a team: bearer token, rate limit, body cap, CORS.

Contracts:

- :func:`error_response` is the one error shape of the API: ``{"error": message,
  "code": code}`` (``error`` is the human message; ``code`` a short snake_case word).
- :func:`install` adds a pure ASGI middleware (streaming, SSE and websockets untouched;
  non-HTTP scopes pass through). It guards HTTP requests whose path starts with
  ``protected_prefix`` (``/api/``), in this order:

  1. public: ``public_paths`` (health) and the app's own docs/schema URLs
     (``openapi_url``, ``docs_url``, ``redoc_url``, the OAuth2 redirect) pass through
     untouched, even with a token: the schema describes the API, it holds no data.
  2. rate limit (``rate_per_minute``, 0: off): one token bucket per client, keyed by
     ``sha256(token)[:16]`` and the client IP when the request carries the right token
     (a team shares one token), else by the client IP alone (``scope["client"][0]``;
     behind a proxy, that is the proxy unless the server rewrites it). Failed token guesses spend the IP's budget. 429 with
     ``Retry-After`` (whole seconds), code ``rate_limited``.
  3. token (when set): ``Authorization: Bearer <token>``, constant-time comparison;
     else 401, ``WWW-Authenticate: Bearer``, code ``unauthorized``.
  4. body (``max_body_bytes``, <= 0: off): a ``Content-Length`` over the cap is refused
     (413 ``too_large``) before anything is read; a body without one (chunked) is
     buffered up to the cap and replayed to the app, or refused once past it, so the app
     never starts a response it cannot finish.

- CORS only when ``cors_origins`` is given (exactly those origins, GET/POST/DELETE,
  headers Authorization/Content-Type); it wraps the guard, so preflights (which carry no
  token) are answered first. Without origins no ``Access-Control-Allow-Origin`` is sent.
- :func:`check_bind` refuses to listen beyond loopback without a token, and short tokens.
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

from ..types import RagError

MIN_TOKEN_CHARS = 16
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
    """Raise :class:`RagError` when the server must not start: a token (any host) shorter
    than 16 characters or with spaces, or a non-loopback ``host`` without a token."""
    if token:
        if len(token) < MIN_TOKEN_CHARS:
            raise RagError(f"RAG_API_TOKEN is too short ({len(token)} characters): use at "
                           f"least {MIN_TOKEN_CHARS}, e.g. python -c \"import secrets; "
                           f"print(secrets.token_urlsafe(32))\"")
        if token != token.strip() or any(c.isspace() or not c.isprintable() for c in token):
            raise RagError("RAG_API_TOKEN must not contain spaces or control characters "
                           "(clients send it in a header)")
    elif not _is_loopback(host):
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


class _Guard:
    """Pure ASGI middleware: public paths, rate limit, bearer token, body cap (see the
    module docstring)."""

    def __init__(self, app, *, token: str | None, limiter: RateLimiter, max_body_bytes: int,
                 prefix: str, public: frozenset[str]) -> None:
        self.app, self.token, self.limiter = app, token or None, limiter
        self.max_body, self.prefix, self.public = max_body_bytes, prefix, public
        self.token_key = ("token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]
                          if token else None)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root + "/"):
            path = path[len(root):]
        if not path.startswith(self.prefix) or path in self.public:
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is None and self.max_body > 0:
            refusal, receive = await self._cap_body(headers, receive)
            if refusal is None and receive is None:
                return  # the client went away while sending
        if refusal is not None:
            return await refusal(scope, receive, send)
        await self.app(scope, receive, send)

    def _refusal(self, scope, headers: Headers) -> Response | None:
        authorized = False
        if self.token:
            raw = headers.raw
            value = next((v for k, v in raw if k == b"authorization"), None)
            value = value.decode("utf-8", "surrogateescape") if value is not None else None
            authorized = check_token(value, self.token)
        client = scope.get("client")
        address = client[0] if client else "?"
        # per client: a team shares one token, so the token alone would be one bucket
        key = f"{self.token_key}|{address}" if authorized else "ip:" + address
        wait = self.limiter.take(key)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            return error_response(429, f"too many requests: try again in {seconds} s",
                                  "rate_limited", {"Retry-After": str(seconds)})
        if self.token and not authorized:
            return error_response(401, AUTH_MESSAGE, "unauthorized",
                                  {"WWW-Authenticate": "Bearer"})
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
            public_paths: tuple[str, ...] = ("/api/health",)) -> None:
    """Add the guard (and CORS when ``cors_origins``) to ``app``; call before it starts.
    The app's docs and schema URLs are public too (see the module docstring)."""
    docs = (getattr(app, name, None) for name in
            ("openapi_url", "docs_url", "redoc_url", "swagger_ui_oauth2_redirect_url"))
    public = frozenset(public_paths) | {p for p in docs if p}
    app.add_middleware(_Guard, token=token or None, limiter=RateLimiter(rate_per_minute),
                       max_body_bytes=max_body_bytes, prefix=protected_prefix, public=public)
    if cors_origins:  # added last = outermost: preflights are answered before the guard
        app.add_middleware(_CORS, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
