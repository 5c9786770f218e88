"""Dates: relative time in a question -> a publication-date range, and lenient date reading.

Stdlib only, pure functions, thread-safe. :func:`resolve_dates` finds ONE expression in a
question (case-insensitive, whole words only; the earliest one, the longest where two
start at the same place) and reads it against ``as_of``, the day the question is asked.
Every range is inclusive and never ends after ``as_of``:

* ``today``, ``yesterday``: that day.
* ``this week|month|year``: Monday of as_of's week / the 1st / 1 January .. as_of.
* ``last week|month|year``: the whole previous calendar week (Monday..Sunday), month, year.
* ``[the] past|last|previous N days|weeks|months|years`` (N: digits or one..twelve), and
  ``past week``, ``the last month``...  (N = 1): rolling, ``as_of - N units + 1 day`` ..
  as_of, so "past 7 days" is 7 days counting today; months and years go to the same day
  (clamped: 31 March - 1 month = 29 February in a leap year). So "in the last year" is
  the 12 months up to today, while a bare "last year" is the previous calendar year.
* ``since <weekday>``: the latest such weekday *strictly before* as_of (asked on a
  Monday, "since Monday" starts a week ago) .. open. ``since yesterday|last week|last
  month|last year``: the first day of that range .. open.
* ``since <Month> [<day>] [<year>]``, ``since <day> <Month> [<year>]``, ``since
  YYYY-MM-DD``: that day .. open; without a year, the latest such day not after as_of.
* ``in|during <Month>``: the latest such month not after as_of (in December 2026 "in
  March" is March 2026, in February 2026 it is March 2025); the current month runs to
  as_of. With ``[of] <year>``, ``this year`` or ``last year``: only as_of's year or the one
  before -- "in March 1917" names an event, not when the news was published.

Month names may be abbreviated (Jan, Feb., Sept). "may" is a month only when written
"May" or followed by a day or a year ("you may find", "in may be" are not dates).

Deliberately NOT resolved (None): bare years ("in 2024", "since 1998": in news questions
a year almost always dates the event asked about, not the article); other uses of
"last"/"this" ("last name", "the last time", "this weekend", "the last week of the
campaign"); words inside words ("Mar-a-Lago", "todays"); "USA Today"; future days.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.utils import parsedate_tz
from functools import lru_cache

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS |= {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_MONTHS["sept"] = 9
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_WORDS = {w: i for i, w in enumerate("one two three four five six seven eight nine ten "
                                     "eleven twelve".split(), 1)}
_NUM = r"\d{1,4}|" + "|".join(_WORDS)
_MON = "|".join(sorted(_MONTHS, key=len, reverse=True))


def _month(g: str) -> str:
    return rf"(?P<{g}>{_MON})\.?(?![\w-])"


_DAY = r"(?P<{}>\d{{1,2}})(?:st|nd|rd|th)?(?!\w)"
_YEAR = r"(?P<{}>\d{{4}})(?!\d)"
_F = re.IGNORECASE
_DAY_RE = re.compile(r"(?<!usa )\b(?P<day>today|yesterday)\b", _F)
_CALENDAR_RE = re.compile(r"\b(?P<which>this|last)\s+(?P<unit>week|month|year)\b"
                          r"(?!\s+of\b)", _F)
_ROLLING_RE = re.compile(
    rf"\b(?:(?:the\s+)?(?:past|last|previous)\s+(?P<n>{_NUM})\s+(?P<unit>(?:day|week|month|"
    rf"year)s?)|(?:the\s+(?:past|last)|past)\s+(?P<unit1>week|month|year))\b(?!\s+of\b)", _F)
_SINCE_RE = re.compile(
    rf"\bsince\s+(?:(?:last\s+)?(?P<wd>{'|'.join(_WEEKDAYS)})\b|(?P<rel>yesterday|last\s+"
    rf"(?:week|month|year))\b|(?P<iso>\d{{4}}-\d{{2}}-\d{{2}})(?!\d)|(?:the\s+)?"
    rf"{_DAY.format('d1')}\s+(?:of\s+)?{_month('m1')}(?:,?\s+{_YEAR.format('y1')})?|"
    rf"{_month('m2')}(?:\s+{_DAY.format('d2')})?(?:,?\s+{_YEAR.format('y2')})?)", _F)
_IN_RE = re.compile(rf"\b(?:in|during)\s+{_month('m')}(?:,?\s+(?:of\s+)?(?:"
                    rf"{_YEAR.format('y')}|(?P<rel>this|last)\s+year\b))?", _F)


@dataclass(frozen=True)
class DateRange:
    """Publication dates ``since``..``until``, both inclusive; None leaves that side open.

    ``phrase`` is the question's words it was read from, verbatim, and
    ``question[start:end] == phrase``; ``start == end == -1`` when not from a question."""
    since: date | None
    until: date | None
    phrase: str = ""
    start: int = -1
    end: int = -1

    def describe(self) -> str:
        """For a person, e.g. 'published 2026-11-23 to 2026-11-29 (from "last week")'."""
        s, u = self.since, self.until
        if s and u:
            text = f"published on {s}" if s == u else f"published {s} to {u}"
        else:
            text = f"published since {s}" if s else f"published until {u}" if u else \
                "published any time"
        return f'{text} (from "{self.phrase}")' if self.phrase else text

    def contains(self, d: date | None) -> bool:
        """Whether ``d`` lies in the range (an open side admits anything); None -> False."""
        if d is None:
            return False
        return (self.since is None or self.since <= d) and (self.until is None or d <= self.until)


def _clamp(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _back(d: date, n: int, unit: str) -> date:
    """``d`` minus ``n`` days/weeks/months/years (unit's first letter), day clamped."""
    if unit[0] in "dw":
        return d - timedelta(days=n * (7 if unit[0] == "w" else 1))
    months = d.year * 12 + d.month - 1 - n * (12 if unit[0] == "y" else 1)
    return _clamp(months // 12, months % 12 + 1, d.day)


def _month_range(year: int, month: int, as_of: date) -> tuple[date, date] | None:
    first = date(year, month, 1)
    if first > as_of:
        return None
    return first, min(_clamp(year, month, 31), as_of)


def _latest(month: int, day: int | None, as_of: date) -> date | None:
    """The latest ``month``/``day`` (day 1 when None) not after as_of."""
    for year in range(as_of.year, as_of.year - 8, -1):
        try:
            d = date(year, month, day or 1)
        except ValueError:
            continue
        if d <= as_of:
            return d
    return None


def _calendar(which: str, unit: str, as_of: date) -> tuple[date, date]:
    unit = unit.lower()
    if unit == "week":
        monday = as_of - timedelta(days=as_of.weekday())
        return (monday, as_of) if which == "this" else (monday - timedelta(7),
                                                        monday - timedelta(1))
    if unit == "month":
        if which == "this":
            return as_of.replace(day=1), as_of
        last = as_of.replace(day=1) - timedelta(1)
        return last.replace(day=1), last
    if which == "this":
        return date(as_of.year, 1, 1), as_of
    return date(as_of.year - 1, 1, 1), date(as_of.year - 1, 12, 31)


def _may_ok(m: re.Match, group: str, *qualifiers: str | None) -> bool:
    """Whether the month in ``group`` counts: "may" only as "May" or with a day/year."""
    return m[group].lower() != "may" or m[group] == "May" or any(qualifiers)


def _read(kind: str, m: re.Match, as_of: date) -> tuple[date | None, date | None] | None:
    if kind == "day":
        d = as_of - timedelta(days=m["day"].lower() == "yesterday")
        return d, d
    if kind == "calendar":
        return _calendar(m["which"].lower(), m["unit"], as_of)
    if kind == "rolling":
        n = m["n"].lower() if m["n"] else "1"
        n = _WORDS.get(n) or int(n)
        unit = (m["unit"] or m["unit1"]).lower()
        return (_back(as_of, n, unit) + timedelta(1), as_of) if n else None
    if kind == "in":
        if not _may_ok(m, "m", m["y"], m["rel"]):
            return None
        month = _MONTHS[m["m"].lower()]
        if m["y"] or m["rel"]:
            year = int(m["y"]) if m["y"] else as_of.year - (m["rel"].lower() == "last")
            return _month_range(year, month, as_of) if as_of.year - year in (0, 1) else None
        return _month_range((_latest(month, None, as_of) or as_of).year, month, as_of)
    # since: an open range from one day
    if m["wd"]:
        back = (as_of.weekday() - _WEEKDAYS[m["wd"].lower()]) % 7 or 7
        since = as_of - timedelta(days=back)
    elif m["rel"]:
        words = m["rel"].lower().split()
        since = as_of - timedelta(1) if len(words) == 1 else _calendar(*words, as_of)[0]
    elif m["iso"]:
        since = date.fromisoformat(m["iso"])
    else:
        g, day, year = ("1", m["d1"], m["y1"]) if m["m1"] else ("2", m["d2"], m["y2"])
        if not _may_ok(m, "m" + g, day, year):
            return None
        month = _MONTHS[m["m" + g].lower()]
        since = date(int(year), month, int(day or 1)) if year else \
            _latest(month, int(day) if day else None, as_of)
    return (since, None) if since and since <= as_of else None


_PATTERNS = (("day", _DAY_RE), ("calendar", _CALENDAR_RE), ("rolling", _ROLLING_RE),
             ("since", _SINCE_RE), ("in", _IN_RE))


def resolve_dates(question: str, as_of: date) -> DateRange | None:
    """The publication dates the question's relative time asks for, read against
    ``as_of``, or None when it has none (see the module docstring for exactly what is
    read). ``phrase``/``start``/``end`` locate the words used in ``question``. A match
    that cannot be used (an old year, "may" the verb, a future day) also hides the
    shorter matches inside it."""
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    found = sorted(((m.start(), -m.end(), kind, m) for kind, rx in _PATTERNS
                    for m in rx.finditer(question)), key=lambda x: (x[0], x[1]))
    taken = -1
    for start, neg_end, kind, m in found:
        if start < taken:
            continue
        try:
            got = _read(kind, m, as_of)
        except (ValueError, OverflowError):  # impossible or out-of-range day
            got = None
        if got:
            return DateRange(got[0], got[1], question[start:-neg_end], start, -neg_end)
        taken = -neg_end
    return None


_ISO = re.compile(r"(\d{4})(?:[-/](\d{1,2})(?:[-/](\d{1,2}))?)?(?=$|[T ]\d)", re.I)
_DMY = re.compile(rf"{_DAY.format('d')}\s+(?:of\s+)?{_month('m')},?\s+{_YEAR.format('y')}$",
                  re.I)
_MDY = re.compile(rf"{_month('m')}\s+(?:{_DAY.format('d')},?\s+)?{_YEAR.format('y')}$", re.I)
_AGO = re.compile(rf"(?P<n>{_NUM})\s*(?:(?P<u>[dwmy])|(?P<unit>(?:day|week|month|year)s?)"
                  r"\s+ago)$", re.I)
_WEEKDAY_PREFIX = re.compile(rf"^(?:{'|'.join(_WEEKDAYS)}|{'|'.join(calendar.day_abbr)})"
                             r"\.?,?\s+", re.I)


# Words that make a question about the articles themselves ("news from last week", "what
# was reported in March"): only then is relative time a hard publication-date filter.
# Elsewhere it usually dates the event asked about ("How many phones were sold last
# year?"), and the answer may be in a story of any date (tests/data/date_questions.jsonl).
_ABOUT_ARTICLES_RE = re.compile(
    r"\b(?:news|stories|story|articles?|headlines?|coverage|covered|reported|reports|"
    r"reporting|published|press|bulletins?|the papers|newspapers?|what(?:'s| is| was| has"
    r" been)? (?:new|happening|happened|said)|latest)\b", _F)


def about_articles(question: str) -> bool:
    """Whether ``question`` asks about what the articles said in a period (then its time
    words filter by publication date), rather than about an event dated by them (then
    they prefer that period and fall back to all articles: :func:`rag.answer.ask`)."""
    return _ABOUT_ARTICLES_RE.search(question) is not None


def _absolute(text: str, end: bool) -> date | None:
    """A written date (ISO, day-month-year, month-day-year, with or without the day or
    month), its first day or, with ``end``, its last; None when not of these forms.
    Raises ValueError for an impossible one such as 2026-02-30."""
    text = _WEEKDAY_PREFIX.sub("", text.strip())
    if m := _ISO.match(text):
        y, mo, d = int(m[1]), m[2], m[3]
        if d:
            return date(y, int(mo), int(d))
        if mo:
            first = date(y, int(mo), 1)
            return _clamp(y, first.month, 31) if end else first
        return date(y, 12, 31) if end else date(y, 1, 1)
    if m := (_DMY.match(text) or _MDY.match(text)):
        y, mo = int(m["y"]), _MONTHS[m["m"].lower()]
        if m["d"]:
            return date(y, mo, int(m["d"]))
        return _clamp(y, mo, 31 if end else 1)
    return None


def parse_date(text: str, as_of: date | None = None, *, end: bool = False) -> date:
    """A date a person typed as a filter: ``2026-11-27``; ``2026-11`` or ``2026`` (their
    first day, or with ``end`` their last); ``27 November 2026``, ``Nov 27, 2026``; and,
    when ``as_of`` is given, ``7d``/``2w``/``3m``/``1y`` or ``7 days ago`` (that long
    before as_of) or a whole phrase :func:`resolve_dates` reads ("last week",
    "yesterday"): its first day, or with ``end`` its last. Raises ValueError otherwise,
    and for impossible dates such as 2026-02-30."""
    cannot = ValueError(f"cannot read {text!r} as a date (use YYYY-MM-DD)")
    if not isinstance(text, str) or not text.strip():
        raise cannot
    try:
        found = _absolute(text, end)
    except ValueError as exc:
        raise ValueError(f"{text.strip()!r} is not a real date ({exc})") from None
    if found:
        return found
    if as_of is None:
        raise cannot
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    text = text.strip()
    if m := _AGO.match(text):
        n = m["n"].lower()
        try:
            return _back(as_of, _WORDS.get(n) or int(n), (m["u"] or m["unit"]).lower())
        except (ValueError, OverflowError):
            raise cannot from None
    r = resolve_dates(text, as_of)
    if r is None or text[:r.start].strip().lower() not in ("", "in", "during", "over") \
            or text[r.end:].strip(" ."):
        raise cannot
    day = r.until if end else r.since
    if day is None:
        raise ValueError(f"{text!r} has no end date: give one as YYYY-MM-DD")
    return day


def published_date(value: str | None) -> date | None:
    """The date of an article's stored ``published`` value, or None when empty or
    unreadable; never raises. Reads ISO dates and datetimes (the date as written, with
    no time-zone conversion), ``2025-01`` (its 1st), RFC 2822 ("Tue, 03 Nov 2026 10:00:00
    GMT"), "27 January 2025", "January 27, 2025". Cached: values repeat."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    return _published(value)


@lru_cache(maxsize=8192)
def _published(value: str) -> date | None:
    text = " ".join(value.split())[:200]
    if not text:
        return None
    try:
        found = _absolute(text, False)
        if found is None and (t := parsedate_tz(text)) and t[0] >= 1000:
            found = date(t[0], t[1], t[2])
    except (ValueError, OverflowError, TypeError, IndexError):
        return None
    return found if found and 1000 <= found.year <= 9999 else None
