"""The Ask tab's example questions, drawn from the indexed articles (never a fixed list:
the index may hold anything).

1. A curated list when the articles folder has one: ``<source>/.rag-questions.txt``, one
   question a line (blank lines and ``#`` comments ignored; hidden, so never indexed as an
   article). An empty list means: show none.
2. Else questions made from the titles of the articles, newest first, syndicated copies
   left out: a title that is a question is asked as it is; else its first name (a run of
   capitalised words: "DeepSeek R1", "Sri Lanka", "Council of Europe"; at the title's
   start, where every word is capitalised, two such words or one like "BMW"), or a title
   of one or two words ("Kenya"), becomes "What do the articles say about <it>?". Each is
   asked, and kept only when the articles answer it (the UI must not offer a question
   that abstains).
3. None of these: no examples (the UI hides the row).

:func:`example_questions` caches by the published index version and the curated file's
change time, so the questions are asked once per version, not once per page load.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from ..types import RagError

CURATED = ".rag-questions.txt"
MAX_EXAMPLES = 4
MAX_CANDIDATES = 12  # titles tried (each is one question asked, once per index version)
_NAME_WORD = re.compile(r"^[A-Z0-9][\w'’.&-]*$")
_SMALL = {"A", "An", "The", "In", "On", "At", "Of", "For", "And", "Or", "But", "To", "By",
          "With", "From", "As", "How", "Why", "What", "When", "Who", "Where", "After",
          "Before", "Is", "Are", "Was", "Were"}
_JOINERS = {"of", "de", "del", "la", "du", "von", "van", "der", "and", "&"}
_cache: dict[tuple, list[str]] = {}
_cache_lock = threading.Lock()


def read_curated(source: Path, max_chars: int) -> list[str] | None:
    """The questions of ``source/.rag-questions.txt`` (those within ``max_chars``,
    each once), or None when there is no such file."""
    path = Path(source) / CURATED
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:  # none there (or unreadable): made from the titles instead
        return None
    out: list[str] = []
    for line in lines:
        q = " ".join(line.split())
        if q and not q.startswith("#") and len(q) <= max_chars and q not in out:
            out.append(q)
    return out


def question_from_title(title: str) -> str | None:
    """A question made from an article's title (see the module doc), or None."""
    title = " ".join((title or "").split()).strip(" -–—:;,.")
    if not title:
        return None
    if title.endswith("?"):
        return title
    words = title.split()
    name = _name_in(words) or (title if len(words) <= 2 and re.search(r"[^\W\d_]", title)
                               else None)  # a short title ("Kenya") is its own subject
    return f"What do the articles say about {name}?" if name else None


def _is_name(word: str, first: bool) -> bool:
    """A word of a name: capitalised (at a title's start, where every word is, only
    when it is more than that: "BMW", "WorldCom", "R1") or a number inside a name."""
    if not _NAME_WORD.match(word) or not word[0].isalpha():
        return False
    return not first or any(c.isupper() or c.isdigit() for c in word[1:])


def _name_in(words: list[str]) -> str | None:
    """The first name in a title's words: a run of capitalised words ("Sri Lanka",
    "Council of Europe", "Channel 4"); the title's first word needs a second capitalised
    word after it, or capitals of its own ("BMW"); small words ("The", "In") neither start
    nor end a name; a possessive ends it."""
    clean = [w.strip("\"'“”‘’()[],:;!") for w in words] + [""]
    i = 0
    while i < len(words):
        run: list[str] = []
        j = i
        while j < len(words):
            word = clean[j]
            possessive = word.endswith(("'s", "’s"))
            word = word[:-2] if possessive else word
            joins = word in _JOINERS and bool(_NAME_WORD.match(clean[j + 1] or "-"))
            if run and (word.isdigit() or joins) and not possessive:
                run.append(word)  # "Channel 4", "Council of Europe"
            elif word and _NAME_WORD.match(word) and word[0].isalpha() \
                    and not (word in _SMALL and not run):
                run.append(word)
            else:
                break
            j += 1
            if possessive:
                break
        while run and (run[-1] in _SMALL or run[-1] in _JOINERS):
            run.pop()
        if run and (i > 0 or len(run) >= 2 or _is_name(run[0], first=True)):
            run = run[:4]  # a comma inside a name stays ("Fresno, California")
            return " ".join(w + ("," if words[i + k].rstrip("\"'’”)").endswith(",")
                                 and k < len(run) - 1 else "") for k, w in enumerate(run))
        i = max(j, i + 1)
    return None


def from_titles(rows: list[dict[str, Any]]) -> list[str]:
    """Candidate questions from the article rows (``Library.articles()``): newest first,
    copies left out, each question once, at most :data:`MAX_CANDIDATES`."""
    rows = [r for r in rows if not r.get("copy_of")]
    rows.sort(key=lambda r: str(r.get("published") or ""), reverse=True)
    out: list[str] = []
    for r in rows:
        q = question_from_title(str(r.get("title") or ""))
        if q and q not in out:
            out.append(q)
        if len(out) >= MAX_CANDIDATES:
            break
    return out


def example_questions(cfg: Config, ask: Callable[[str], Any] | None = None,
                      n: int = MAX_EXAMPLES) -> list[str]:
    """At most ``n`` example questions for the index of ``cfg`` (see the module doc);
    ``[]`` when there is no index or none can be made. ``ask(question)`` returns an
    Answer (default :func:`rag.ask` with ``cfg``). Never raises."""
    from .watch import index_status

    version = index_status(cfg).get("version")
    curated_file = Path(cfg.source) / CURATED
    try:
        stamp = curated_file.stat().st_mtime_ns
    except OSError:
        stamp = None
    key = (str(Path(cfg.index_dir).resolve()), version, stamp, n)
    with _cache_lock:
        if ask is None and key in _cache:  # (a given ``ask`` is asked afresh)
            return list(_cache[key])
    questions = _make(cfg, ask, n) if version else []
    if ask is None:
        with _cache_lock:
            _cache[key] = questions
    return list(questions)


def _make(cfg: Config, ask: Callable[[str], Any] | None, n: int) -> list[str]:
    curated = read_curated(Path(cfg.source), cfg.max_question_chars)
    if curated is not None:
        return curated[:n]
    from .library import Library

    if ask is None:
        from ..answer.pipeline import ask as rag_ask

        def ask(q: str):
            return rag_ask(q, config=cfg)
    try:
        candidates = from_titles(Library(cfg).articles())
    except RagError:
        return []
    out = []
    for q in candidates:
        try:
            answered = not ask(q).abstained
        except RagError:
            answered = False
        if answered:
            out.append(q)
            if len(out) >= n:
                break
    return out
