"""Filtered questions (:mod:`rag.answer.filters`): ``python -m benchmarks.filters``.

Corpus: the development set's 48 Wikipedia articles among the 2,225 BBC articles
(``../shared/eval`` + ``../shared/corpus/news``; the index is built once into
``--index-cache``, the same cache ``python -m rag.eval --index-cache`` uses). Questions:
``--questions`` answerable development questions (seeded sample).

Sides, all in one run, each question asked once per side after a warm-up:

* ``none``: no filter (the reference for time);
* ``narrow``: ``article_ids`` = the 48 Wikipedia articles (2 % of the articles): the filter a
  reader uses to leave the news out;
* ``wide``: every article but one BBC category (~82 %);
* ``post``: the obvious alternative to filtering before ranking: ask without a filter and
  keep the citations inside the narrow filter afterwards.

Reported per side: median and p90 time of ``rag.ask`` (ms, and the ratio to ``none``),
hit@1 (the first citation's quote holds a gold answer), and how often ``k`` citations
came back. Filtering first should keep ``k`` citations and at least the unfiltered hit@1;
post-filtering loses citations whenever the news outranks the article.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.filters")
    p.add_argument("--data", type=Path, default=SHARED / "eval")
    p.add_argument("--distractors", type=Path, default=SHARED / "corpus" / "news")
    p.add_argument("--index-cache", type=Path, default=Path("/tmp/rag-eval-index/full"))
    p.add_argument("--questions", type=int, default=200)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import rag
    from rag.config import Config

    cache = args.index_cache
    src = cache / "source"
    if not (cache / "index" / "CURRENT").exists():
        src.mkdir(parents=True, exist_ok=True)
        (src / "0-data.jsonl").write_bytes((args.data / "articles.jsonl").read_bytes())
        (src / "1-distractors.jsonl").write_bytes(
            (args.distractors / "articles.jsonl").read_bytes())
    cfg = Config.from_env(source=src, index_dir=cache / "index")
    print(rag.build(config=cfg).summary().splitlines()[1], flush=True)

    wiki = [json.loads(line)["id"] for line in (args.data / "articles.jsonl").open()]
    bbc = [json.loads(line)["id"] for line in (args.distractors / "articles.jsonl").open()]
    dropped = "bbc-sport-"
    questions = [q for q in map(json.loads, (args.data / "questions.jsonl").open())
                 if not q.get("is_impossible") and q.get("answers")]
    random.Random(args.seed).shuffle(questions)
    questions = questions[:args.questions]
    sides = {"none": None, "narrow": {"article_ids": wiki},
             "wide": {"article_ids": wiki + [b for b in bbc if not b.startswith(dropped)]}}
    narrow = set(wiki)

    def hit(citations, q) -> bool:
        return bool(citations) and any(a.lower() in citations[0].quote.lower()
                                       for a in q["answers"])

    rag.ask(questions[0]["question"], k=args.k, config=cfg)  # load model, index, selector
    for f in sides.values():
        rag.ask(questions[0]["question"], k=args.k, config=cfg, filters=f)
    rows = {name: {"ms": [], "hit": 0, "full": 0} for name in [*sides, "post"]}
    from rag.index.live import load_index

    counts = {"none": len(load_index(cfg.index_dir, cfg).article_ids)}
    for q in questions:
        for name, f in sides.items():  # interleaved: machine noise hits every side alike
            t0 = time.perf_counter()
            a = rag.ask(q["question"], k=args.k, config=cfg, filters=f, dates=False)
            rows[name]["ms"].append((time.perf_counter() - t0) * 1e3)
            rows[name]["hit"] += hit(a.citations, q)
            rows[name]["full"] += len(a.citations) == args.k
            if a.explain and a.explain.articles_in_scope is not None:
                counts[name] = a.explain.articles_in_scope
            if name == "none":
                kept = [c for c in a.citations if c.article_id in narrow]
                rows["post"]["ms"].append(rows["none"]["ms"][-1])
                rows["post"]["hit"] += hit(kept, q)
                rows["post"]["full"] += len(kept) == args.k
    base = statistics.median(rows["none"]["ms"])
    n = len(questions)
    counts["post"] = counts["narrow"]
    print(f"\n{n} answerable development questions, k={args.k}, {counts['none']:,} "
          "articles indexed (the BBC's exact duplicates dropped)\n")
    print("| side | articles | median ms | ratio | p90 ms | hit@1 | k citations |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        ms = sorted(r["ms"])
        med = statistics.median(ms)
        print(f"| {name} | {counts[name]:,} | {med:.1f} | {med / base:.2f} | "
              f"{ms[int(0.9 * (len(ms) - 1))]:.1f} | {r['hit'] / n:.3f} | "
              f"{r['full'] / n:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
