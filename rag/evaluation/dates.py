"""``python -m rag.evaluation.dates QUESTIONS --dates DATES [--corpus CORPUS]``: relative time.

Measures how the words "last year", "in November", "this week"... in a question are used
(issue 24 item 1), on dated articles and questions of two kinds
(``tests/data/date_questions.jsonl``). The articles are the BBC stories of
``../shared/corpus/news/articles.jsonl`` (``--corpus``) named in ``--dates``
(``tests/data/dated_news/dates.jsonl``: ``{"id", "published"}``), which gives each its
publication date: the BBC texts may not be redistributed, so the repository holds only the
dates (:func:`dated_articles`). ``--articles`` takes dated records with their text
instead. The questions::

    {"id", "question", "as_of": "YYYY-MM-DD", "kind": "event" | "articles",
     "article_id": the story that answers (null: none in the span),
     "answer": text a right quote contains (null: nothing published in the span answers),
     "range": [since, until] (what resolve_dates read, for reference)}

* ``event``: the time words say when something happened ("How many phones were sold last
  year?"); the answering story may be published outside that span, and usually is.
* ``articles``: the time words say when the coverage appeared ("What did the news say
  last week about Yukos?"); the answer must come from a story published in the span, and
  when none answers (``answer`` null) the right outcome is to abstain.

Every question is asked twice through :func:`rag.ask` with ``as_of`` the row's: with the
default ``dates=True`` ("dates") and with ``dates=False`` ("no-dates"). Outcome per row:
``right`` (not abstained, the quote is from ``article_id`` and contains ``answer``),
``wrong`` (an answer, but not that), ``abstained``; for a row whose ``answer`` is null,
abstaining is ``right`` and any answer ``wrong``. The table gives the counts per group
(``event``; ``articles``; ``articles-none``: the null rows) for both settings, and
``story``: answers from the expected article whatever the quote (a wrong sentence of the
right story is still the right story for a question about last week's coverage);
``--json PATH`` (``-``: stdout) writes them with every row's outcome, quote and scope.

The index (the real configured model, as ``python -m rag.eval`` builds it:
:func:`rag.evaluation.run.prepare_index`) lives in a temporary folder, or in
``--index-cache DIR`` to reuse between runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

SETTINGS = {"dates": True, "no-dates": False}
GROUPS = ("event", "articles", "articles-none")
OUTCOMES = ("right", "wrong", "abstained")


def group_of(q: dict) -> str:
    return "articles-none" if q.get("answer") is None else q["kind"]


def outcome(q: dict, ans) -> str:
    """``right`` / ``wrong`` / ``abstained`` of one answer to one question row."""
    if q.get("answer") is None:
        return "right" if ans.abstained else "wrong"
    if ans.abstained:
        return "abstained"
    ok = ans.article_id == q["article_id"] and q["answer"] in (ans.text or "")
    return "right" if ok else "wrong"


def check_questions(questions: list[dict], article_ids: set[str]) -> None:
    """Raise SystemExit for a row the measurement cannot use."""
    for q in questions:
        missing = [f for f in ("id", "question", "as_of", "kind") if f not in q]
        if missing:
            raise SystemExit(f"rag.evaluation.dates: question {q.get('id')!r} lacks {missing}")
        if q["kind"] not in ("event", "articles"):
            raise SystemExit(f"rag.evaluation.dates: question {q['id']!r}: kind must be "
                             f"'event' or 'articles', not {q['kind']!r}")
        if q.get("answer") is not None and q.get("article_id") not in article_ids:
            raise SystemExit(f"rag.evaluation.dates: question {q['id']!r} is about unknown "
                             f"article {q.get('article_id')!r}")


def ask_all(questions: list[dict], cfg, k: int | None = None,
            progress: bool = True) -> list[dict]:
    """Every question under both settings; one row per question and setting."""
    import rag
    from tqdm import tqdm

    rag.ask("warm-up question", config=cfg, dates=False)  # load the model and the index
    rows = []
    for q in tqdm(questions, desc="asking", unit="q", disable=not progress):
        for setting, dates in SETTINGS.items():
            ans = rag.ask(q["question"], k=k, config=cfg, as_of=q["as_of"], dates=dates)
            rows.append({
                "id": q["id"], "kind": q["kind"], "group": group_of(q), "setting": setting,
                "outcome": outcome(q, ans), "abstained": ans.abstained,
                "score": round(float(ans.score), 4),
                "quote": ans.text if not ans.abstained else "",
                "article_id": ans.article_id if not ans.abstained else None,
                "expected_article": q.get("article_id"), "answer": q.get("answer"),
                "scope": ans.scope, "message": ans.message if ans.abstained else "",
            })
    return rows


def summarise(rows: list[dict]) -> dict:
    """``{setting: {group: {"n", "right", "wrong", "abstained", "story"}}}``, "all"
    included; ``story``: answered from the expected article, whatever the quote."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for setting in SETTINGS:
        per: dict[str, dict[str, int]] = {}
        for g in (*GROUPS, "all"):
            sel = [r for r in rows if r["setting"] == setting and g in ("all", r["group"])]
            per[g] = {"n": len(sel), **{o: sum(r["outcome"] == o for r in sel)
                                        for o in OUTCOMES},
                      "story": sum(r["answer"] is not None and not r["abstained"] and
                                   r["article_id"] == r["expected_article"] for r in sel)}
        out[setting] = per
    return out


