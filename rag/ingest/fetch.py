"""A safe HTTP(S) fetcher for pages and feeds the user listed (stdlib only).

:func:`fetch` gets one URL under a :class:`FetchPolicy` and returns a :class:`Response`,
or raises :class:`FetchError` whose message is a short sentence a person can act on.

What is refused, and why (the fetcher runs on the server that hosts the index, so a URL
typed by a user must not become a way into that server's network — SSRF):

* schemes other than ``http`` and ``https`` (``file:``, ``ftp:``, ``data:``,
  ``javascript:``...): they read local files or speak other protocols;
* user names or passwords in the URL (they would be sent to whoever answers, and they are
  a classic way to disguise the real host: ``http://bank.com@evil.test/``);
* any host that resolves to an address that is not public: loopback, private (10/8,
  172.16/12, 192.168/16), link-local (169.254/16, with the cloud metadata service
  169.254.169.254), shared address space (100.64/10), multicast, reserved, unspecified,
  documentation and benchmarking ranges, and their IPv6 equivalents (``::1``,
  ``fc00::/7``, ``fe80::/10``, site-local, multicast), plus IPv6 forms that embed an IPv4
  address (IPv4-mapped ``::ffff:127.0.0.1``, 6to4 ``2002::/16``, Teredo, NAT64
  ``64:ff9b::/96``), which are judged by the IPv4 address inside. EVERY address a name
  resolves to must be public, not just one: otherwise the connection could pick the bad one.
  ``FetchPolicy.allow_private`` lifts this for exact ``ip`` / ``ip:port`` strings (tests);
* DNS rebinding: the name is resolved once per hop, the addresses are checked, and the
  connection goes to one of THOSE addresses (never a second lookup); the ``Host`` header,
  TLS SNI and the certificate check still use the name;
* redirects (301, 302, 303, 307, 308) are followed by hand, at most
  ``FetchPolicy.max_redirects``, and every hop is checked like the first;
* bodies over ``FetchPolicy.max_bytes`` (refused early from ``Content-Length``, otherwise
  when the cap is passed while reading; for ``gzip``/``deflate`` bodies the cap applies to
  the decompressed size, so a compression bomb is cut too); other content encodings are
  refused;
* slow servers: connecting is bounded by ``connect_timeout`` and the whole fetch (every
  hop: connect, TLS, headers, body) by ``deadline``; a server that trickles bytes is cut
  off at the deadline because every socket read waits at most the time that is left;
* HTTP errors (4xx, 5xx) become ``FetchError("HTTP 404 Not Found")``.

Every request carries ``FetchPolicy.user_agent``. Proxy environment variables are ignored
(the connection goes to the vetted address). Thread-safety: :func:`fetch` keeps no shared
state (each call opens its own connection; the policy is frozen), so it may run in many
threads at once.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

__all__ = ["FetchPolicy", "Response", "FetchError", "fetch", "system_resolver", "check_url",
           "address_problem", "policy_for"]

REDIRECTS = (301, 302, 303, 307, 308)
_MAX_URL_CHARS = 8192
_READ_CHUNK = 64 * 1024
# characters kept as they are when a path or query is percent-encoded for the request line
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"

# Belt and braces over ipaddress' is_global: ranges that are never fetched (the checks
# below also refuse anything ipaddress calls private, reserved, multicast, ...).
_BLOCKED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128", "::1/128", "::/96", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7",
    "fe80::/10", "fec0::/10", "ff00::/8",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class FetchError(Exception):
    """A URL could not be fetched; ``reason`` (also ``str(exc)``) says why, for a person.

    ``content_type`` is set when the refusal is about the response's content type."""

    def __init__(self, reason: str, *, content_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.content_type = content_type


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses (as strings, in the system's order, no repeats) ``host`` resolves to."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _default_user_agent() -> str:
    from .. import __version__

    return f"rag/{__version__} (extractive question answering; fetches pages the user listed)"


@dataclass(frozen=True)
class FetchPolicy:
    """The limits of :func:`fetch`. Frozen, so one policy can be shared by threads."""

    max_bytes: int = 10 * 2**20
    """largest body accepted (after decompression), in bytes"""
    connect_timeout: float = 10.0
    """seconds to open a connection (each address tried), and the most any read waits"""
    deadline: float = 30.0
    """seconds for the whole fetch, every redirect hop and the whole body included"""
    max_redirects: int = 5
    user_agent: str = field(default_factory=_default_user_agent)
    resolver: Callable[[str, int], list[str]] = system_resolver
    """``(host, port) -> [ip, ...]``; tests inject one so that no real DNS is used"""
    allow_private: frozenset[str] = frozenset()
    """test only: exact ``"ip"`` or ``"ip:port"`` (IPv6: ``"[ip]:port"``) strings that may
    be fetched although the address is not public"""
    ca_file: str | None = None
    """extra trusted CA certificates (PEM), e.g. a test's own CA; the system's stay trusted"""


def policy_for(cfg) -> FetchPolicy:
    """The policy of a :class:`rag.config.Config`: ``fetch_max_bytes``, ``fetch_deadline``
    and the test-only ``fetch_allow_private`` (comma-separated ``ip:port``)."""
    allow = frozenset(x.strip() for x in cfg.fetch_allow_private.split(",") if x.strip())
    return FetchPolicy(max_bytes=cfg.fetch_max_bytes, deadline=cfg.fetch_deadline,
                       allow_private=allow)


@dataclass(frozen=True)
class Response:
    """A fetched response. ``headers`` have lower-case names (repeated ones joined with
    ``", "``); ``content_type`` is the lower-case media type without parameters (``""``
    when absent); ``charset`` is the declared one, if any. A ``304 Not Modified`` answer
    to a conditional request comes back as ``status == 304`` with an empty body."""

    final_url: str
    status: int
    headers: dict[str, str]
    content_type: str
    charset: str | None
    body: bytes
    address: str = ""
    """the IP address the last hop connected to"""

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


# -- addresses ---------------------------------------------------------------------------

def address_problem(ip: str) -> str | None:
    """Why ``ip`` must not be fetched (``"a loopback address"``...), or None when public."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])  # an IPv6 zone id is not needed
    except ValueError:
        return "not an IP address"
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 address itself
            return address_problem(str(addr.ipv4_mapped))
        embedded = _embedded_v4(addr)
        if embedded is not None:
            inner = address_problem(str(embedded))
            if inner:
                return f"{inner} inside an IPv6 address"
        if addr in _NAT64_LOCAL:
            return "a local-use NAT64 address"
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_link_local:
        return "a link-local address (as the cloud metadata service 169.254.169.254)"
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_unspecified:
        return "the unspecified address"
    if isinstance(addr, ipaddress.IPv4Address) and addr in ipaddress.ip_network("100.64.0.0/10"):
        return "a shared (carrier-grade NAT) address"
    if addr.is_reserved:
        return "a reserved address"
    if addr.is_private:
        return "a private address"
    if getattr(addr, "is_site_local", False):
        return "a site-local address"
    if not addr.is_global or any(addr in net for net in _BLOCKED
                                                     if net.version == addr.version):
        return "a reserved address"
    return None


def _embedded_v4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo client, NAT64)."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _allowed(ip: str, port: int, policy: FetchPolicy) -> bool:
    allow = policy.allow_private
    return bool(allow) and (ip in allow or f"{ip}:{port}" in allow or f"[{ip}]:{port}" in allow)


# -- URLs --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str  # ASCII (IDNA), lower case, no brackets
    port: int
    request_path: str  # path and query, percent-encoded

    @property
    def default_port(self) -> bool:
        return self.port == (443 if self.scheme == "https" else 80)


def check_url(url: str) -> _Target:
    """Parse and check the form of ``url`` (no network): http(s), a host, no user name or
    password, a valid port. Raises :class:`FetchError` with the reason."""
    if not isinstance(url, str) or not url.strip():
        raise FetchError("not a web address (give an http:// or https:// URL)")
    url = url.strip()
    if len(url) > _MAX_URL_CHARS:
        raise FetchError(f"the address is longer than {_MAX_URL_CHARS} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c.isspace() for c in url):
        raise FetchError("the address contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchError(f"not a valid web address ({exc})") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise FetchError("not a web address (give an http:// or https:// URL)")
    if scheme not in ("http", "https"):
        raise FetchError(f"only http and https addresses are fetched, not {scheme}:")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise FetchError("addresses with a user name or password are refused")
    host = parts.hostname or ""
    if not host:
        raise FetchError("the address has no host name")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host = host.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise FetchError(f"not a valid host name: {host}") from None
    if port == 0:
        raise FetchError("port 0 is not a valid port")
    port = port or (443 if scheme == "https" else 80)
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_QUERY_SAFE)
    return _Target(scheme, host, port, path)


def _url_of(t: _Target) -> str:
    host = f"[{t.host}]" if ":" in t.host else t.host
    return f"{t.scheme}://{host}{'' if t.default_port else f':{t.port}'}{t.request_path}"


def _vetted_addresses(t: _Target, policy: FetchPolicy) -> list[str]:
    """The addresses of ``t.host`` (resolved once), each one checked; raises when any
    is not public (and not allowed by the policy)."""
    try:
        literal = ipaddress.ip_address(t.host)
    except ValueError:
        literal = None
    if literal is not None:
        ips = [str(literal)]
    else:
        try:
            ips = [str(ip).strip() for ip in policy.resolver(t.host, t.port)]
        except (OSError, UnicodeError) as exc:
            why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise FetchError(f"could not find the host {t.host} ({why})") from None
        if not ips:
            raise FetchError(f"could not find the host {t.host} (no address)")
    for ip in ips:
        problem = address_problem(ip)
        if problem and not _allowed(ip.split("%", 1)[0], t.port, policy):
            where = t.host if literal is not None else f"{t.host} resolves to {ip}, which"
            raise FetchError(f"refused: {where} is {problem}; only public addresses "
                             "are fetched")
    return ips


# -- connections pinned to a vetted address, every read bounded by the deadline ----------

class _Clock:
    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self.end = time.monotonic() + policy.deadline

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        return left

    def expired(self) -> bool:
        return time.monotonic() >= self.end


class _DeadlineReads:
    """Mixed into a socket class: every read waits at most the time left before the
    deadline (and at most ``connect_timeout`` of silence)."""

    clock: _Clock | None = None

    def _arm(self) -> None:
        if self.clock is not None:
            self.settimeout(min(self.clock.left(), self.clock.policy.connect_timeout))

    def recv(self, *args, **kwargs):
        self._arm()
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        self._arm()
        return super().recv_into(*args, **kwargs)


class _DeadlineSocket(_DeadlineReads, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineReads, ssl.SSLSocket):
    pass


def _open_socket(ips: list[str], port: int, clock: _Clock) -> tuple[_DeadlineSocket, str]:
    """A TCP connection to the first of the vetted ``ips`` that answers."""
    errors = []
    for ip in ips:
        ip = ip.split("%", 1)[0]
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = _DeadlineSocket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(min(clock.left(), clock.policy.connect_timeout))
            sock.connect((ip, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.clock = clock
            return sock, ip
        except BaseException as exc:
            sock.close()
            if isinstance(exc, TimeoutError) and clock.expired():
                raise
            if not isinstance(exc, OSError):
                raise
            errors.append(exc)
    exc = errors[-1]
    if isinstance(exc, TimeoutError):
        raise FetchError(f"could not connect (no answer within "
                         f"{clock.policy.connect_timeout:g} s)")
    raise FetchError(f"could not connect ({exc.strerror or exc})")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a vetted address: ``host`` is only used for the Host header."""

    def __init__(self, host: str, port: int, ips: list[str], clock: _Clock) -> None:
        super().__init__(host, port, timeout=clock.policy.connect_timeout)
        self._ips, self._clock, self.address = ips, clock, ""

    def connect(self) -> None:
        self.sock, self.address = _open_socket(self._ips, self.port, self._clock)


@functools.lru_cache(maxsize=8)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    """The TLS settings (shared: an SSLContext may wrap sockets in many threads)."""
    context = ssl.create_default_context()  # CERT_REQUIRED, check_hostname, TLS 1.2+
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    context.sslsocket_class = _DeadlineSSLSocket
    return context


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a vetted address; SNI and the certificate check use ``host``."""

    def __init__(self, host: str, port: int, ips: list[str], clock: _Clock) -> None:
        context = _tls_context(clock.policy.ca_file)
        super().__init__(host, port, timeout=clock.policy.connect_timeout, context=context)
        self._ips, self._clock, self._ctx, self.address = ips, clock, context, ""

    def connect(self) -> None:
        sock, self.address = _open_socket(self._ips, self.port, self._clock)
        try:
            sock.settimeout(min(self._clock.left(), self._clock.policy.connect_timeout))
            tls = self._ctx.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        tls.clock = self._clock
        self.sock = tls


# -- the fetch ---------------------------------------------------------------------------

def _fmt_size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n:,} bytes"


def _content_type(value: str) -> tuple[str, str | None]:
    media, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip("\"'"):
            charset = val.strip().strip("\"'").lower()
    return media.strip().lower(), charset


def fetch(url: str, policy: FetchPolicy | None = None, *, etag: str | None = None,
          last_modified: str | None = None,
          accept: str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5",
          content_types: frozenset[str] | tuple[str, ...] | None = None) -> Response:
    """GET ``url`` under ``policy`` (default :class:`FetchPolicy`), following redirects.

    ``etag`` / ``last_modified`` (from an earlier response) are sent as ``If-None-Match`` /
    ``If-Modified-Since``; a 304 answer comes back as ``Response(status=304, body=b"")``.
    With ``content_types``, a response of another media type is refused from its headers,
    before the body is read (``FetchError.content_type`` tells which). Raises
    :class:`FetchError` for everything the module docstring lists, for network errors and
    for 4xx/5xx answers.
    """
    policy = policy or FetchPolicy()
    clock = _Clock(policy)
    current = url.strip() if isinstance(url, str) else url
    hops = 0
    try:
        while True:
            try:
                target = check_url(current)
                ips = _vetted_addresses(target, policy)
                status, headers, body, address = _one_request(
                    target, ips, clock, etag=etag, last_modified=last_modified,
                    accept=accept, content_types=content_types)
            except FetchError as exc:
                if hops:  # say where the redirect led
                    raise FetchError(f"redirected to {current}: {exc.reason}",
                                     content_type=exc.content_type) from None
                raise
            if status in REDIRECTS:
                location = headers.get("location", "").strip()
                if not location:
                    raise FetchError(f"HTTP {status} redirect without a Location")
                hops += 1
                if hops > policy.max_redirects:
                    raise FetchError(f"too many redirects (more than {policy.max_redirects})")
                current = urljoin(_url_of(target), location)
                continue
            media, charset = _content_type(headers.get("content-type", ""))
            return Response(final_url=_url_of(target), status=status, headers=headers,
                            content_type=media, charset=charset, body=body, address=address)
    except TimeoutError:
        if clock.expired():
            raise FetchError(f"took longer than the {policy.deadline:g} s limit (the server "
                             "is too slow)") from None
        raise FetchError(f"the server stopped answering (nothing for "
                         f"{policy.connect_timeout:g} s)") from None
    except ssl.SSLCertVerificationError as exc:
        raise FetchError(f"the site's certificate is not valid ({exc.verify_message or exc})"
                         ) from None
    except ssl.SSLError as exc:
        raise FetchError(f"secure connection failed ({exc.reason or exc})") from None
    except (http.client.HTTPException, OSError) as exc:
        if clock.expired():
            raise FetchError(f"took longer than the {policy.deadline:g} s limit (the server "
                             "is too slow)") from None
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise FetchError(f"the connection failed ({why})") from None


def _one_request(target: _Target, ips: list[str], clock: _Clock, *, etag, last_modified,
                 accept, content_types) -> tuple[int, dict[str, str], bytes, str]:
    policy = clock.policy
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = cls(target.host, target.port, ips, clock)
    try:
        conn.putrequest("GET", target.request_path, skip_accept_encoding=True)
        conn.putheader("User-Agent", policy.user_agent)
        conn.putheader("Accept", accept)
        conn.putheader("Accept-Encoding", "gzip, deflate")
        conn.putheader("Connection", "close")
        if etag:
            conn.putheader("If-None-Match", etag)
        if last_modified:
            conn.putheader("If-Modified-Since", last_modified)
        conn.endheaders()
        resp = conn.getresponse()
        headers: dict[str, str] = {}
        for name, value in resp.getheaders():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        status = resp.status
        if status in REDIRECTS or status == 304:
            return status, headers, b"", conn.address
        if not 200 <= status < 300:
            phrase = (resp.reason or "").strip() or _phrase(status)
            raise FetchError(f"HTTP {status} {phrase}".strip())
        if content_types is not None:
            media, _ = _content_type(headers.get("content-type", ""))
            if media not in content_types:
                raise FetchError(f"unexpected content type ({media or 'none given'})",
                                 content_type=media)
        length = headers.get("content-length", "").strip()
        if length.isdigit() and int(length) > policy.max_bytes:
            raise FetchError(f"too large ({_fmt_size(int(length))} > "
                             f"{_fmt_size(policy.max_bytes)} limit)")
        body = _read_body(resp, headers.get("content-encoding", ""), policy.max_bytes)
        return status, headers, body, conn.address
    finally:
        conn.close()


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _read_body(resp: http.client.HTTPResponse, encoding: str, cap: int) -> bytes:
    """The body, decompressed, at most ``cap`` bytes (raw and decoded), else FetchError."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        decomp = None
    elif encoding in ("gzip", "x-gzip"):
        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decomp = zlib.decompressobj(zlib.MAX_WBITS)
    else:
        raise FetchError(f"unsupported content encoding ({encoding})")
    too_large = FetchError(f"too large (more than {_fmt_size(cap)})")
    out = bytearray()
    raw = 0
    first = True
    while True:
        chunk = resp.read(_READ_CHUNK)
        if not chunk:
            break
        raw += len(chunk)
        if raw > cap:
            raise too_large
        if decomp is None:
            out += chunk
        else:
            try:
                data = decomp.decompress(chunk, cap + 1 - len(out))
            except zlib.error:
                if not (first and encoding == "deflate"):
                    raise FetchError("the compressed body is damaged") from None
                decomp = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, seen in the wild
                data = decomp.decompress(chunk, cap + 1 - len(out))
            out += data
            if decomp.unconsumed_tail:  # more output is waiting: over the cap
                raise too_large
        first = False
        if len(out) > cap:
            raise too_large
    if decomp is not None:
        try:
            out += decomp.flush()
        except zlib.error:
            raise FetchError("the compressed body is damaged") from None
        if len(out) > cap:
            raise too_large
    return bytes(out)
