"""The commands: ``python -m rag <command>``, and each one on its own.

- ``build`` (``python -m rag.build``, ``rag-build``): build or update the index (progress
  bars, summary). Exit codes: 0 success, 1 the build could not run (the one-line reason is
  printed), 2 bad command-line usage.
- ``ask`` (``python -m rag.ask "question"``, ``rag-ask``): print the answer and its
  citations (``--json``: the same :class:`~rag.types.Answer` as JSON; ``--explain``: why;
  ``--source/--author/--since/--until/--article/--folder``: filters). Exit codes: 0
  answered or abstained, 1 no usable index, 2 unusable question, filter or option.
- ``serve``: ``python app.py``, ``rag-serve``, the web app, see :mod:`rag.app.web`.
- ``eval``: ``python -m rag.eval``, the evaluation, see :mod:`rag.evaluation.run`.

Each command module is imported only when its command runs (``--help`` stays fast, and
nothing at run time imports the evaluation).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import textwrap

from .config import RETRIEVAL_MODES, warn_unknown_env
from .types import FILTER_HELP, NO_ANSWER, describe_date


def render_text(answer, explain: bool = False) -> str:
    """A plain-text rendering of an Answer for the terminal: the quote marked «…»; the
    filters in force first, the evidence last (``explain``)."""
    out = []
    if answer.scope:  # a filter in force, or a note on time words that limited nothing
        out.append(f"[only articles {answer.scope}]" if answer.filters is not None
                   else f"[{answer.scope}]")
    if answer.abstained:
        out.append(answer.message or NO_ANSWER)
        if answer.citations:
            out.append("\nNearest passages (they do not answer it):")
    else:
        out.append(f"“{answer.text}” [1]")
        out.append(f"(confidence {answer.score:.2f})")
        if answer.message:
            out.append(f"note: {answer.message}")
        out.append("")
    for c in answer.citations:
        where = c.source if c.source == c.article_id else f"{c.source} ({c.article_id})"
        page = f", page {c.page}" if c.page else ""
        date = describe_date(c.published, c.date_source, c.file_date)
        when = f", {date}" if date else ""
        out.append(f"[{c.n}] {c.title} — {where}{page}{when}  score {c.score:.2f}")
        rel_s, rel_e = c.start - c.passage_start, c.end - c.passage_start
        marked = c.passage[:rel_s] + "«" + c.passage[rel_s:rel_e] + "»" + c.passage[rel_e:]
        out.append(textwrap.indent(textwrap.fill(" ".join(marked.split()), 96), "    "))
        if c.also_in:
            out.append("    also in: " + "; ".join(x.source or x.article_id for x in c.also_in))
    if explain and answer.explain is not None:
        out.append("")
        out.extend(explain_lines(answer.explain))
    return "\n".join(out)


def explain_lines(e) -> list[str]:
    """Why this answer, as lines of text (the same facts as ``answer.explain``)."""
    out = [f"Why: {e.reason} — {e.detail}"]
    facts = []
    if e.selector_probability is not None:
        facts.append(f"selector probability {e.selector_probability:.2f}")
    for name, rank in (("dense", e.dense_rank), ("keyword", e.keyword_rank)):
        facts.append(f"{name} rank {rank + 1}" if rank is not None else f"not in {name} top")
    if e.keyword_coverage is not None:
        facts.append(f"question terms in the quote {e.keyword_coverage:.0%}, in its passage "
                     f"{e.passage_keyword_coverage:.0%}")
    facts.append(f"{e.candidates} passages considered")
    if e.articles_in_scope is not None:
        facts.append(f"{e.articles_in_scope} articles in scope")
    out.append("  " + "; ".join(facts))
    for ev in e.evidence:
        out.append(f"  {ev.name:>9} = {ev.value:8.4f}  adds {ev.contribution:+.3f}  ({ev.meaning})")
    return out


def ask_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rag.ask",
        description="Answer a question with a verbatim quote from the indexed articles.")
    parser.add_argument("question", help="the question, in quotes")
    parser.add_argument("--index", help="the index folder (default: $RAG_INDEX or index/)")
    parser.add_argument("--k", type=int, help="number of citations (default 5)")
    parser.add_argument("--retrieval", choices=RETRIEVAL_MODES,
                        help="retrieval mode (default hybrid)")
    parser.add_argument("--json", action="store_true",
                        help="print the Answer as JSON (with its explanation)")
    parser.add_argument("--explain", action="store_true",
                        help="also print why this quote was chosen (or why none was)")
    scope = parser.add_argument_group(
        "filters", "use only these articles (within a filter any value may match; all "
        "filters given must match)")
    scope.add_argument("--source", action="append", default=[], metavar="OUTLET",
                       help=FILTER_HELP["sources"] + " (repeatable)")
    scope.add_argument("--author", action="append", default=[],
                       help=FILTER_HELP["authors"] + " (repeatable)")
    scope.add_argument("--since", help=FILTER_HELP["since"])
    scope.add_argument("--until", help=FILTER_HELP["until"])
    scope.add_argument("--article", action="append", default=[], metavar="ID",
                       help=FILTER_HELP["article_ids"] + " (repeatable)")
    scope.add_argument("--folder", action="append", default=[],
                       help=FILTER_HELP["folders"] + " (repeatable)")
    scope.add_argument("--as-of", metavar="YYYY-MM-DD",
                       help="read relative dates ('last week') against this day, not today")
    scope.add_argument("--no-dates", action="store_true",
                       help="do not turn time words in the question into a date filter")
    args = parser.parse_args(argv)
    warn_unknown_env("rag-ask")

    from .answer.pipeline import ask
    from .config import Config
    from .types import InvalidQuestion, RagError

    filters = {"sources": args.source, "authors": args.author, "since": args.since,
               "until": args.until, "article_ids": args.article, "folders": args.folder}
    try:
        cfg = Config.from_env(index_dir=args.index)
        answer = ask(args.question, k=args.k, config=cfg, retrieval=args.retrieval,
                     filters=filters, as_of=args.as_of, dates=not args.no_dates)
    except InvalidQuestion as exc:
        print(f"rag.ask: {exc}", file=sys.stderr)
        return 2
    except RagError as exc:
        print(f"rag.ask: error: {exc}", file=sys.stderr)
        return 1
    try:
        print(answer.to_json(indent=1) if args.json else render_text(answer, args.explain),
              flush=True)
    except BrokenPipeError:  # `rag-ask ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def build_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rag.build",
        description="Build or update the index of a folder of articles "
                    "(.txt .md .html .htm .json .jsonl .pdf .docx), web pages and feeds. "
                    "Only new or changed articles are embedded; removed ones are dropped; "
                    "near-duplicate copies of a story are folded in answers.")
    parser.add_argument("--source", help="the articles folder (default: $RAG_SOURCE or seeds/)")
    parser.add_argument("--index", help="the index folder (default: $RAG_INDEX or index/)")
    parser.add_argument("--model", help="the embedding model: minilm (the bundled one, the "
                        "default), multilingual (the rag-quotes[multilingual] extra) or the "
                        "path of a sentence-transformers model folder "
                        "($RAG_MODEL; asking needs the same)")
    parser.add_argument("--rebuild", action="store_true", help="re-embed every article")
    parser.add_argument("--optimize", action="store_true",
                        help="merge the index's segments into one (deleted rows purged); "
                        "answers do not change")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    scale = parser.add_argument_group(
        "sharding and Ray", "a sharded index (answers equal to one index's; serve it with "
        "python -m rag.distributed.serve) and embedding on a Ray cluster (pip install "
        "'rag-quotes[distributed]')")
    scale.add_argument("--shards", type=int, default=None, metavar="N",
                       help="hash-partition the articles over N shards (an existing sharded "
                            "index keeps its count; a new count needs --rebuild)")
    scale.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="where passages are embedded (default: local)")
    scale.add_argument("--address", default=None,
                       help="with --engine ray: the cluster ('auto' joins the running one; "
                            "default: a local Ray for this build)")
    scale.add_argument("--actors", type=int, default=None,
                       help="with --engine ray: embedding actors (default: CPUs minus one)")
    web = parser.add_argument_group(
        "web pages and feeds", "saved as articles in <source>/web/ (public http/https "
        "addresses only; see the README for the fetcher's rules)")
    web.add_argument("--url", action="append", default=[], metavar="URL",
                     help="fetch this web page as an article (repeatable)")
    web.add_argument("--feed", action="append", default=[], metavar="FEED_URL",
                     help="subscribe to this RSS/Atom feed and fetch its items (repeatable; "
                          "remembered and polled again on every build)")
    web.add_argument("--no-poll", action="store_true",
                     help="do not poll the remembered feeds on this build")
    web.add_argument("--list-feeds", action="store_true",
                     help="list the remembered feeds and exit")
    web.add_argument("--remove-feed", action="append", default=[], metavar="FEED_URL",
                     help="forget this feed (its articles stay unless --prune) and build")
    web.add_argument("--prune", action="store_true",
                     help="with --remove-feed: delete its articles too; alone: delete the "
                          "articles of items that have left their feeds")
    args = parser.parse_args(argv)
    warn_unknown_env("rag-build")

    from .config import Config
    from .index.build import build
    from .types import RagError

    try:
        cfg = Config.from_env(source=args.source, index_dir=args.index, model=args.model)
        if args.list_feeds or args.remove_feed or args.prune:
            if _manage_feeds(cfg, args):
                return 0
        if args.shards is not None or args.engine != "local" or _is_cluster(cfg):
            import rag

            if args.url or args.feed:
                raise RagError("--url and --feed are not supported with --shards or "
                               "--engine ray yet: add the pages to the folder first")
            report = rag.build(config=cfg, rebuild=args.rebuild, progress=not args.quiet,
                                shards=args.shards, engine=args.engine,
                                address=args.address, actors=args.actors,
                                optimize=args.optimize)
        else:
            report = build(rebuild=args.rebuild, config=cfg, progress=not args.quiet,
                           urls=args.url, feeds=args.feed, poll=not args.no_poll,
                           optimize=args.optimize)
    except RagError as exc:
        print(f"rag.build: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rag.build: interrupted; the previous index is unchanged", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"rag.build: error: {exc.strerror or exc} ({exc.filename or ''}); "
              "the previous index is unchanged", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    elif not args.quiet:
        print(report.summary())
    return 0


def _is_cluster(cfg) -> bool:
    from pathlib import Path

    from .index.shards import is_cluster

    return is_cluster(Path(cfg.index_dir))


def _manage_feeds(cfg, args) -> bool:
    """--list-feeds, --remove-feed, --prune: True when the command is done (no build)."""
    from pathlib import Path

    from .ingest import web

    src = Path(cfg.source)
    if args.list_feeds:
        feeds = web.list_feeds(src)
        if args.json:
            print(json.dumps(feeds, ensure_ascii=False, indent=1))
        for f in [] if args.json else feeds:
            print(f"{f['url']}  {f.get('title') or ''}  ({f.get('items', 0)} items, "
                  f"last polled {f.get('last_polled') or 'never'})")
        if not feeds and not args.json:
            print(f"no feeds remembered in {src}")
        return True
    for url in args.remove_feed:
        removed = web.remove_feed(src, url, delete_items=args.prune)
        print(f"forgot {url}" + (f"; deleted {len(removed)} article file(s)" if args.prune
                                else ""), file=sys.stderr)
    if args.prune and not args.remove_feed:
        for f in web.list_feeds(src):
            gone = web.prune_feed(src, f["url"])
            if gone:
                print(f"{f['url']}: deleted {len(gone)} article file(s) of items that left "
                      "the feed", file=sys.stderr)
    return False


# command -> (module, function): imported only when the command runs
COMMANDS = {"build": ("rag.cli", "build_main"), "ask": ("rag.cli", "ask_main"),
            "serve": ("rag.app.web", "main"), "eval": ("rag.evaluation.run", "main")}


def main(argv: list[str] | None = None) -> int:
    """``python -m rag <command> [options]``: one entry point for every command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m rag {{{','.join(COMMANDS)}}} [options]\n"
              f"  (python -m rag <command> --help for its options)", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module, function = COMMANDS[argv[0]]
    return getattr(importlib.import_module(module), function)(argv[1:])
