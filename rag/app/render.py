"""HTML for the web front end: answers, citation cards, the article viewer, the article list.

Pure functions from :mod:`rag.types` values to HTML strings; nothing here computes an
answer. Article text is untrusted: every piece of it is HTML-escaped, and the quote is
wrapped in ``<mark>`` using the stored character offsets (``Citation.start/end``), never
by searching for the quote's text. When the offsets do not fit the text (an article
changed since the answer was given), the text is shown without a mark and a note says so.
Links are only emitted for ``http``/``https`` URLs.
"""

from __future__ import annotations

import html
import re
from typing import Any, Iterable

from ..types import NO_ANSWER, Answer, Article, Citation, describe_date

HIGHLIGHT_ID = "rag-highlight"


def esc(text: object) -> str:
    """``text`` as HTML text or attribute value (quotes escaped too)."""
    return html.escape("" if text is None else str(text), quote=True)


def highlight(text: str, start: int, end: int, *, mark_id: str | None = None,
              cls: str = "rag-quote") -> str:
    """``text`` escaped, with ``text[start:end]`` wrapped in ``<mark>``.

    The offsets are trusted positions, not a search: if they do not lie inside ``text``
    (``0 <= start <= end <= len(text)``) the whole text is returned escaped, unmarked.
    """
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(text)):
        return esc(text)
    ident = f' id="{esc(mark_id)}"' if mark_id else ""
    return (esc(text[:start]) + f'<mark class="{esc(cls)}"{ident}>' + esc(text[start:end])
            + "</mark>" + esc(text[end:]))


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL, else None (no javascript: links)."""
    if url and url.strip().lower().startswith(("http://", "https://")):
        return url.strip()
    return None


def _passage_html(c: Citation) -> str:
    rel_s, rel_e = c.start - c.passage_start, c.end - c.passage_start
    if c.passage[rel_s:rel_e] != c.quote:  # offsets inconsistent: never guess a position
        return esc(c.passage)
    return highlight(c.passage, rel_s, rel_e, cls=_mark_class(c))


def _mark_class(c: Citation) -> str:
    """Answering quotes are highlighted; nearest-but-not-answering ones only underlined."""
    return "rag-quote" if c.answers else "rag-quote rag-near"


def _meta(c: Citation | Article, source: str) -> str:
    parts = [f'<span class="rag-source" title="source">{esc(source)}</span>']
    if getattr(c, "author", None):
        parts.append(f'<span class="rag-author">{esc(c.author)}</span>')
    date = _date(c)
    if date:  # where the date came from; a file's creation date is not "published"
        cls = "rag-date" if getattr(c, "published", None) else "rag-date rag-file-date"
        parts.append(f'<span class="{cls}">{esc(date)}</span>')
    if getattr(c, "page", None):
        parts.append(f'<span class="rag-page">page {int(c.page)}</span>')
    url = safe_url(getattr(c, "url", None))
    if url and url != source:
        parts.append(f'<a class="rag-link" href="{esc(url)}" target="_blank" '
                     f'rel="noopener noreferrer nofollow">link</a>')
    return " · ".join(parts)


def _date(c: Any) -> str:
    """The date of a citation, article or article row (a dict) in words, with where it
    came from (:func:`rag.types.describe_date`)."""
    get = c.get if isinstance(c, dict) else (lambda k: getattr(c, k, None))
    return describe_date(get("published"), get("date_source"), get("file_date"))


# Time words whose meaning depends on when the article was written.
RELATIVE_TIME = re.compile(
    r"\b(yesterday|today|tomorrow|tonight|this (?:week|month|year)|(?:last|next|past) "
    r"(?:week|month|year|weekend)|(?:\d+|a|an|one|two|three|four|five|six|several|few) "
    r"(?:days?|weeks?|months?|years?) ago|(?:on |last |this )?(?:monday|tuesday|wednesday|"
    r"thursday|friday|saturday|sunday)|earlier this (?:week|month|year)|recently)\b",
    re.IGNORECASE)


def relative_time_note(quote: str, published: str | None) -> str:
    """A note placing the quote's relative time words ("last year") at the article's
    published date, or "" when the quote has none or the date is unknown."""
    found = RELATIVE_TIME.search(quote or "")
    if not found or not published:
        return ""
    return (f"“{found.group(0)}” here is relative to {published}, when the article was "
            "published.")


def render_scope(answer: Answer) -> str:
    """The filters the answer was limited to (with dates read from the question)."""
    if not answer.scope:
        return ""
    if answer.filters is None:  # a note on time words that limited nothing in the end
        note = answer.scope[0].upper() + answer.scope[1:]
        return f'<div class="rag-scope" role="note">{esc(note)}</div>'
    return (f'<div class="rag-scope" role="note">Only articles {esc(answer.scope)}</div>')


def render_explain(answer: Answer | None) -> str:
    """A "Why this answer?" disclosure with the evidence of ``answer.explain``."""
    e = answer.explain if answer is not None else None
    if e is None:
        return ""
    facts = [f"<li>{esc(e.detail)}</li>"]
    if e.selector_probability is not None:
        facts.append(f"<li>The answer selector, reading the question with the quote, gives "
                     f"it a probability of {e.selector_probability:.2f}.</li>")
    ranks = []
    for name, rank in (("meaning (dense)", e.dense_rank), ("keyword (BM25)", e.keyword_rank)):
        ranks.append(f"{name} search ranked its passage {rank + 1}" if rank is not None
                     else f"{name} search did not rank its passage in the top "
                          f"{max(e.candidates, 1)}")
    if e.reason in ("answered", "below_threshold"):
        facts.append(f"<li>{esc('; '.join(ranks))}.</li>")
        facts.append(f"<li>The quote holds {e.keyword_coverage:.0%} of the question's terms "
                     f"(weighted by rarity); its passage {e.passage_keyword_coverage:.0%}.</li>")
    scope = (f" in {e.articles_in_scope} article{'s' * (e.articles_in_scope != 1)} "
             "matching the filters" if e.articles_in_scope is not None else "")
    facts.append(f"<li>{e.candidates} passages were considered{esc(scope)}.</li>")
    rows = "".join(
        f'<tr><td>{esc(x.name)}</td><td class="rag-num">{x.value:.3f}</td>'
        f'<td class="rag-num">{x.contribution:+.3f}</td><td>{esc(x.meaning)}</td></tr>'
        for x in e.evidence)
    table = (f'<table class="rag-table rag-why-table"><thead><tr><th>evidence</th>'
             '<th class="rag-num">value</th><th class="rag-num">adds to log-odds</th>'
             f'<th>meaning</th></tr></thead><tbody>{rows}</tbody></table>' if rows else "")
    return (f'<details class="rag-why" data-reason="{esc(e.reason)}"><summary>Why this '
            f'answer?</summary><div class="rag-why-body"><div class="rag-why-code">reason: '
            f'<code>{esc(e.reason)}</code> · confidence {e.confidence:.2f} · threshold '
            f'{e.threshold:.2f} · margin {e.margin:+.2f}</div><ul>{"".join(facts)}</ul>'
            f'{table}</div></details>')


def render_answer(answer: Answer | None) -> str:
    """The answer block: the quote with its ``[1]`` marker, or the plain "not found"
    state; the filters in force above it and "Why this answer?" below."""
    if answer is None:
        return ('<div class="rag-answer rag-empty">Ask a question about the articles; '
                'the answer is a sentence quoted from them, with its sources below.</div>')
    scope, why = render_scope(answer), render_explain(answer)
    if answer.abstained:
        near = (" The nearest passages are shown below; none of them answers it."
                if answer.citations else "")
        return (f'<div class="rag-answer rag-notfound" role="status" '
                f'data-copy="{esc(copy_text(answer))}">{scope}'
                '<div class="rag-notfound-title">Not found in the articles</div>'
                f'<p>{esc(answer.message or NO_ANSWER)}'
                f'{esc(near)}</p>'
                f'<div class="rag-conf">confidence {answer.score:.2f}</div>{why}</div>')
    note = f'<div class="rag-note">{esc(answer.message)}</div>' if answer.message else ""
    first = answer.citations[0] if answer.citations else None
    when = relative_time_note(answer.text, first.published if first else None)
    when = f'<div class="rag-note rag-when">{esc(when)}</div>' if when else ""
    where = (f'<div class="rag-from">— <bdi>{esc(first.title)}</bdi> '
             f'<span class="rag-source">({esc(first.source)}'
             f'{", " + esc(_date(first)) if _date(first) else ""})</span></div>'
             ) if first else ""
    return (f'<div class="rag-answer rag-found" data-copy="{esc(copy_text(answer))}">{scope}'
            f'<div class="rag-answer-quote" dir="auto"><mark class="rag-quote">'
            f'{esc(answer.text)}</mark> <sup class="rag-ref">[1]</sup></div>'
            f'{where}{when}<div class="rag-conf">confidence {answer.score:.2f}</div>{note}'
            f'{why}</div>')


def render_citation(c: Citation) -> str:
    """One citation card: number, title, source/date/link, score bar, passage with mark."""
    pct = max(0.0, min(1.0, float(c.score))) * 100
    badge = ("" if c.answers else
             '<span class="rag-badge" title="shown because it is the nearest passage">'
             'does not answer</span>')
    return (f'<article class="rag-card{"" if c.answers else " rag-card-na"}" '
            f'data-n="{c.n}" data-article-id="{esc(c.article_id)}">'
            f'<header><span class="rag-n">[{c.n}]</span> '
            f'<bdi class="rag-title">{esc(c.title)}</bdi>{badge}</header>'
            f'<div class="rag-meta">{_meta(c, c.source)}'
            f'<span class="rag-score" title="confidence that this quote answers: {c.score:.2f}">'
            f'<span class="rag-bar"><span style="width:{pct:.0f}%"></span></span>'
            f'{c.score:.2f}</span></div>'
            f'<div class="rag-passage" dir="auto">{_passage_html(c)}</div>{_when(c)}'
            f'{_also_in(c)}'
            '</article>')


def _when(c: Citation) -> str:
    note = relative_time_note(c.quote, c.published)
    return f'<div class="rag-also rag-when">{esc(note)}</div>' if note else ""


def _also_in(c: Citation) -> str:
    """The other outlets that carry the same story (syndicated copies), one line."""
    if not c.also_in:
        return ""
    items = []
    for x in c.also_in:
        url = safe_url(x.url)
        label = esc(x.source or x.article_id)
        items.append(f'<a href="{esc(url)}" target="_blank" rel="noopener noreferrer '
                     f'nofollow" title="{esc(x.title)}">{label}</a>' if url
                     else f'<span title="{esc(x.title)}">{label}</span>')
    return f'<div class="rag-also">also in: {", ".join(items)}</div>'


def render_citations(answer: Answer | None) -> str:
    if answer is None or not answer.citations:
        return ""
    head = ("Sources" if not answer.abstained
            else "Nearest passages (they do not answer the question)")
    cards = "".join(render_citation(c) for c in answer.citations)
    return f'<section class="rag-cites"><h3>{head}</h3>{cards}</section>'


def render_article(article: Article | None, c: Citation | None = None, note: str = "") -> str:
    """The whole article with the citation's quote marked (``id="rag-highlight"``)."""
    if article is None:
        msg = note or "Choose a citation to read it in its article."
        return f'<div class="rag-viewer rag-empty">{esc(msg)}</div>'
    text = article.text
    if c is not None and text[c.start:c.end] == c.quote:
        body = highlight(text, c.start, c.end, mark_id=HIGHLIGHT_ID, cls=_mark_class(c))
    else:
        body = esc(text)
        if c is not None and not note:
            note = ("The article has changed since this answer was given, so the quote "
                    "cannot be marked; ask again.")
    extra = f'<div class="rag-note">{esc(note)}</div>' if note else ""
    label = f'<span class="rag-n">[{c.n}]</span> ' if c is not None else ""
    return (f'<div class="rag-viewer"><header>{label}<bdi class="rag-title">'
            f'{esc(article.title)}</bdi><div class="rag-meta">'
            f'{_meta(article, article.source)}</div></header>{extra}'
            f'<div class="rag-article-text" dir="auto">{body}</div></div>')


