"""``python -m rag.eval DATA_DIR``: measure retrieval, answers, abstention and latency.

DATA_DIR holds ``articles.jsonl`` (``{"id", "title", "text", ...}``) and
``questions.jsonl`` (``{"id", "question", "answers", "answer_starts", "article_id",
"is_impossible", "source"}``), the format of ``../shared/eval`` (SQuAD-style, character
offsets into the article text). The command indexes the articles (plus the articles of
``--distractors DIR/articles.jsonl``) into a temporary index, or into ``--index-cache``
to reuse between runs (the build is incremental), asks every question through the
public :func:`rag.ask`, and prints the figures overall and per question ``source``
(see :func:`rag.evaluation.metrics.summarise`); ``--out`` writes them as JSON.

Retrieval: a citation hits when it is from the gold article and its passage covers a
gold answer's character span (``R@1``, ``R@5``, MRR@10); the looser ``R@1txt``/``R@5txt``
also count a passage of the gold article that holds a gold answer's text elsewhere (the
same fact stated twice in an article), as the data set's README allows.

Several sets (``python -m rag.eval SET [SET ...]``, issue 23): each is indexed with the
same distractors (the first set's index seeds the next, so only new articles are
embedded), asked on the configured path or ``--paths both`` (selector and fast path), and
printed side by side, a line per set and source; a set's ``offtopic.jsonl`` is asked as
off-topic questions too. ``--limit-per-source N`` asks at most N of each source. With
``--fit`` the sets are pooled (:mod:`rag.evaluation.pool`: both paths, article-wise CV,
per source); ``--out`` then writes the evidence and ``--from-evidence FILE`` fits again
from it, ``--selector-dir DIR`` with another selector's scores.

Off-topic questions (``--holdout-offtopic N``): N articles (chosen deterministically,
by a hash of their id, among those without unanswerable questions) are left out of a
second index, and their questions are asked there: every one should abstain.

Abstention: the run asks with the configured ``abstain_threshold``; the figures at
other thresholds (the sweep table) follow from each answer's ``score`` and its first
citation's quote, which ``ask`` returns even when it abstains.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..config import RETRIEVAL_MODES
from . import metrics

SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def read_jsonl(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as exc:
                    raise SystemExit(f"rag.eval: {path} line {n} is not JSON: {exc}")
    return out


def load_data(data_dir: Path) -> tuple[list[dict], list[dict]]:
    """(articles, questions) of DATA_DIR, checked for the fields the evaluation needs."""
    arts = read_jsonl(data_dir / "articles.jsonl")
    qs = read_jsonl(data_dir / "questions.jsonl")
    ids = {a.get("id") for a in arts}
    for q in qs:
        missing = [f for f in ("id", "question", "article_id") if f not in q]
        if missing:
            raise SystemExit(f"rag.eval: question {q.get('id')!r} lacks {missing}")
        if q["article_id"] not in ids:
            raise SystemExit(f"rag.eval: question {q['id']!r} is about unknown article "
                             f"{q['article_id']!r}")
    return arts, qs


def holdout_articles(articles: list[dict], questions: list[dict], n: int) -> set[str]:
    """``n`` article ids to leave out for off-topic questions: a stable pseudo-random
    pick (sha256 of the id) among articles that have questions, none unanswerable."""
    with_q = {q["article_id"] for q in questions}
    impossible = {q["article_id"] for q in questions if q.get("is_impossible")}
    pool = sorted((a["id"] for a in articles if a["id"] in with_q and a["id"] not in impossible),
                  key=lambda i: hashlib.sha256(i.encode()).hexdigest())
    return set(pool[:n])


def _write_if_changed(path: Path, data: bytes) -> None:
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


def prepare_index(cache: Path, articles: list[dict], distractors: Path | None,
                  cfg, exclude: set[str] = frozenset(), name: str = "full",
                  seed_from: Path | None = None, quiet: bool = False):
    """Build (or update) the index of ``articles`` minus ``exclude`` plus the distractors
    in ``cache/name``; returns the Config pointing at it. ``seed_from``: an index folder
    to copy first, so that a sub-corpus costs no embedding."""
    import rag

    base = cache / name
    src = base / "source"
    src.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles
                    if a.get("id") not in exclude)
    _write_if_changed(src / "0-data.jsonl", lines.encode("utf-8"))
    if distractors is not None:
        _write_if_changed(src / "1-distractors.jsonl",
                          (distractors / "articles.jsonl").read_bytes())
    elif (src / "1-distractors.jsonl").exists():
        (src / "1-distractors.jsonl").unlink()
    index = base / "index"
    if seed_from is not None and not (index / "CURRENT").exists() and \
            (seed_from / "CURRENT").exists():
        shutil.rmtree(index, ignore_errors=True)
        shutil.copytree(seed_from, index, ignore=shutil.ignore_patterns(".build.lock", ".tmp-*"))
    icfg = cfg.replace(source=src, index_dir=index)
    # one segment: the evaluation tools read the index's arrays (Version.single)
    report = rag.build(config=icfg, progress=not quiet, optimize=True)
    if not quiet:
        print(report.summary(), file=sys.stderr)
    return icfg


def evaluate_questions(questions: list[dict], texts: dict[str, str], cfg, k: int,
                       kind_of, mode: str, progress: bool = True) -> list[dict]:
    """Ask every question through :func:`rag.ask`; one row of figures per question."""
    import rag
    from tqdm import tqdm

    depth = max(k, 10)
    rag.ask("warm-up question", k=depth, config=cfg, retrieval=mode)  # load model + index
    rows = []
    for q in tqdm(questions, desc="asking", unit="q", disable=not progress):
        t0 = time.perf_counter()
        ans = rag.ask(q["question"], k=depth, config=cfg, retrieval=mode)
        ms = (time.perf_counter() - t0) * 1e3
        kind = kind_of(q)
        golds = list(q.get("answers") or [])
        spans = [(s, s + len(a)) for a, s in zip(golds, q.get("answer_starts") or [])]
        cites = ans.citations
        would = cites[0].quote if cites else ""  # the quote, even when abstaining
        exact = sum(1 for c in cites if texts.get(c.article_id, "")[c.start:c.end] == c.quote
                    and texts.get(c.article_id, "")[c.passage_start:c.passage_end] == c.passage)
        if not ans.abstained and (not cites or ans.text != cites[0].quote):
            exact = 0  # the answer must be the first citation's quote
        hits = [c.article_id == q["article_id"] and
                metrics.covers_answer(c.passage_start, c.passage_end, spans) for c in cites]
        # looser (the data set's README allows it): or the passage holds a gold answer's text
        text_hits = [h or (c.article_id == q["article_id"] and
                           metrics.contains_answer(c.passage, golds) > 0)
                     for h, c in zip(hits, cites)]
        rows.append({
            "id": q["id"], "source": q.get("source", "all"), "kind": kind,
            "abstained": ans.abstained, "score": ans.score, "latency_ms": ms,
            "n_citations": len(cites), "integrity": exact / len(cites) if cites else 1.0,
            "retrieval_hits": hits if kind == "answerable" else [],
            "text_hits": text_hits if kind == "answerable" else [],
            "hit": metrics.contains_answer(would, golds) if golds else 0.0,
            "f1": metrics.token_f1(would, golds) if golds else 0.0,
            "length": len(would), "answer": would[:300],
            "cited": cites[0].article_id if cites else None})
    return rows


def at_threshold(rows: list[dict], t: float) -> list[dict]:
    """The rows as they would be with abstention threshold ``t``."""
    return [{**r, "abstained": r["score"] < t} for r in rows]


def report(rows: list[dict], k: int, threshold: float) -> dict:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        key = (r["source"] if str(r["source"]).startswith("off-topic") else
               "off-topic (held out)") if r["kind"] == "offtopic" else r["source"]
        groups.setdefault(key, []).append(r)
    out = {"threshold": threshold, "k": k, "overall": _summ(rows, k),
           "per_source": {g: _summ(v, k) for g, v in sorted(groups.items())},
           "sweep": {f"{t:.2f}": _summ(at_threshold(rows, t), k) for t in SWEEP}}
    return out


def _summ(rows, k):
    s = metrics.summarise(rows)
    ans = [r for r in rows if r["kind"] == "answerable"]
    s[f"recall@{k}"] = metrics.mean(metrics.recall_at(r["retrieval_hits"], k) for r in ans)
    for n in (1, k):
        s[f"recall@{n}_text"] = metrics.mean(metrics.recall_at(r.get("text_hits", []), n)
                                             for r in ans)
    return s


COLUMNS = (("n", "questions", "{:d}"), ("R@1", "recall@1", "{:.3f}"),
           ("R@5", "recall@5", "{:.3f}"), ("MRR", "mrr@10", "{:.3f}"),
           ("R@1txt", "recall@1_text", "{:.3f}"), ("R@5txt", "recall@5_text", "{:.3f}"),
           ("hit@1", "hit@1", "{:.3f}"), ("F1", "f1", "{:.3f}"), ("chars", "answer_chars", "{:.0f}"),
           ("ans.abst", "answerable_abstained", "{:.3f}"),
           ("unans.abst", "unanswerable_abstained", "{:.3f}"),
           ("off.abst", "offtopic_abstained", "{:.3f}"), ("integ", "integrity", "{:.3f}"),
           ("p50ms", "latency_p50_ms", "{:.1f}"), ("p95ms", "latency_p95_ms", "{:.1f}"))


def format_table(rep: dict) -> str:
    head = ["group"] + [c[0] for c in COLUMNS]
    lines = []
    body = [("overall", rep["overall"])] + list(rep["per_source"].items())
    for name, s in body:
        lines.append([name] + [_fmt(fmt, s.get(key)) for _, key, fmt in COLUMNS])
    sweep = [(f"threshold {t}", s) for t, s in rep["sweep"].items()]
    for name, s in sweep:
        lines.append([name] + [_fmt(fmt, s.get(key)) for _, key, fmt in COLUMNS])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    for i, row in enumerate(lines):
        if i == len(body):
            out.append(f"abstention sweep (the run used threshold {rep['threshold']}):")
        out.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
    return "\n".join(out)


def _fmt(fmt: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return fmt.format(v)


def read_offtopic(data_dir: Path) -> list[dict]:
    """A set's ``offtopic.jsonl`` (questions no article answers), as questions asked of
    the whole index; [] when there is none."""
    path = data_dir / "offtopic.jsonl"
    if not path.is_file():
        return []
    return [{"id": q["id"], "question": q["question"], "article_id": "(none)",
             "answers": [], "is_impossible": True, "source": "off-topic (offtopic.jsonl)"}
            for q in read_jsonl(path)]


def limit_per_source(questions: list[dict], n: int | None) -> list[dict]:
    """At most ``n`` questions of each ``source``, evenly spaced (every k-th), in order."""
    if not n:
        return questions
    by: dict[str, list[dict]] = {}
    for q in questions:
        by.setdefault(q.get("source", ""), []).append(q)
    keep = set()
    for qs in by.values():
        step = max(1.0, len(qs) / n)
        keep.update(qs[int(i * step)]["id"] for i in range(min(n, len(qs))))
    return [q for q in questions if q["id"] in keep]


SIDE_COLUMNS = (("R@1", "recall@1", "{:.3f}"), ("R@5", "recall@5", "{:.3f}"),
                ("hit@1", "hit@1", "{:.3f}"), ("ans.abst", "answerable_abstained", "{:.3f}"),
                ("unans.abst", "unanswerable_abstained", "{:.3f}"),
                ("off.abst", "offtopic_abstained", "{:.3f}"))


def format_side_by_side(reports: dict[str, dict[str, dict]]) -> str:
    """``reports[path][set]`` (each a :func:`report`) as one table: a line per set and
    source, a block of columns per path (selector, fast)."""
    paths = list(reports)
    keys = []
    for rep_by_set in reports.values():
        for name, rep in rep_by_set.items():
            for g in ["overall", *rep["per_source"]]:
                if (name, g) not in keys:
                    keys.append((name, g))
    head = ["set / source", "n"] + [f"{p} {c[0]}" for p in paths for c in SIDE_COLUMNS]
    lines = [head]
    for name, g in keys:
        first = reports[paths[0]].get(name, {})
        s0 = first.get("overall") if g == "overall" else first.get("per_source", {}).get(g)
        row = [f"{name}: {g}", str((s0 or {}).get("questions", ""))]
        for p in paths:
            rep = reports[p].get(name, {})
            s = rep.get("overall") if g == "overall" else rep.get("per_source", {}).get(g)
            row += [_fmt(fmt, (s or {}).get(key)) for _, key, fmt in SIDE_COLUMNS]
        lines.append(row)
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in lines)


VENDORED_EVAL = Path(__file__).resolve().parents[2] / "data" / "eval"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rag.eval", description=__doc__.split("\n")[0])
    p.add_argument("data_dir", type=Path, nargs="*",
                   help="folders with articles.jsonl and questions.jsonl (several: their "
                        "figures side by side, and --fit fits on their pool); default: the "
                        "vendored development set, data/eval")
    p.add_argument("--distractors", type=Path, help="folder with an articles.jsonl to add")
    p.add_argument("--k", type=int, default=5, help="citations per answer (default 5)")
    p.add_argument("--out", type=Path, help="write the figures (and per-question rows) as "
                   "JSON; with --fit and several sets, the pooled evidence (JSON lines)")
    p.add_argument("--retrieval", choices=RETRIEVAL_MODES)
    p.add_argument("--limit", type=int, help="ask only every n-th question to get about "
                   "this many (a quick run)")
    p.add_argument("--limit-per-source", type=int, metavar="N",
                   help="ask at most N questions of each source (every k-th)")
    p.add_argument("--index-cache", type=Path, help="keep the index here and reuse it")
    p.add_argument("--holdout-offtopic", type=int, nargs="?", const=8, default=0, metavar="N",
                   help="leave N articles (default 8) out of a second index and ask their "
                        "questions there as off-topic questions")
    p.add_argument("--threshold", type=float, help="abstain_threshold (default: config, "
                   "else the fitted answer model's)")
    p.add_argument("--model", help="embedding model name (default: config)")
    p.add_argument("--fit", action="store_true", help="fit the selection weights and the "
                   "calibration on this data and print them (see rag.evaluation.fit; with "
                   "several sets, rag.evaluation.pool: both paths, per source)")
    p.add_argument("--from-evidence", type=Path, metavar="FILE",
                   help="with --fit: fit on evidence written by an earlier --fit --out "
                        "(several sets) instead of asking again")
    p.add_argument("--selector-dir", type=Path, metavar="DIR",
                   help="with --from-evidence: score the sentences the selector read with "
                        "the selector in DIR (model-int8.onnx, tokenizer.json, SELECTOR.json)"
                        " instead, to measure a newly trained one")
    p.add_argument("--selector", action="store_true", help="answer with the trained "
                   "selector (Config.selector; with --fit: fit its answer model, "
                   "rag/answer/answer_model_selector.json)")
    p.add_argument("--paths", choices=("config", "selector", "fast", "both"),
                   default="config", help="which answer path(s) to measure: the "
                   "configured one (default), the selector, the fast path "
                   "(RAG_SELECTOR=0), or both side by side")
    p.add_argument("--save-params", action="store_true", help="with --fit: write the "
                   "fitted answer model to rag/answer/answer_model.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)

    from ..config import Config
    from ..ingest.loaders import normalize_text
    from ..answer.params import abstain_threshold, answer_model
    from ..answer.pipeline import answer_model_for

    if args.fit and args.from_evidence:
        from . import pool

        items = pool.read_items(args.from_evidence)
        sel_model = answer_model(True)
        if args.selector_dir:
            from ..answer.selector import Selector

            other = Selector(args.selector_dir)
            items = pool.rescore(items, other)
            sel_model = sel_model.replace(selector=other.version)
        pool.fit_and_report(items, sel_model, answer_model(False), save=args.save_params)
        return 0
    if not args.data_dir:  # the vendored development set (data/eval, CC BY-SA 4.0)
        args.data_dir = [VENDORED_EVAL]
    for d in args.data_dir:
        if not (d / "articles.jsonl").is_file() or not (d / "questions.jsonl").is_file():
            p.error(f"{d} must hold articles.jsonl and questions.jsonl")
    if args.distractors and not (args.distractors / "articles.jsonl").is_file():
        p.error(f"{args.distractors} must hold articles.jsonl")
    several = len(args.data_dir) > 1
    cfg = Config.from_env(model=args.model, abstain_threshold=args.threshold,
                          retrieval=args.retrieval, selector=True if args.selector else None)
    paths = {"config": [cfg.selector], "selector": [True], "fast": [False],
             "both": [True, False]}[args.paths]
    if several and args.fit:
        paths = [True]  # the pool's evidence holds both paths' features
    texts: dict[str, str] = {}
    if args.distractors:
        for a in read_jsonl(args.distractors / "articles.jsonl"):
            texts.setdefault(str(a.get("id")), normalize_text(a.get("text", "")))

    tmp = None
    cache = args.index_cache
    if cache is None:
        tmp = tempfile.TemporaryDirectory(prefix="rag-eval-")
        cache = Path(tmp.name)
    reports: dict[str, dict[str, dict]] = {}
    items: list[dict] = []
    all_rows: dict[str, list[dict]] = {}
    seed = None
    try:
        for data_dir in args.data_dir:
            name = data_dir.resolve().name
            articles, questions = load_data(data_dir)
            if args.limit and args.limit < len(questions):
                step = len(questions) / args.limit
                questions = [questions[int(i * step)] for i in range(args.limit)]
            questions = limit_per_source(questions, args.limit_per_source)
            offtopic = read_offtopic(data_dir) if several else []
            held = holdout_articles(articles, questions, args.holdout_offtopic)
            for a in articles:
                texts[str(a.get("id"))] = normalize_text(a.get("text", ""))
            set_cache = cache / name if several else cache
            full = prepare_index(set_cache, articles, args.distractors, cfg, quiet=args.quiet,
                                 seed_from=seed)
            seed = full.index_dir
            off_cfg = None
            if held:
                off_cfg = prepare_index(set_cache, articles, args.distractors, cfg,
                                        exclude=held, name=f"holdout-{args.holdout_offtopic}",
                                        seed_from=full.index_dir, quiet=args.quiet)
            if args.fit and several:
                from . import pool

                items += pool.collect_set(name, questions, full, off_cfg, held, offtopic,
                                          cfg.retrieval, answer_model(True))
                continue
            if args.fit:
                from .fit import fit_and_print

                return fit_and_print(questions, full, off_cfg, held, cfg.retrieval, args.out,
                                     save=args.save_params, model=answer_model(cfg.selector))
            mode = cfg.retrieval
            for use_selector in paths:
                path = "selector" if use_selector else "fast"
                pfull = full.replace(selector=use_selector)
                rows = evaluate_questions(
                    questions, texts, pfull, args.k,
                    lambda q: "unanswerable" if q.get("is_impossible") else "answerable",
                    mode, progress=not args.quiet)
                if off_cfg is not None:
                    off_qs = [q for q in questions if q["article_id"] in held]
                    rows += evaluate_questions(off_qs, texts, off_cfg.replace(
                        selector=use_selector), args.k, lambda q: "offtopic", mode,
                        progress=not args.quiet)
                if offtopic:
                    rows += evaluate_questions(offtopic, texts, pfull, args.k,
                                               lambda q: "offtopic", mode,
                                               progress=not args.quiet)
                # the threshold asking used: the shipped one, or rag.fit's beside the index
                model, _ = answer_model_for(pfull, Path(pfull.index_dir))
                rep = report(rows, args.k, abstain_threshold(cfg, model))
                rep["retrieval"] = mode
                rep["held_out_articles"] = sorted(held)
                reports.setdefault(path, {})[name] = rep
                all_rows[f"{path}/{name}"] = rows
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.fit:  # several sets: fit on the pool
        from . import pool

        if args.out:
            pool.write_items(args.out, items)
        pool.fit_and_report(items, answer_model(True), answer_model(False),
                            save=args.save_params)
        return 0
    if several or len(paths) > 1:
        print(format_side_by_side(reports))
    else:
        rep = next(iter(next(iter(reports.values())).values()))
        print(format_table(rep))
    if args.out:
        if several or len(paths) > 1:
            out = {"reports": reports, "rows": all_rows}
        else:
            out = {**rep, "rows": next(iter(all_rows.values()))}
        args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
