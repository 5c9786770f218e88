"""``python -m benchmarks.run [--quick]``: this project vs a LangChain baseline, one run.

Default corpus: ``../shared/corpus/news`` (2,225 BBC articles) plus the 48 articles of
``../shared/eval``; ``--quick`` takes 100 news articles instead (a few minutes). Ten news
articles are held out of the first build and added later ("add ten"). Every measurement
runs in its own process (see :mod:`benchmarks.sides`), so peak RSS is per side. Results
go to ``benchmarks/results/`` (JSON and the Markdown table) and the table is printed.

The baseline is what a LangChain user writes: RecursiveCharacterTextSplitter(1000, 200),
``HuggingFaceEmbeddings`` on the same bundled model, ``FAISS.from_documents``,
``similarity_search(k=5)``; it rebuilds from scratch, so its rebuild time is its build
time. Ratios are oriented so that above 1 means ours is better (faster, smaller).
Needs ``langchain-huggingface`` and ``langchain-community`` (``pip install -e .[bench]``);
``--sides ours`` runs without them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
RESULTS = ROOT / "benchmarks" / "results"
HELD_OUT = 10


def sub(args: list[str], timeout: float = 7200) -> tuple[dict, float, str]:
    """Run ``python -m ...args`` in a new process: (its JSON line, wall seconds, stdout)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"benchmark step {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    return (json.loads(lines[-1]) if lines else {}), wall, done.stdout


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def prepare(work: Path, n_news: int | None) -> tuple[Path, list[dict], list[dict]]:
    """The source folder (news minus HELD_OUT, plus eval articles), the news rows in it,
    and the held-out rows."""
    news = read_jsonl(SHARED / "corpus" / "news" / "articles.jsonl")
    if n_news:
        news = news[: n_news + HELD_OUT]
    kept, held = news[:-HELD_OUT], news[-HELD_OUT:]
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    write_jsonl(src / "news.jsonl", kept)
    shutil.copy(SHARED / "eval" / "articles.jsonl", src / "eval.jsonl")
    return src, kept, held


def token_stats(texts: list[str]) -> tuple[int, int]:
    """(word pieces of the texts, word pieces a model run over them reads: specials in,
    cut at 256 per passage)."""
    from rag.embedding.weights import model_dir
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir(), "tokenizer.json"))
    tok.no_truncation()
    counts = [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]
    return sum(counts), sum(min(c + 2, 256) for c in counts)


def our_passages(index: Path) -> list[str]:
    """The distinct passages the model embedded for the live index."""
    from rag.index.segments import open_index

    idx = open_index(index)
    seen, out = set(), []
    for row, s, e in idx.chunks[:, :3].tolist():
        t = idx.article(row).text[s:e]
        if t not in seen:
            seen.add(t)
            out.append(t)
    idx.close()
    return out


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cold_start(index: Path, question: str, runs: int) -> list[float]:
    walls = []
    for _ in range(runs):
        _, wall, out = sub(["rag.ask", question, "--index", str(index)], timeout=600)
        if "[1]" not in out and "do not answer" not in out:
            raise SystemExit(f"rag.ask printed no answer:\n{out[:500]}")
        walls.append(wall)
    return walls


