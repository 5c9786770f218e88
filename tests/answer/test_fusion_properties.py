"""Property tests (issue 25, item 6): reciprocal rank fusion against a brute-force oracle,
ties included, and make_filters is idempotent."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.answer.filters import make_filters
from rag.answer.search import RRF_K, fuse

rankings = st.lists(st.integers(0, 30), unique=True, max_size=15)


def oracle(dense: list[int], keyword: list[int], n: int, key) -> list[tuple]:
    """Every item's fused score summed by hand; order by score, then ``key``."""
    items = set(dense) | set(keyword)
    score = {c: sum(1.0 / (RRF_K + r + 1) for ranking in (dense, keyword)
                    for r, x in enumerate(ranking) if x == c) for c in items}
    order = sorted(items, key=lambda c: (-score[c], key(c)))[:n]
    return [(c, score[c], dense.index(c) if c in dense else None,
             keyword.index(c) if c in keyword else None) for c in order]


@settings(max_examples=300, deadline=None)
@given(rankings, rankings, st.integers(1, 20), st.booleans())
def test_fuse_equals_the_brute_force_oracle_ties_by_key(dense, keyword, n, reverse):
    key = (lambda c: -c) if reverse else (lambda c: c)  # the total order of equal scores
    got = fuse([(c, 1.0) for c in dense], [(c, 1.0) for c in keyword], n, key)
    want = oracle(dense, keyword, n, key)
    assert [g[0] for g in got] == [w[0] for w in want]
    assert all(abs(g[1] - w[1]) < 1e-12 and g[2:] == w[2:] for g, w in zip(got, want))


names = st.lists(st.from_regex(r"[A-Za-z][A-Za-z ./-]{0,10}", fullmatch=True), max_size=3)
dates = st.one_of(st.none(), st.dates().map(lambda d: d.isoformat()))


@settings(max_examples=200, deadline=None)
@given(names, names, dates, names, names)
def test_make_filters_is_idempotent(sources, authors, since, ids, folders):
    raw = {"sources": sources, "authors": authors, "since": since, "article_ids": ids,
           "folders": folders}
    once = make_filters(raw, None)
    assert make_filters(once, None) == once
    if once is not None:
        assert make_filters(once.to_dict(), None) == once
