"""Which site a host belongs to: its registrable domain under the Public Suffix List.

Fetched pages and feed items are identified by URLs, so whether a page or feed may name a
URL as its article id is a question of sites: ``blog.example.com`` may speak for
``www.example.com`` (one owner: ``example.com``), ``alice.github.io`` may not speak for
``bob.github.io``, and ``m.org`` is a domain of its own, not a mobile copy of every
``.org`` site (stripping ``www.``/``m.`` prefixes, as this package once did, let it claim
them all: issue 22).

Contract: :func:`site_of` is pure and offline. The list is the snapshot bundled with the
``tld`` package (ICANN and private sections, so shared-hosting suffixes such as
``github.io`` or ``blogspot.com`` count); it is never downloaded at run time. Hosts the
list does not know (``.test``, ``.local``...) follow the list's default rule ``*``: the
last label is the suffix. IP addresses and single-label hosts (``localhost``) are their
own site; a host that is itself a public suffix (``co.uk``) is only the same site as itself.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

__all__ = ["site_of", "same_site"]


def _normal(host: str) -> str:
    """Lower-case, without a trailing dot or IPv6 brackets; IDNs in their ``xn--`` form."""
    host = (host or "").strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def site_of(host: str) -> str:
    """The registrable domain of ``host`` (``news.bbc.co.uk`` -> ``bbc.co.uk``); an IP
    address or single-label host as it is; ``""`` for an empty host."""
    host = _normal(host)
    if not host or _is_ip(host) or "." not in host:
        return host
    from tld import get_tld  # offline: reads the list bundled with the package

    found = get_tld(host, fix_protocol=True, as_object=True, fail_silently=True)
    if found is not None and found.fld:
        return str(found.fld)
    return ".".join(host.split(".")[-2:])  # the default rule "*" for unlisted suffixes


def same_site(host_a: str, host_b: str) -> bool:
    """Whether two hosts belong to one site (the same registrable domain). Ports and
    schemes do not matter; an empty host is nobody's site."""
    site = site_of(host_a)
    return bool(site) and site == site_of(host_b)