def measure(args) -> dict:
    work = RESULTS / ("work-quick" if args.quick else "work")
    work.mkdir(parents=True, exist_ok=True)
    src, kept, held = prepare(work, args.articles)
    qfile = str(SHARED / "eval" / "questions.jsonl")
    texts = [r["text"] for r in kept] + [r["text"] for r in read_jsonl(src / "eval.jsonl")]
    text_tokens, _ = token_stats(texts)
    res: dict = {"articles": len(texts), "text_tokens": text_tokens,
                 "questions": args.questions, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    question = read_jsonl(Path(qfile))[0]["question"]
    if "ours" in args.sides:
        index = work / "index-ours"
        shutil.rmtree(index, ignore_errors=True)
        b, wall, _ = sub(["benchmarks.sides", "ours", "build", str(src), str(index)])
        _, emb_tokens = token_stats(our_passages(index))
        disk = dir_bytes(index)  # after one build: its segments, version and source cache
        a, _, _ = sub(["benchmarks.sides", "ours", "ask", str(index), qfile,
                       str(args.questions)])
        cold = cold_start(index, question, 3)
        # change one article, then add the ten held out
        rows = read_jsonl(src / "news.jsonl")
        rows[len(rows) // 2]["text"] += "\n\nThis article was updated for the benchmark."
        write_jsonl(src / "news.jsonl", rows)
        one, one_wall, _ = sub(["benchmarks.sides", "ours", "update", str(src), str(index)])
        write_jsonl(src / "news.jsonl", rows + held)
        ten, ten_wall, _ = sub(["benchmarks.sides", "ours", "update", str(src), str(index)])
        real, _, _ = sub(["benchmarks.scale", "--real", str(index), qfile])
        res["ours"] = {"real_ivf": real, "build_wall_s": wall, "build": b, "embedded_tokens": emb_tokens,
                       "ask": a, "cold_s": cold, "disk_bytes": disk,
                       "rebuild_one_s": one_wall, "rebuild_one": one,
                       "rebuild_ten_s": ten_wall, "rebuild_ten": ten}
        write_jsonl(src / "news.jsonl", kept)
    if "langchain" in args.sides:
        index = work / "index-langchain"
        shutil.rmtree(index, ignore_errors=True)
        b, wall, _ = sub(["benchmarks.sides", "langchain", "build", str(src), str(index)])
        docs = json.loads((index / "docstore.json").read_text(encoding="utf-8"))
        _, emb_tokens = token_stats([d["text"] for d in docs])
        a, _, _ = sub(["benchmarks.sides", "langchain", "ask", str(index), qfile,
                       str(args.questions)])
        cold = [sub(["benchmarks.sides", "langchain", "cold", str(index), question])[1]
                for _ in range(args.baseline_cold_runs)]
        res["langchain"] = {"build_wall_s": wall, "build": b, "embedded_tokens": emb_tokens,
                            "ask": a, "cold_s": cold, "disk_bytes": dir_bytes(index)}
        if (args.selector_hf / "config.json").is_file():
            ce, _, _ = sub(["benchmarks.sides", "langchain", "ask-ce", str(index), qfile,
                            str(args.questions), str(args.selector_hf)])
            res["langchain_ce"] = ce
        else:
            print(f"no selector weights in {args.selector_hf} (python -m rag.training): the "
                  "LangChain + CrossEncoder side is skipped", file=sys.stderr)
    if args.scale:
        res["scale"] = []
        for n in args.scale:
            r, _, _ = sub(["benchmarks.scale", str(n)])
            res["scale"].append(r)
    return res


def _fmt(v, unit=""):
    if v is None:
        return "–"
    if isinstance(v, float):
        v = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) < 1 else f"{v:,.1f}"
    return f"{v}{unit}"


def table(res: dict) -> str:
    o, b = res.get("ours"), res.get("langchain")

    def side(d, f):
        try:
            return f(d) if d else None
        except (KeyError, TypeError, ZeroDivisionError):
            return None

    rows = [
        ("build wall (s), process start to exit", lambda d: d["build_wall_s"], "low"),
        ("chunks", lambda d: float(d["build"]["chunks"]), ""),
        ("mean tokens per embedded chunk", lambda d: d["embedded_tokens"] / d["build"]["embedded"], ""),
        ("chunks/s", lambda d: d["build"]["chunks"] / d["build_wall_s"], "high"),
        ("embedded tokens/s", lambda d: d["embedded_tokens"] / d["build_wall_s"], "high"),
        ("tokens embedded per token of text", lambda d: d["embedded_tokens"] / res["text_tokens"], "low"),
        ("build peak RSS (MB)", lambda d: d["build"]["peak_rss_mb"], "low"),
        ("rebuild, 1 article changed (s)", lambda d: d.get("rebuild_one_s", d["build_wall_s"]), "low"),
        ("rebuild, 10 articles added (s)", lambda d: d.get("rebuild_ten_s", d["build_wall_s"]), "low"),
        ("warm ask median (ms)", lambda d: d["ask"]["median_ms"], "low"),
        ("warm ask p95 (ms)", lambda d: d["ask"]["p95_ms"], "low"),
        ("CLI cold start, median (s)", lambda d: statistics.median(d["cold_s"]), "low"),
        ("index on disk (MB)", lambda d: d["disk_bytes"] / 2**20, "low"),
        ("disk per chunk (KB)", lambda d: d["disk_bytes"] / 1024 / d["build"]["chunks"], "low"),
        ("resident memory per chunk (KB)", lambda d: d["ask"]["rss_delta_mb"] * 1024 / d["ask"]["chunks"], "low"),
    ]
    lines = ["| measure | ours | LangChain baseline | ratio (>1: ours better) |",
             "|---|---:|---:|---:|"]
    for name, f, better in rows:
        x, y = side(o, f), side(b, f)
        if not (x and y):
            ratio = "–"
        elif better == "low":
            ratio = f"{y / x:.2f}×"
        elif better == "high":
            ratio = f"{x / y:.2f}×"
        else:
            ratio = f"({x / y:.2f} ours/baseline)"
        lines.append(f"| {name} | {_fmt(x)} | {_fmt(y)} | {ratio} |")
    out = "\n".join(lines)
    if o:
        stages = ", ".join(f"{k} {v:.1f}" for k, v in o["ask"].get("stages", {}).items())
        out += (f"\n\nOurs: backend {o['build'].get('backend')}, vector index "
                f"{o['ask'].get('vector_index')}; ask stages (median ms): {stages}. "
                f"Rebuild 1 changed: {o['rebuild_one']['embedded']} passages embedded; "
                f"10 added: {o['rebuild_ten']['embedded']}. The baseline rebuilds from scratch "
                f"(its rebuild time is its build time). Ours' ask is a whole answer (embed, hybrid "
                f"search, sentence extraction); the baseline's is similarity_search + reading "
                f"the top passage. Cold start runs: "
                f"{', '.join(f'{s:.2f}' for s in o['cold_s'])} s.")
    ce = res.get("langchain_ce")
    if o and b:
        out += (f"\n\nAnswers: ours (selector {o['ask'].get('selector')}) median "
                f"{o['ask']['median_ms']:.1f} ms, hit@1 {o['ask'].get('hit_at_1', 0):.3f}; the "
                f"baseline's bare vector lookup median {b['ask']['median_ms']:.1f} ms (ours / it: "
                f"{o['ask']['median_ms'] / b['ask']['median_ms']:.2f}x).")
    if o and ce:
        out += (f" LangChain retrieval + the same selector as a sentence-transformers "
                f"CrossEncoder over every sentence of the top 5 passages: median "
                f"{ce['median_ms']:.1f} ms, hit@1 {ce['hit_at_1']:.3f} (ours is "
                f"{ce['median_ms'] / o['ask']['median_ms']:.1f}x faster).")
    if o and o.get("real_ivf"):
        r = o["real_ivf"]
        out += (f"\n\nIVF forced on this corpus' {r['n']:,} real chunk vectors, "
                f"{r['queries']} real questions: {r['index']}, recall@10 vs exact "
                f"{r['recall_at_10_real_questions']:.3f}.")
    if res.get("scale"):
        out += ("\n\n| search only, synthetic clustered 384-d | index | build (s) | median (ms) "
                "| p95 (ms) | recall@10 vs exact | exact flat median (ms) "
                "| index bytes per chunk |\n|---|---|---:|---:|---:|---:|---:|---:|")
        for r in res["scale"]:
            out += (f"\n| {r['n']:,} chunks | {r['index']} | {r['build_s']} | "
                    f"{r['median_ms']:.2f} | {r['p95_ms']:.2f} | {r['recall_at_10']:.3f} | "
                    f"{r['flat_median_ms']:.1f} | {r['index_bytes_per_chunk']:.0f} |")
    return out + "\n" + targets(res)


def targets(res: dict) -> str:
    o, b = res.get("ours"), res.get("langchain")
    checks = []
    if o and b:
        checks += [
            ("build >= 2.0x faster", b["build_wall_s"] / o["build_wall_s"] >= 2.0),
            ("build peak RSS no higher", o["build"]["peak_rss_mb"] <= b["build"]["peak_rss_mb"]),
            ("warm ask median <= 1/3 of baseline", o["ask"]["median_ms"] * 3 <= b["ask"]["median_ms"]),
        ]
    if o:
        checks += [
            ("1 changed article rebuild < 5% of full build", o["rebuild_one_s"] < 0.05 * o["build_wall_s"]),
            ("warm ask median < 30 ms", o["ask"]["median_ms"] < 30),
            ("warm ask p95 < 2x median", o["ask"]["p95_ms"] < 2 * o["ask"]["median_ms"]),
            ("CLI cold start < 3 s", statistics.median(o["cold_s"]) < 3.0),
        ]
    for r in res.get("scale", []):
        if r["n"] >= 1_000_000:
            checks.append((f"{r['n']:,}: median < 20 ms, recall@10 >= 0.98",
                           r["median_ms"] < 20 and r["recall_at_10"] >= 0.98))
    return "\nTargets:\n" + "\n".join(f"- [{'x' if ok else ' '}] {name}" for name, ok in checks)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="100 news articles, 60 questions, 100k scale")
    p.add_argument("--articles", type=int, help="news articles to use (default: all)")
    p.add_argument("--questions", type=int, help="questions for warm latency (default 300)")
    p.add_argument("--selector-hf", type=Path, default=ROOT / "build" / "selector" / "hf",
                   help="the selector's torch weights for the LangChain + CrossEncoder side")
    p.add_argument("--sides", default="ours,langchain", help="ours,langchain (default both)")
    p.add_argument("--scale", help="comma-separated sizes for the search-only run "
                   "(default 100000,1000000; 'none' to skip)")
    p.add_argument("--baseline-cold-runs", type=int, default=2)
    args = p.parse_args(argv)
    if args.quick:
        args.articles = args.articles or 100
        args.questions = args.questions or 60
        args.scale = args.scale or "100000"
    args.questions = args.questions or 300
    scale = args.scale or "100000,1000000"
    args.scale = [] if scale == "none" else [int(float(s)) for s in scale.split(",")]
    args.sides = args.sides.split(",")
    if not (SHARED / "corpus" / "news" / "articles.jsonl").is_file():
        raise SystemExit(f"benchmark data not found under {SHARED}")
    res = measure(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    text = table(res)
    (RESULTS / f"{stamp}.json").write_text(json.dumps(res, indent=1))
    (RESULTS / f"{stamp}.md").write_text(f"`python -m benchmarks.run{' --quick' if args.quick else ''}`"
                                         f" ({res['when']}, {res['articles']} articles)\n\n{text}\n")
    print(text)
    print(f"\n(results in {RESULTS / stamp}.json / .md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
