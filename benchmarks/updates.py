"""``python -m benchmarks.updates [--sizes 300,1000,2225,10000] [--news DIR] [--baseline REV]``:
what an update costs as the archive grows (issue 26), segments against the whole-version
rewrite of ``REV`` (default 4d4b38a, before segments), both in the same run.

For each archive size N: a folder of N articles (the BBC stories of ``../shared/corpus/
news``, then stories with every fifth word changed until there are N: every article
distinct, none a near-duplicate of another), built once; then, each in its own process
(a command-line build; peak RSS is per step), adding 1, 10 and 100 new articles and
removing 1, each published as a new version. Then the same archive kept current by one
watching process (``segments, watching``: what ``--watch`` does): a first build that
walks the folder, then add 1 (twice), 10, 100 and remove 1, each built with the paths
it touched (``rag.build(changed=...)``) instead of a walk. Per step: seconds to
publish, peak RSS, bytes written (the new version's files), the live version's size,
and the median question latency (20 keyword questions, after the step). The embedder is
a hashing one (``hash``, 64 dimensions, instant): embedding already costs only what
changed, so this measures everything else a build does (reading, diffing, copies,
FAISS, BM25, SQLite, hashing, publishing, merging).

Each step also reports ``write_s`` (from the build's "writing" phase to published), the
segment count, and the search latency before the step. The baseline runs the same
command-line steps from ``git archive REV`` unpacked in the scratch folder (its own
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
    """The n-th article: a story, or (past the stories) a story with changed text: every
    fifth word replaced by one of the stories' words, picked by ``n`` and its place, so
    that no two made articles share a run of five words (they are distinct articles, not
    syndicated copies: an archive where nearly every article folded into another would
    measure the copy groups, not the update; the first version of this benchmark did
    that)."""
    base = texts[n % len(texts)]
    if n < len(texts):
        return base
    vocab = _vocabulary(texts)
    words = base.split(" ")
    for i in range(4, len(words), 5):
        words[i] = vocab[zlib.crc32(f"{n}:{i}".encode()) % len(vocab)]
    return f"Update {n // len(texts)} on story {n}.\n\n" + " ".join(words)


_VOCAB: dict[int, list[str]] = {}


def _vocabulary(texts: list[str]) -> list[str]:
    """The distinct lowercase words of the first 300 stories, sorted."""
    key = id(texts)
    if key not in _VOCAB:
        _VOCAB[key] = sorted({w for t in texts[:300] for w in re.findall(r"[a-z]{3,}", t)})
    return _VOCAB[key]


def write_archive(folder: Path, texts: list[str], size: int) -> None:
    for n in range(size):
        sub = folder / f"{n // 1000:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"a{n:06d}.txt").write_text(article(texts, n), encoding="utf-8")


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def apply(src: Path, change: str, first: int, texts: list[str]) -> list[Path]:
    """Make ``change`` (``add:N``: N new articles numbered from ``first``; ``remove:N``:
    delete the first N files) in the folder; the paths touched (what a watcher reports)."""
    kind, count = change.split(":")
    touched = []
    if kind == "add":
        for n in range(first, first + int(count)):
            sub = src / "new"
            sub.mkdir(exist_ok=True)
            path = sub / f"n{n:06d}.txt"
            path.write_text(article(texts, n + 10_000_000), encoding="utf-8")
            touched.append(path)
    elif kind == "remove":
        for p in sorted(src.rglob("*.txt"))[:int(count)]:
            p.unlink()
            touched.append(p)
    return touched


def measure(rag, cfg, change: str, changed: list[Path] | None = None) -> dict:
    """Build ``cfg`` (told ``changed`` when given) and measure it: seconds, the phase
    from writing to published, bytes added, segments, search latency before and after."""
    from rag.index.store import current_version

    index = Path(cfg.index_dir)
    before = set(p.name for p in index.iterdir()) if index.is_dir() else set()
    if index.is_dir():
        before |= {f"segments/{p.name}" for p in (index / "segments").glob("*")}
    lat_before = _latencies(rag, cfg) if change != "add:0" else []
    phases: dict[str, float] = {}
    t = time.perf_counter()
    report = rag.build(config=cfg, on_progress=lambda phase, done, total:
                       phases.setdefault(phase, time.perf_counter()),
                       **({"changed": changed} if changed is not None else {}))
    end = time.perf_counter()
    live = index / current_version(index)
    now = set(p.name for p in index.iterdir()) | \
        {f"segments/{p.name}" for p in (index / "segments").glob("*")}
    written = sum(_dir_bytes(index / name) if (index / name).is_dir()
                  else (index / name).stat().st_size
                  for name in now - before if name != "segments")
    manifest = json.loads((live / "manifest.json").read_text())
    lat = _latencies(rag, cfg)
    return {"change": change, "seconds": round(end - t, 3),
            "write_s": round(end - phases.get("writing", end), 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "written_mb": round(written / 2**20, 2),
            "live_mb": round(_live_bytes(index, manifest) / 2**20, 1),
            "segments": len(manifest.get("segments", [None])),
            "search_ms_p50_before": round(statistics.median(lat_before[1:]), 2)
            if lat_before else None,
            "search_ms_p50": round(statistics.median(lat[1:]), 2),
            "articles": report.articles, "embedded_chunks": report.embedded_chunks}


def _setup(src: Path, index: Path, texts_dir: str):
    """rag and the config, with what a build imports loaded before any clock starts (a
    server or --watch imports them once): the same modules on both sides."""
    _register()
    import rag
    from rag.config import Config

    import bm25s.stopwords  # noqa: F401
    import rag.index.build  # noqa: F401
    import rag.ingest.chunking  # noqa: F401
    cfg = Config(source=src, index_dir=index, model="hash", selector=False)
    return rag, cfg, stories(Path(texts_dir))


def step(src: Path, index: Path, change: str, first: int, texts_dir: str) -> dict:
    """One change in this process (a command-line build): apply it, build, measure."""
    rag, cfg, texts = _setup(src, index, texts_dir)
    apply(src, change, first, texts)
    return measure(rag, cfg, change)


WATCHING = ("add:1", "add:1", "add:10", "add:100", "remove:1")


def watching(src: Path, index: Path, first: int, texts_dir: str) -> list[dict]:
    """The changes of :data:`WATCHING` in one process, as ``--watch`` makes them: a first
    build that walks the folder (nothing changed), the Updater's warm-up, then each
    change built with the paths it touched (``rag.build(changed=...)``, what the watcher
    reports). Peak RSS is the process's so far."""
    from rag.app.watch import settle_memory, warm_up

    rag, cfg, texts = _setup(src, index, texts_dir)
    rows = [{**measure(rag, cfg, "add:0"), "change": "first build in the process"}]
    warm_up(cfg)  # what a starting Updater does in a thread of its own
    settle_memory()  # and after a build that walked the folder
    for change in WATCHING:
        touched = apply(src, change, first, texts)
        first += int(change.split(":")[1])
        rows.append(measure(rag, cfg, change, changed=touched))
    return rows


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


def _sub(*args: str, code: Path = ROOT):
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
            if side == "segments":  # the same archive, kept current by a watching process
                for got in _sub(str(src), str(index), "watching", str(first), str(news)):
                    rows.append({"archive": size, "code": "segments, watching", **got})
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
        if change == "watching":
            print(json.dumps(watching(Path(src), Path(index), int(first), news)))
        else:
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