def format_table(summary: dict) -> str:
    head = ["setting", "group", "n", *OUTCOMES, "story"]
    lines = [[s, g, *(str(c[x]) for x in ("n", *OUTCOMES, "story"))]
             for s, per in summary.items() for g, c in per.items() if c["n"]]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(row, widths))
                     for row in [head, *lines])


DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "news" / \
    "articles.jsonl"


def dated_articles(dates_path: Path, corpus_path: Path = DEFAULT_CORPUS) -> list[dict]:
    """The corpus records named in ``dates_path`` (``{"id", "published"}`` a line), each
    with that ``published`` date, in the dates file's order. Raises SystemExit when the
    corpus is missing or lacks one of them."""
    from .run import read_jsonl

    if not corpus_path.is_file():
        raise SystemExit(f"rag.evaluation.dates: no corpus at {corpus_path} (give --corpus)")
    wanted = {d["id"]: d["published"] for d in read_jsonl(dates_path)}
    found = {r["id"]: {**r, "published": wanted[r["id"]]}
             for r in read_jsonl(corpus_path) if r.get("id") in wanted}
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise SystemExit(f"rag.evaluation.dates: the corpus lacks {missing[:5]}")
    return [found[i] for i in wanted]


def run(questions_path: Path, articles: Path | list[dict], cache: Path | None = None,
        k: int | None = None, progress: bool = True, cfg=None) -> dict:
    """Build (or reuse) the index and ask every question; ``{"summary", "rows"}``.
    ``cfg``: the configuration to start from (default :meth:`Config.from_env`); its
    source and index folder are replaced."""
    from ..config import Config
    from .run import prepare_index, read_jsonl

    if isinstance(articles, Path):
        articles = read_jsonl(articles)
    questions = read_jsonl(questions_path)
    check_questions(questions, {a.get("id") for a in articles})
    tmp = None
    if cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-eval-dates-")
        cache = Path(tmp.name)
    try:
        icfg = prepare_index(Path(cache), articles, None, cfg or Config.from_env(),
                             name="dated", quiet=not progress)
        rows = ask_all(questions, icfg, k, progress)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {"summary": summarise(rows), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rag.evaluation.dates",
                                description=__doc__.split("\n")[0])
    p.add_argument("questions", type=Path, help="date questions (JSON Lines)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--dates", type=Path, help="ids and published dates of corpus "
                       "stories (JSON Lines), e.g. tests/data/dated_news/dates.jsonl")
    where.add_argument("--articles", type=Path,
                       help="dated articles with their text (JSON Lines with 'published')")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                   help=f"the stories --dates names (default {DEFAULT_CORPUS})")
    p.add_argument("--index-cache", type=Path, help="keep the index here and reuse it")
    p.add_argument("--k", type=int, help="citations per answer (default: config)")
    p.add_argument("--json", dest="json_out", metavar="PATH",
                   help="write the figures and every row as JSON ('-': stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for path in (args.questions, args.articles or args.dates):
        if not path.is_file():
            p.error(f"{path} is not a file")
    articles = args.articles or dated_articles(args.dates, args.corpus)
    result = run(args.questions, articles, args.index_cache, args.k,
                 progress=not args.quiet)
    if args.json_out == "-":
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, ensure_ascii=False, indent=1),
                                       encoding="utf-8")
    print(format_table(result["summary"]))
    failing = [r for r in result["rows"] if r["outcome"] != "right"]
    if failing:
        print("\nnot right:")
        for r in failing:
            got = f"{r['article_id']}: {r['quote'][:70]!r}" if not r["abstained"] else \
                r["scope"] or r["message"]
            print(f"  {r['setting']:<8} {r['id']:<4} {r['group']:<13} {r['outcome']:<9} {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
