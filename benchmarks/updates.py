"""``python -m benchmarks.updates [--sizes 300,1000,2225,10000] [--news DIR] [--baseline REV]``:
what an update costs as the archive grows (issue 26), segments against the whole-version
rewrite of ``REV`` (default 4d4b38a, before segments), both in the same run.

For each archive size N: a folder of N articles (the BBC stories of ``../shared/corpus/
news``, then copies of them with changed text until there are N: every article distinct),
built once; then, each in its own process (peak RSS is per step), adding 1, 10 and 100
new articles and removing 1, each published as a new version. Per step: seconds to
publish, peak RSS, bytes written (the new version's files), the live version's size,
and the median question latency (20 keyword questions, after the step). The embedder is
a hashing one (``hash``, 64 dimensions, instant): embedding already costs only what
changed, so this measures everything else a build does (reading, diffing, assembling,
FAISS, BM25, SQLite, hashing, publishing), which today is rewritten whole.

Each step also reports ``write_s`` (from the build's "writing" phase to published: what
segments change; reading the folder and finding copies come before it and still read
every article), the segment count, and the search latency before the step. The baseline
runs the same steps from ``git archive REV`` unpacked in the scratch folder (its own
``benchmarks/updates.py --step``); ``--baseline ''`` skips it.

The table is printed and written to ``benchmarks/results/updates.{json,md}``. Without
``../shared/corpus/news`` the articles are generated text (say so in any figure).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT.parent / "shared" / "corpus" / "news"
RESULTS = ROOT / "benchmarks" / "results"
QUESTIONS = ["oil prices", "election campaign", "football match", "mobile phone sales",
             "film award", "bank interest rates", "music chart", "tax cuts", "rugby team",
             "internet security", "airline profits", "tennis final", "court ruling",
             "video games", "share price", "prime minister", "box office", "broadband",
             "inflation figures", "transfer fee"]


class HashEmbedder:
    """Bag of hashed words -> unit vector (64 dimensions): deterministic and instant (each
    word's crc32 picks a row of one fixed random table)."""

    dim = 64
    max_tokens = 254
    model_id = "hash-64"
    _table = np.random.default_rng(0).standard_normal((1 << 16, 64)).astype(np.float32)

    def __init__(self, **_settings) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(re.findall(r"\w+|[^\w\s]", text))

    def _vec(self, text: str) -> np.ndarray:
        rows = [zlib.crc32(w.encode()) & 0xFFFF for w in re.findall(r"\w+", text.lower())]
        v = self._table[rows].sum(axis=0) if rows else np.zeros(self.dim, np.float32)
        n = np.linalg.norm(v)
        return (v / n).astype(np.float32) if n else np.eye(self.dim, dtype=np.float32)[0]

    def embed_queries(self, texts):
        return np.stack([self._vec(t) for t in texts]).astype(np.float32)

    def embed_passages(self, texts, spans, progress=None):
        vecs = np.stack([self._vec(t) for t in texts]).astype(np.float32)
        svecs = [np.stack([self._vec(t[a:b]) for a, b in sp]).astype(np.float32)
                 if sp else np.zeros((0, self.dim), np.float32) for t, sp in zip(texts, spans)]
        if progress:
            progress(len(texts))
        return vecs, svecs


def _register() -> None:
    from rag.embedding import model

    model.EMBEDDERS["hash"] = HashEmbedder


def stories(news: Path) -> list[str]:
    """The texts of ``news/articles.jsonl`` (title, a blank line, the text), or generated
    ones without it."""
    if (news / "articles.jsonl").is_file():
        with open(news / "articles.jsonl", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return [f"{r.get('title', '')}\n\n{r['text']}" for r in rows if r.get("text")]
    words = "market council river season player report budget school music court".split()
    return [" ".join(f"{words[(i * 7 + j) % 10]} {i}-{j}." for j in range(300))
            for i in range(500)]


def article(texts: list[str], n: int) -> str:
    """The n-th article: a story, or (past the stories) a story with changed text."""
    base = texts[n % len(texts)]
    if n < len(texts):
        return base
    return f"Update {n // len(texts)} on story {n}.\n\n" + base.replace(".", f" ({n}).", 3)


def write_archive(folder: Path, texts: list[str], size: int) -> None:
    for n in range(size):
        sub = folder / f"{n // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"a{n:06d}.txt").write_text(article(texts, n), encoding="utf-8")


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def step(src: Path, index: Path, change: str, first: int, texts_dir: str) -> dict:
    """One change in this process: apply it to the folder, build, measure."""
    _register()
    import rag
    from rag.config import Config
    from rag.index.store import current_version

    cfg = Config(source=src, index_dir=index, model="hash", selector=False)
    texts = stories(Path(texts_dir))
    kind, count = change.split(":")
    count = int(count)
    if kind == "add":
        for n in range(first, first + count):
            sub = src / "new"
            sub.mkdir(exist_ok=True)
            (sub / f"n{n:06d}.txt").write_text(article(texts, n + 10_000_000),
                                              encoding="utf-8")
    elif kind == "remove":
        for p in sorted(src.rglob("*.txt"))[:count]:
            p.unlink()
    before = set(p.name for p in index.iterdir()) if index.is_dir() else set()
    if index.is_dir():
        before |= {f"segments/{p.name}" for p in (index / "segments").glob("*")}
    lat_before = _latencies(rag, cfg) if change != "add:0" else []
    # what a build imports, loaded before the clock starts (a server or --watch imports
    # them once): the same modules on both sides
    import bm25s.stopwords  # noqa: F401
    import rag.index.build  # noqa: F401
    import rag.ingest.chunking  # noqa: F401
    phases: dict[str, float] = {}
    t = time.perf_counter()
    report = rag.build(config=cfg, on_progress=lambda phase, done, total:
                       phases.setdefault(phase, time.perf_counter()))
    end = time.perf_counter()
    seconds = end - t
    live = index / current_version(index)
    now = set(p.name for p in index.iterdir()) | \
        {f"segments/{p.name}" for p in (index / "segments").glob("*")}
    written = sum(_dir_bytes(index / name) if (index / name).is_dir()
                  else (index / name).stat().st_size
                  for name in now - before if name != "segments")
    manifest = json.loads((live / "manifest.json").read_text())
    lat = _latencies(rag, cfg)
    return {"change": change, "seconds": round(seconds, 3),
            "write_s": round(end - phases.get("writing", end), 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "written_mb": round(written / 2**20, 2),
            "live_mb": round(_live_bytes(index, manifest) / 2**20, 1),
            "segments": len(manifest.get("segments", [None])),
            "search_ms_p50_before": round(statistics.median(lat_before[1:]), 2)
            if lat_before else None,
            "search_ms_p50": round(statistics.median(lat[1:]), 2),
            "articles": report.articles, "embedded_chunks": report.embedded_chunks}


def _latencies(rag, cfg) -> list[float]:
    lat = []
    for q in QUESTIONS:
        t = time.perf_counter()
        rag.search(q, k=5, config=cfg, retrieval="keyword")
        lat.append((time.perf_counter() - t) * 1e3)
    return lat


def _live_bytes(index: Path, manifest: dict) -> int:
    """The live version's bytes: its folder and the segments it lists."""
    total = _dir_bytes(index / manifest["version"])
    for entry in manifest.get("segments", ()):
        total += _dir_bytes(index / "segments" / entry["name"])
    return total


def _sub(*args: str, code: Path = ROOT) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(code)}
    done = subprocess.run([sys.executable, "-m", "benchmarks.updates", "--step", *args],
                          cwd=code, env=env, text=True, capture_output=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def baseline_code(rev: str, work: Path) -> Path:
    """``git archive rev`` unpacked in ``work/base-<rev>``: the code before segments."""
    out = work / f"base-{rev}"
    if not out.is_dir():
        out.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    # the same measuring code (this file) on both sides: only rag/ differs
    shutil.copy(Path(__file__), out / "benchmarks" / "updates.py")
    return out


def run(sizes: list[int], news: Path, work: Path, baseline: Path | None) -> list[dict]:
    texts = stories(news)
    rows = []
    sides = [("segments", ROOT)] + ([("rewrite", baseline)] if baseline else [])
    for size in sizes:
        for side, code in sides:
            src, index = work / f"a{size}", work / f"i{size}-{side}"
            shutil.rmtree(src, ignore_errors=True), shutil.rmtree(index, ignore_errors=True)
            write_archive(src, texts, size)
            built = _sub(str(src), str(index), "add:0", "0", str(news), code=code)
            rows.append({"archive": size, "code": side, **built, "change": "full build"})
            first = 0
            for change in ("add:1", "add:10", "add:100", "remove:1"):
                got = _sub(str(src), str(index), change, str(first), str(news), code=code)
                first += int(change.split(":")[1])
                rows.append({"archive": size, "code": side, **got})
                print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(src, ignore_errors=True), shutil.rmtree(index, ignore_errors=True)
    return rows


def table(rows: list[dict]) -> str:
    head = ("archive", "code", "change", "seconds", "write_s", "peak_rss_mb", "written_mb",
            "live_mb", "segments", "search_ms_p50_before", "search_ms_p50")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r.get(h, "")) for h in head) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="300,1000,2225,10000",
                   help="archive sizes (comma-separated)")
    p.add_argument("--baseline", default="4d4b38a",
                   help="the commit to compare with ('' for none): the whole-version rewrite")
    p.add_argument("--news", type=Path, default=NEWS)
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument("--step", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.step:
        src, index, change, first, news = args.step
        print(json.dumps(step(Path(src), Path(index), change, int(first), news)))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="rag-updates-"))
    base = baseline_code(args.baseline, work) if args.baseline else None
    rows = run([int(s) for s in args.sizes.split(",")], args.news, work, base)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "updates.json").write_text(json.dumps(rows, indent=1) + "\n")
    md = table(rows)
    (RESULTS / "updates.md").write_text(md + "\n")
    print(md)
    print(f"articles: {'BBC stories' if (args.news / 'articles.jsonl').is_file() else 'generated text'}; "
          "embedder: hash-64 (instant)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