def render_error(message: str) -> str:
    return f'<div class="rag-answer rag-error" role="alert">{esc(message)}</div>'


def copy_text(answer: Answer | None) -> str:
    """Plain text for the copy button: the quote with ``[1]`` and the citations."""
    if answer is None:
        return ""
    if answer.abstained:
        lines = [answer.message or NO_ANSWER]
    else:
        lines = [f"“{answer.text}” [1]"]
    for c in answer.citations[: 0 if answer.abstained else 1]:
        lines.append(f"[{c.n}] {c.title} — {c.source}")
    return "\n".join(lines)


_SEARCHED = ("id", "title", "source", "author")


def render_article_list(rows: Iterable[dict[str, Any]], query: str = "", page: int = 0,
                        per_page: int | None = None) -> str:
    """The Articles table (title with its copy marker, source, author, date, chunks),
    filtered by ``query`` (case-insensitive, every word in id/title/source/author);
    ``per_page``: that many rows, of page ``page`` (from 0, clamped); None: all."""
    return render_article_page(rows, query, page, per_page)[0]


def render_article_page(rows: Iterable[dict[str, Any]], query: str = "", page: int = 0,
                        per_page: int | None = None) -> tuple[str, int]:
    """:func:`render_article_list`'s HTML and the page it shows (``page`` clamped to
    the pages there are)."""
    rows = list(rows)
    if not rows:
        return ('<div class="rag-list"><div class="rag-empty">No article is indexed yet.'
                '</div></div>', 0)
    words = (query or "").lower().split()
    shown = [r for r in rows if all(w in " ".join(
        str(r.get(k) or "") for k in _SEARCHED).lower() for w in words)]
    per_page = per_page or max(1, len(shown))
    pages = max(1, -(-len(shown) // per_page))
    page = min(max(0, int(page)), pages - 1)
    first = page * per_page
    titles = {r["id"]: r.get("title") or r["id"] for r in rows}
    body = "".join(_article_row(r, titles) for r in shown[first:first + per_page])
    of = f" of {len(rows):,}" if words else ""
    count = (f"{len(shown):,}{of} {_articles(len(rows) if words else len(shown))}"
             if len(shown) <= per_page else
             f"{first + 1:,}–{min(first + per_page, len(shown)):,} of {len(shown):,}{of} "
             f"articles · page {page + 1} of {pages}")
    if words and not shown:
        count = f"No article matches “{esc(query.strip())}” ({len(rows):,} {_articles(len(rows))})"
    return (f'<div class="rag-list"><div class="rag-count">{count}</div>'
            '<div class="rag-table-wrap"><table class="rag-table"><thead><tr><th>Title</th>'
            '<th>Source</th><th>Author</th><th>Date</th><th>Chunks</th></tr></thead>'
            f'<tbody>{body}</tbody></table></div></div>', page)


def _article_row(r: dict[str, Any], titles: dict[str, str]) -> str:
    copy = ""
    if r.get("copy_of"):  # a syndicated copy: answers quote the other article
        of = titles.get(r["copy_of"], r["copy_of"])
        copy = (f' <span class="rag-copy-mark" title="answers quote {esc(of)}">copy of '
                f'{esc(of)}</span>')
    return (f'<tr><td class="rag-title">{esc(r.get("title") or r["id"])}{copy}</td>'
            f'<td class="rag-source">{esc(r.get("source") or "")}</td>'
            f'<td class="rag-author">{esc(r.get("author") or "")}</td>'
            f'<td>{esc(_date(r))}</td>'
            f'<td class="rag-num">{int(r.get("chunks") or 0)}</td></tr>')


def render_status(status: dict[str, Any]) -> str:
    """The Articles tab's status line: when the live index was written, how many
    articles, and (``--watch`` / ``--poll``) what the last background update changed."""
    if status.get("error"):
        return f'<div class="rag-status rag-empty">{esc(status["error"])}</div>'
    created = str(status.get("created") or "")
    when = created.replace("T", " ")[:19]
    n = int(status.get('articles') or 0)
    parts = [f"Index updated {esc(when)} · {n:,} {_articles(n)}"]
    if status.get("segments"):
        segs = int(status["segments"])
        merged = status.get("last_merge") or {}
        parts.append(f"{segs:,} segment{'s' if segs != 1 else ''}"
                     + (f" (last merge {esc(str(merged.get('at', '')).replace('T', ' ')[:19])})"
                        if merged.get("at") else ""))
    model = str(status.get("model") or "")
    if model and not model.startswith(("all-MiniLM-L6-v2", "fake")):
        parts.append(f"model: {esc(model)}")  # the bundled one goes without saying
    langs = {k or "unknown": int(v) for k, v in (status.get("languages") or {}).items()}
    if langs and (len(langs) > 1 or "en" not in langs):
        parts.append("languages: " + ", ".join(f"{esc(k)} {v:,}" for k, v in langs.items()))
    if status.get("watching"):
        parts.append("watching the articles folder")
    if status.get("poll_seconds"):
        parts.append(f"feeds polled every {int(status['poll_seconds']) // 60} min")
    extra = ""
    if status.get("last_changes"):
        first = str(status["last_changes"]).split("\n")[0]
        extra += f'<div class="rag-status-changes">last change: {esc(first)}</div>'
    if status.get("update_error"):
        extra += (f'<div class="rag-status-error">the last update failed (the index is '
                  f'unchanged): {esc(status["update_error"])}</div>')
    extra += render_skipped(status.get("skipped") or [])
    return f'<div class="rag-status">{" · ".join(parts)}{extra}</div>'


def render_skipped(skipped: list[dict[str, Any]], shown: int = 20) -> str:
    """What the background updates could not index (``index_status()["skipped"]``): one
    line each, "<item> skipped: <reason>" (the first ``shown``, then a count)."""
    if not skipped:
        return ""
    rows = "".join(f'<li><span class="rag-source">{esc(s.get("item"))}</span> skipped: '
                   f'{esc(s.get("reason"))}</li>' for s in skipped[:shown])
    more = (f"<li>and {len(skipped) - shown:,} more (see GET /api/status)</li>"
            if len(skipped) > shown else "")
    n = len(skipped)
    return (f'<details class="rag-status-skipped" open><summary>{n:,} '
            f'{"item was" if n == 1 else "items were"} not indexed</summary>'
            f'<ul>{rows}{more}</ul></details>')


def render_feeds(feeds: Iterable[dict[str, Any]]) -> str:
    """The remembered feeds: title (or address), items and when they were last polled."""
    feeds = list(feeds)
    if not feeds:
        return ""
    rows = "".join(
        f'<li><span class="rag-title">{esc(f.get("title") or f.get("url"))}</span> '
        f'<span class="rag-source">{esc(f.get("url"))}</span> · '
        f'{int(f.get("items") or 0)} items · last polled '
        f'{esc(str(f.get("last_polled") or "never").replace("T", " ")[:19])}</li>'
        for f in feeds)
    return f'<div class="rag-feeds"><b>Feeds</b><ul>{rows}</ul></div>'


CSS = """
.rag-scope{font-size:.85em;margin-bottom:6px;padding:2px 8px;border-radius:6px;
  display:inline-block;background:var(--background-fill-primary);
  border:1px solid var(--border-color-primary)}
.rag-why{margin-top:8px;font-size:.9em}.rag-why summary{cursor:pointer;font-weight:600}
.rag-why ul{margin:6px 0 6px 18px;padding:0}.rag-why-code{margin-top:6px;opacity:.85}
.rag-why-table td,.rag-why-table th{padding:3px 6px}
.rag-why-table td:nth-child(-n+3),.rag-why-table th:nth-child(-n+3){white-space:nowrap}
.rag-why-body{overflow-x:auto}
.rag-status{font-size:.85em;opacity:.85;margin-bottom:6px}
.rag-copy-mark{font-size:.8em;padding:0 6px;border-radius:6px;white-space:nowrap;
  border:1px solid var(--border-color-primary);opacity:.8}
.rag-status-error{color:#b91c1c}
.rag-feeds ul{margin:4px 0 0 18px;padding:0;font-size:.9em}
.rag-answer{padding:14px 16px;border-radius:10px;border:1px solid var(--border-color-primary);
  background:var(--background-fill-secondary);}
.rag-answer-quote{margin:0;font-size:1.15em;line-height:1.5;border:none;padding:0}
.rag-answer .rag-from{margin-top:6px;opacity:.85}
.rag-conf,.rag-note{font-size:.85em;opacity:.75;margin-top:4px}
.rag-notfound{border-left:5px solid #d97706}
.rag-notfound-title{font-weight:700;font-size:1.1em;margin-bottom:4px}
.rag-error{border-left:5px solid #dc2626}
.rag-done{border-left:5px solid #16a34a}.rag-confirm{border-left:5px solid #d97706}
.rag-empty{opacity:.75}
.rag-list>.rag-empty{padding:10px 4px}
mark.rag-quote{background:#fde68a;color:#1c1917;border-radius:3px;padding:0 2px}
mark.rag-near{background:transparent;color:inherit;border-radius:0;padding:0;
  border-bottom:2px dashed #d97706}
.rag-ref,.rag-n{color:var(--color-accent);font-weight:700}
.rag-cites h3{margin:14px 0 8px;font-size:1em}
.rag-card{border:1px solid var(--border-color-primary);border-radius:10px;padding:10px 12px;
  margin-bottom:10px;background:var(--background-fill-primary)}
.rag-card-na{opacity:.8;border-style:dashed}
.rag-card header{font-weight:600;overflow-wrap:anywhere}
.rag-badge{margin-left:8px;white-space:nowrap;display:inline-block;font-size:.75em;font-weight:600;padding:1px 6px;border-radius:8px;
  background:#fee2e2;color:#7f1d1d}
.rag-meta{font-size:.82em;opacity:.8;margin:3px 0 6px;display:flex;flex-wrap:wrap;gap:4px 8px;
  align-items:center;overflow-wrap:anywhere}
.rag-score{display:inline-flex;align-items:center;gap:4px;margin-left:auto}
.rag-bar{display:inline-block;width:60px;height:6px;border-radius:3px;
  background:var(--border-color-primary);overflow:hidden}
.rag-bar>span{display:block;height:100%;background:var(--color-accent)}
.rag-also{font-size:.82em;opacity:.8;margin-top:6px;overflow-wrap:anywhere}
.rag-passage{line-height:1.5;white-space:pre-wrap;overflow-wrap:anywhere}
.rag-viewer{max-height:70vh;overflow:auto;padding:10px 12px;border-radius:10px;
  border:1px solid var(--border-color-primary);background:var(--background-fill-primary)}
.rag-viewer header{position:sticky;top:-10px;background:var(--background-fill-primary);
  padding:4px 0 6px;font-weight:600}
.rag-article-text{white-space:pre-wrap;line-height:1.6;overflow-wrap:anywhere}
.rag-table-wrap{overflow-x:auto}
.rag-table{width:100%;border-collapse:collapse;font-size:.9em}
.rag-table th,.rag-table td{text-align:left;padding:6px 8px;
  border-bottom:1px solid var(--border-color-primary);vertical-align:top;overflow-wrap:anywhere}
.rag-num{text-align:right}
.rag-count{font-size:.85em;opacity:.75;margin-bottom:4px}
@media (max-width: 640px){.rag-answer-quote{font-size:1.05em}.rag-score{margin-left:0}
  .rag-viewer{max-height:60vh}}
"""


def _articles(n: int) -> str:
    """"article" or "articles" for a count of ``n`` ("1 article", "2 articles")."""
    return "article" if n == 1 else "articles"
