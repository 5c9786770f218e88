"""``python -m benchmarks.watch_ab REV [--size 100000] [--rounds 3] [--changes 5] [--work DIR]``:
one-article changes in a watching process, this code against ``REV``, in alternation on
the same archive and index (issue 26).

The archive is :mod:`benchmarks.updates`' (BBC stories, then stories with every fifth
word changed; the hashing embedder), built once by this code (``--work`` keeps it for the
next run: a 100k build takes ~10 minutes). Then ``--rounds`` times, for each side (this
code, then ``git archive REV``): a new process that builds once walking the folder (as
``--watch`` starts), warms up as a starting ``Updater`` does, and adds ``--changes``
articles one at a time, each built with the path it touched (``rag.build(changed=...)``).
Printed: per side, the first change after start and the others (medians, worst).
Both sides read and write the same index, so ``REV`` must share its format.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.updates import NEWS, ROOT, _setup, _sub, apply, baseline_code, stories, \
    write_archive


def child(src: Path, index: Path, first: int, changes: int, news: str) -> list[float]:
    """In this process (the side's code on PYTHONPATH): the first build, the warm-up,
    then ``changes`` one-article builds; their seconds."""
    from rag.app import watch

    rag, cfg, texts = _setup(src, index, news)
    rag.build(config=cfg)
    if "cfg" in watch.warm_up.__code__.co_varnames:
        watch.warm_up(cfg)
    else:  # code from before the warm-up took the config
        watch.warm_up()
    if hasattr(watch, "settle_memory"):  # what the Updater does after a walk
        watch.settle_memory()
    out = []
    for i in range(changes):
        touched = apply(src, "add:1", first + i, texts)
        t = time.perf_counter()
        rag.build(config=cfg, changed=touched)
        out.append(round(time.perf_counter() - t, 3))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rev", nargs="?", help="the commit to compare with")
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--changes", type=int, default=5)
    p.add_argument("--work", type=Path, help="scratch folder, kept (default: a temporary one)")
    p.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        src, index, first, changes, news = args.child
        print(json.dumps(child(Path(src), Path(index), int(first), int(changes), news)))
        return 0
    if not args.rev:
        p.error("give the commit to compare with")
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-watch-ab-"))
    src, index = work / f"a{args.size}", work / f"i{args.size}"
    if not index.is_dir():
        write_archive(src, stories(NEWS), args.size)
        _sub(str(src), str(index), "add:0", "0", str(NEWS))
    base = baseline_code(args.rev, work)
    shutil.copy(Path(__file__), base / "benchmarks" / "watch_ab.py")  # the same measuring
    sides = {"this code": ROOT, args.rev: base}
    got: dict[str, list[list[float]]] = {name: [] for name in sides}
    first = 20_000_000 + int(time.time()) % 100_000 * 100  # new article numbers each run
    for r in range(args.rounds):
        for name, code in sides.items():
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(code)}
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.watch_ab", "--child", str(src), str(index),
                 str(first), str(args.changes), str(NEWS)], cwd=code, env=env, text=True,
                capture_output=True)
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            got[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            first += args.changes
            print(f"round {r + 1} {name}: {got[name][-1]}", flush=True)
    print(f"| code | first change after start (median of {args.rounds}) | "
          "later changes: median / worst |\n|---|---|---|")
    for name, runs in got.items():
        firsts, later = [r[0] for r in runs], [x for r in runs for x in r[1:]]
        print(f"| {name} | {statistics.median(firsts):.3f} | "
              f"{statistics.median(later):.3f} / {max(later):.3f} |")
    print(f"archive: {args.size} articles ({'BBC stories' if NEWS.is_dir() else 'generated'}); "
          "embedder: hash-64 (instant)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
