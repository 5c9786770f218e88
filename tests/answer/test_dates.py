"""rag.answer.dates: relative time in questions, filter values, stored published dates."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

import pytest

from rag.answer.dates import DateRange, parse_date, published_date, resolve_dates

AS_OF = date(2026, 12, 4)
D = date


def test_as_of_is_a_friday():
    assert calendar.day_name[AS_OF.weekday()] == "Friday"


def _check(question: str, as_of: date) -> DateRange | None:
    """resolve_dates plus the invariants every result must keep."""
    r = resolve_dates(question, as_of)
    if r is not None:
        assert question[r.start:r.end] == r.phrase and r.phrase
        assert r.since is not None or r.until is not None
        if r.since and r.until:
            assert r.since <= r.until
        if r.until:
            assert r.until <= as_of
        if r.since:
            assert r.since <= as_of
    return r


RESOLVED = [
    # question, since, until, phrase
    ("What happened today?", D(2026, 12, 4), D(2026, 12, 4), "today"),
    ("Who resigned yesterday?", D(2026, 12, 3), D(2026, 12, 3), "yesterday"),
    ("What did Reuters report this week?", D(2026, 11, 30), D(2026, 12, 4), "this week"),
    ("What did the union say last week?", D(2026, 11, 23), D(2026, 11, 29), "last week"),
    ("Rail strike news THIS MONTH", D(2026, 12, 1), D(2026, 12, 4), "THIS MONTH"),
    ("What rose last month?", D(2026, 11, 1), D(2026, 11, 30), "last month"),
    ("Floods this year", D(2026, 1, 1), D(2026, 12, 4), "this year"),
    ("Who won the election last year?", D(2025, 1, 1), D(2025, 12, 31), "last year"),
    ("last year's budget", D(2025, 1, 1), D(2025, 12, 31), "last year"),
    ("news from the past 7 days", D(2026, 11, 28), D(2026, 12, 4), "the past 7 days"),
    ("What changed over the past two weeks?", D(2026, 11, 21), D(2026, 12, 4),
     "the past two weeks"),
    ("any strikes in the last 3 days", D(2026, 12, 2), D(2026, 12, 4), "the last 3 days"),
    ("prices last 2 months", D(2026, 10, 5), D(2026, 12, 4), "last 2 months"),
    ("past twelve months", D(2025, 12, 5), D(2026, 12, 4), "past twelve months"),
    ("the previous 1 day", D(2026, 12, 4), D(2026, 12, 4), "the previous 1 day"),
    ("storms in the past week", D(2026, 11, 28), D(2026, 12, 4), "the past week"),
    ("past month", D(2026, 11, 5), D(2026, 12, 4), "past month"),
    ("What changed in the last year?", D(2025, 12, 5), D(2026, 12, 4), "the last year"),
    ("in the past 3 years", D(2023, 12, 5), D(2026, 12, 4), "the past 3 years"),
    ("What happened since Monday?", D(2026, 11, 30), None, "since Monday"),
    ("since friday", D(2026, 11, 27), None, "since friday"),  # as_of is a Friday
    ("since Saturday", D(2026, 11, 28), None, "since Saturday"),
    ("since last Thursday", D(2026, 12, 3), None, "since last Thursday"),
    ("since yesterday", D(2026, 12, 3), None, "since yesterday"),
    ("since last week", D(2026, 11, 23), None, "since last week"),
    ("since last year", D(2025, 1, 1), None, "since last year"),
    ("news since March", D(2026, 3, 1), None, "since March"),
    ("since March 5th", D(2026, 3, 5), None, "since March 5th"),
    ("since Dec 5", D(2025, 12, 5), None, "since Dec 5"),  # Dec 5 2026 is tomorrow
    ("since December", D(2026, 12, 1), None, "since December"),
    ("since 5 March 2025", D(2025, 3, 5), None, "since 5 March 2025"),
    ("since March 5, 2024", D(2024, 3, 5), None, "since March 5, 2024"),
    ("since Jan. 2026", D(2026, 1, 1), None, "since Jan. 2026"),
    ("since May", D(2026, 5, 1), None, "since May"),
    ("anything since 2026-11-01?", D(2026, 11, 1), None, "since 2026-11-01"),
    ("What happened in March?", D(2026, 3, 1), D(2026, 3, 31), "in March"),
    ("what happened in march", D(2026, 3, 1), D(2026, 3, 31), "in march"),
    ("strikes during Feb.", D(2026, 2, 1), D(2026, 2, 28), "during Feb."),
    ("in Sept", D(2026, 9, 1), D(2026, 9, 30), "in Sept"),
    ("in December", D(2026, 12, 1), D(2026, 12, 4), "in December"),
    ("Who spoke in May?", D(2026, 5, 1), D(2026, 5, 31), "in May"),
    ("in May 2026", D(2026, 5, 1), D(2026, 5, 31), "in May 2026"),
    ("in may 2026", D(2026, 5, 1), D(2026, 5, 31), "in may 2026"),
    ("in March 2025", D(2025, 3, 1), D(2025, 3, 31), "in March 2025"),
    ("in March, 2025", D(2025, 3, 1), D(2025, 3, 31), "in March, 2025"),
    ("in December of 2025", D(2025, 12, 1), D(2025, 12, 31), "in December of 2025"),
    ("in March last year", D(2025, 3, 1), D(2025, 3, 31), "in March last year"),
    ("in March this year", D(2026, 3, 1), D(2026, 3, 31), "in March this year"),
    # the first expression wins; an unusable one does not hide a later one
    ("last week, and this year", D(2026, 11, 23), D(2026, 11, 29), "last week"),
    ("What happened in March 1917, as reported last week?", D(2026, 11, 23),
     D(2026, 11, 29), "last week"),
]


@pytest.mark.parametrize("question,since,until,phrase", RESOLVED)
def test_resolves(question, since, until, phrase):
    r = _check(question, AS_OF)
    assert r is not None and (r.since, r.until, r.phrase) == (since, until, phrase)
    assert r.start == question.index(phrase) and r.end == r.start + len(phrase)


@pytest.mark.parametrize("question", [
    "What happened in 2024?", "in 1998", "since 1998", "What did he say in 2026?",
    "What is his last name?", "When was the last time it flooded?", "last season's final",
    "the last week of the campaign", "the last three years of the war", "this weekend",
    "last weekend", "the last day of the trial", "the past few days",
    "You may find it useful", "in may be", "since may", "What happened in March 1917?",
    "in March 2024", "in January 2027", "in December 2027", "since 2027-01-01",
    "since 2026-02-30", "since Dec 5 2026", "What is Mar-a-Lago?", "in Mar-a-Lago",
    "todays news", "yesterdays", "the lastweek", "thisweek", "in Marchland",
    "What did USA Today report?", "past 0 days", "since Mondays", "in the past",
    "the past 9999 years", "",
])
def test_not_resolved(question):
    assert _check(question, AS_OF) is None


def test_in_month_wraps_to_last_year():
    feb = D(2026, 2, 10)
    r = _check("in March", feb)
    assert (r.since, r.until) == (D(2025, 3, 1), D(2025, 3, 31))
    r = _check("in February", feb)
    assert (r.since, r.until) == (D(2026, 2, 1), D(2026, 2, 10))
    assert _check("in March 2026", feb) is None  # not yet
    r = _check("in March 2025", feb)
    assert (r.since, r.until) == (D(2025, 3, 1), D(2025, 3, 31))
    assert _check("in March 2024", feb) is None  # older than last year: an event


def test_month_and_week_wraps_in_january():
    jan = D(2026, 1, 7)  # a Wednesday
    r = _check("last month", jan)
    assert (r.since, r.until) == (D(2025, 12, 1), D(2025, 12, 31))
    r = _check("last week", jan)
    assert (r.since, r.until) == (D(2025, 12, 29), D(2026, 1, 4))
    r = _check("this week", jan)
    assert (r.since, r.until) == (D(2026, 1, 5), D(2026, 1, 7))
    r = _check("past 2 months", jan)
    assert (r.since, r.until) == (D(2025, 11, 8), D(2026, 1, 7))
    r = _check("since December", jan)
    assert (r.since, r.until) == (D(2025, 12, 1), None)


def test_since_weekday_on_that_weekday_goes_back_a_week():
    monday = D(2026, 11, 30)
    assert _check("since Monday", monday).since == D(2026, 11, 23)
    assert _check("since Sunday", monday).since == D(2026, 11, 29)


def test_leap_years():
    r = _check("past 1 month", D(2024, 3, 31))  # 31 March - 1 month = 29 February
    assert (r.since, r.until) == (D(2024, 2, 29) + timedelta(1), D(2024, 3, 31))
    r = _check("past 1 month", D(2024, 3, 29))  # 29 February exists: the day after it
    assert r.since == D(2024, 3, 1)
    r = _check("past 1 month", D(2023, 3, 29))  # no 29 February: clamped to the 28th
    assert r.since == D(2023, 3, 1)
    r = _check("last month", D(2024, 3, 15))
    assert (r.since, r.until) == (D(2024, 2, 1), D(2024, 2, 29))
    r = _check("in February", D(2024, 12, 1))
    assert (r.since, r.until) == (D(2024, 2, 1), D(2024, 2, 29))
    r = _check("past 1 year", D(2024, 2, 29))
    assert (r.since, r.until) == (D(2023, 3, 1), D(2024, 2, 29))
    assert _check("since February 29", D(2026, 12, 4)).since == D(2024, 2, 29)


def test_datetime_as_of_is_read_as_its_date():
    r = resolve_dates("yesterday", datetime(2026, 12, 4, 23, 59))
    assert r.since == D(2026, 12, 3) and type(r.since) is date


PHRASES = ["today", "yesterday", "this week", "last week", "this month", "last month",
           "this year", "last year", "past 7 days", "the last two weeks", "past 3 months",
           "past 1 month", "the past year", "in the last 2 years", "since Monday",
           "since Sunday", "since yesterday", "since last month", "since March",
           "since February 29", "since Dec 31", "in March", "in February", "in December",
           "in January last year", "in May 2024", "in Nov 2023", "during Sept."]


def test_property_every_range_is_sane_for_a_year_of_days():
    """Over 400 consecutive days: ranges never reversed, never after as_of, offsets
    exact, and a range from a question contains its own end."""
    for i in range(400):
        as_of = D(2023, 12, 1) + timedelta(days=i)
        for p in PHRASES:
            q = f"What was said {p}?"
            r = _check(q, as_of)
            if r is None:
                continue
            assert r.contains(r.since) and (r.until is None or r.contains(r.until))
            assert not r.contains(as_of + timedelta(1)) or r.until is None


def test_describe_and_contains():
    assert resolve_dates("last week", AS_OF).describe() == \
        'published 2026-11-23 to 2026-11-29 (from "last week")'
    assert DateRange(D(2026, 11, 30), None).describe() == "published since 2026-11-30"
    assert DateRange(None, D(2026, 1, 31)).describe() == "published until 2026-01-31"
    assert DateRange(D(2026, 12, 4), D(2026, 12, 4)).describe() == "published on 2026-12-04"
    assert DateRange(D(2026, 11, 23), D(2026, 11, 29)).describe() == \
        "published 2026-11-23 to 2026-11-29"
    r = DateRange(D(2026, 11, 23), D(2026, 11, 29))
    assert r.contains(D(2026, 11, 23)) and r.contains(D(2026, 11, 29))
    assert not r.contains(D(2026, 11, 22)) and not r.contains(D(2026, 11, 30))
    assert not r.contains(None)
    assert DateRange(D(2026, 11, 30), None).contains(D(2030, 1, 1))
    assert DateRange(None, D(2026, 1, 31)).contains(D(1900, 1, 1))
    assert (r.phrase, r.start, r.end) == ("", -1, -1)
    with pytest.raises(AttributeError):
        r.since = None  # frozen


@pytest.mark.parametrize("text,start,end", [
    ("2026-11-27", D(2026, 11, 27), D(2026, 11, 27)),
    (" 2026-11-27 ", D(2026, 11, 27), D(2026, 11, 27)),
    ("2026-11", D(2026, 11, 1), D(2026, 11, 30)),
    ("2024-02", D(2024, 2, 1), D(2024, 2, 29)),
    ("2026", D(2026, 1, 1), D(2026, 12, 31)),
    ("27 November 2026", D(2026, 11, 27), D(2026, 11, 27)),
    ("Nov 27, 2026", D(2026, 11, 27), D(2026, 11, 27)),
    ("November 27 2026", D(2026, 11, 27), D(2026, 11, 27)),
    ("November 2026", D(2026, 11, 1), D(2026, 11, 30)),
    ("last week", D(2026, 11, 23), D(2026, 11, 29)),
    ("Last Week", D(2026, 11, 23), D(2026, 11, 29)),
    ("yesterday", D(2026, 12, 3), D(2026, 12, 3)),
    ("today", D(2026, 12, 4), D(2026, 12, 4)),
    ("7d", D(2026, 11, 27), D(2026, 11, 27)),
    ("2w", D(2026, 11, 20), D(2026, 11, 20)),
    ("1m", D(2026, 11, 4), D(2026, 11, 4)),
    ("3 days ago", D(2026, 12, 1), D(2026, 12, 1)),
    ("the past 7 days", D(2026, 11, 28), D(2026, 12, 4)),
    ("in the last 3 days", D(2026, 12, 2), D(2026, 12, 4)),
    ("in March", D(2026, 3, 1), D(2026, 3, 31)),
])
def test_parse_date(text, start, end):
    assert parse_date(text, AS_OF) == start
    assert parse_date(text, AS_OF, end=True) == end


def test_parse_date_since_phrase_has_no_end():
    assert parse_date("since Monday", AS_OF) == D(2026, 11, 30)
    with pytest.raises(ValueError, match="no end date"):
        parse_date("since Monday", AS_OF, end=True)


@pytest.mark.parametrize("text", [
    "", "   ", "the day after", "soonish", "someday", "next week", "last week please",
    "what happened last week", "27/11/2026", "Nov 2026 27", "20261127", "7x", "d7",
    "in 2024", "last name",
])
def test_parse_date_unreadable(text):
    with pytest.raises(ValueError, match="cannot read .* as a date \\(use YYYY-MM-DD\\)"):
        parse_date(text, AS_OF)


@pytest.mark.parametrize("text", ["2026-02-30", "2026-13-01", "2026-00", "30 February 2026",
                                  "Feb 29, 2026", "2026-11-31"])
def test_parse_date_impossible(text):
    with pytest.raises(ValueError, match="not a real date"):
        parse_date(text, AS_OF)


def test_parse_date_relative_needs_as_of():
    assert parse_date("2026-11-27") == D(2026, 11, 27)
    for text in ("last week", "7d", "yesterday"):
        with pytest.raises(ValueError, match="cannot read"):
            parse_date(text)
    with pytest.raises(ValueError, match="cannot read"):
        parse_date(None, AS_OF)  # type: ignore[arg-type]


@pytest.mark.parametrize("value,expected", [
    ("2026-11-27", D(2026, 11, 27)),
    ("2026-11-03T10:00:00Z", D(2026, 11, 3)),
    ("2026-11-03T23:30:00-05:00", D(2026, 11, 3)),  # the date as written, no conversion
    ("2026-11-03T00:30:00+09:00", D(2026, 11, 3)),
    ("2026-11-03 08:15:00.123456", D(2026, 11, 3)),
    ("  2026-11-03\n", D(2026, 11, 3)),
    ("2025-01", D(2025, 1, 1)),
    ("2025", D(2025, 1, 1)),
    ("Tue, 03 Nov 2026 10:00:00 GMT", D(2026, 11, 3)),
    ("Tue, 03 Nov 2026 23:59:59 -0800", D(2026, 11, 3)),
    ("3 Nov 2026 10:00 +0000", D(2026, 11, 3)),
    ("27 January 2025", D(2025, 1, 27)),
    ("January 27, 2025", D(2025, 1, 27)),
    ("Jan. 27, 2025", D(2025, 1, 27)),
    ("Monday, 27th January 2025", D(2025, 1, 27)),
    ("2025/01/27", D(2025, 1, 27)),
    ("", None), ("   ", None), (None, None), ("garbage", None), ("unknown", None),
    ("n/a", None), ("2025-02-30", None), ("2025-13", None), ("0000-01-01", None),
    ("99999", None), ("Mon, 32 Foo 2026", None), ("yesterday", None), ("last week", None),
    ("27 Smarch 2025", None), ("2025-01-27garbage", None), ("x" * 10_000, None),
    (12, None), (["2025-01-01"], None), ({"a": 1}, None),
    (D(2025, 1, 27), D(2025, 1, 27)), (datetime(2025, 1, 27, 23, 0), D(2025, 1, 27)),
])
def test_published_date(value, expected):
    assert published_date(value) == expected


def test_published_date_is_cached_and_returns_plain_dates():
    a = published_date("Tue, 03 Nov 2026 10:00:00 GMT")
    assert a is published_date("Tue, 03 Nov 2026 10:00:00 GMT")
    assert type(a) is date
