"""Property tests of canonical_url (issue 25, item 6): an article id must not change when
it is canonicalised again, and tracking parameters never survive."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.ingest.web import canonical_url

hosts = st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,12}(\.[a-zA-Z][a-zA-Z0-9-]{0,8}){1,3}\.?",
                      fullmatch=True)
paths = st.lists(st.from_regex(r"[A-Za-z0-9._~%-]{0,10}", fullmatch=True), max_size=4).map(
    lambda parts: "/".join(parts))
keys = st.sampled_from(["id", "page", "q", "utm_source", "utm_Medium", "fbclid", "GCLID",
                        "ref", "a b", "x"])
values = st.from_regex(r"[A-Za-z0-9 %&=+]{0,8}", fullmatch=True)


@st.composite
def urls(draw) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    port = draw(st.sampled_from(["", ":80", ":443", ":8080"]))
    query = "&".join(f"{k}={v}" for k, v in draw(st.lists(st.tuples(keys, values),
                                                          max_size=4)))
    frag = draw(st.sampled_from(["", "#top", "#"]))
    return (f"{scheme}://{draw(hosts)}{port}/{draw(paths)}"
            + (f"?{query}" if query else "") + frag)


@settings(max_examples=300, deadline=None)
@given(urls())
def test_canonical_url_is_idempotent_and_drops_tracking(url):
    once = canonical_url(url)
    assert canonical_url(once) == once
    assert "#" not in once and once.split("://")[0] in ("http", "https")
    query = once.split("?", 1)[1] if "?" in once else ""
    names = [kv.split("=", 1)[0].lower() for kv in query.split("&") if kv]
    assert not any(n.startswith("utm_") or n in ("fbclid", "gclid") for n in names)
