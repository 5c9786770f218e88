"""Ray against one process: ``python -m benchmarks.distributed`` (the distributed extra).

Corpus: the development set's 48 Wikipedia articles plus the first ``--news`` BBC articles
(``../shared/eval``, ``../shared/corpus/news``), copied into a temporary folder. Questions:
``--questions`` answerable development questions (seeded sample).

Measured, all in one run on this machine:

* engine: a local Ray cluster's start (``ray.init``) and stop (``ray.shutdown``);
* build (from scratch, wall time, median of ``--repeat``): one index, local vs Ray
  (``--engine ray``, an actor pool below the CPU count); 2 shards, local vs Ray; the
  Ray builds include starting their own cluster, as ``python -m rag.build --engine ray``
  does; and whether the Ray-built files equal the local ones (sha256 of every file);
* answers (warm, median and p90 ms over the questions): the single index in-process,
  the 2-shard index in-process, and the 2-shard index behind Ray Serve over HTTP
  (loopback), with the share of questions whose answer equals the single index's
  (text, offsets, citations, scores; the three retrieval modes).

Writes ``benchmarks/results/<time>-distributed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
RESULTS = Path(__file__).resolve().parent / "results"


def _files(index_dir: Path) -> dict:
    version = (index_dir / "CURRENT").read_text().strip()
    return json.loads((index_dir / version / "manifest.json").read_text())["files"]


def _comparable(d: dict) -> dict:
    d = json.loads(json.dumps(d, ensure_ascii=False))
    d.pop("timings_ms", None)
    return d


def _stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"median_ms": round(statistics.median(xs) * 1e3, 1),
            "p90_ms": round(xs[int(0.9 * (len(xs) - 1))] * 1e3, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.distributed")
    p.add_argument("--data", type=Path, default=SHARED / "eval")
    p.add_argument("--distractors", type=Path, default=SHARED / "corpus" / "news")
    p.add_argument("--news", type=int, default=300)
    p.add_argument("--questions", type=int, default=100)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import httpx
    import ray
    from ray import serve

    import rag
    from rag.app.web import free_port
    from rag.config import Config
    from rag.distributed.build import RayEmbed
    from rag.distributed.serve import APP_NAME, build_app
    from rag.index.shards import shard_name

    work = Path(tempfile.mkdtemp(prefix="rag-bench-ray-"))
    src = work / "articles"
    src.mkdir()
    shutil.copy(args.data / "articles.jsonl", src / "0-wiki.jsonl")
    with open(args.distractors / "articles.jsonl") as f, open(src / "1-news.jsonl", "w") as out:
        for _, line in zip(range(args.news), f):
            out.write(line)
    questions = [json.loads(line) for line in open(args.data / "questions.jsonl")]
    questions = [q["question"] for q in questions if not q["is_impossible"]]
    random.Random(args.seed).shuffle(questions)
    questions = questions[:args.questions]
    base = Config.from_env(source=src)
    res: dict = {"corpus": {"articles": 48 + args.news}, "questions": len(questions)}

    # engine start / stop
    starts, stops = [], []
    for _ in range(3):
        t = time.perf_counter()
        ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
        starts.append(time.perf_counter() - t)
        t = time.perf_counter()
        ray.shutdown()
        stops.append(time.perf_counter() - t)
    res["engine"] = {"start_s": round(statistics.median(starts), 2),
                     "stop_s": round(statistics.median(stops), 2)}
    print("engine", res["engine"], flush=True)

    # builds
    def timed(name: str, **kw) -> float:
        times = []
        for r in range(args.repeat):
            out = work / f"{name}-{r}"
            t = time.perf_counter()
            report = rag.build(config=base.replace(index_dir=out), **kw)
            times.append(time.perf_counter() - t)
        res.setdefault("build", {})[name] = {"seconds": round(statistics.median(times), 1),
                                             "chunks": report.chunks}
        print("build", name, res["build"][name], flush=True)
        return statistics.median(times)

    timed("local")
    engine = RayEmbed()
    timed("ray", embed=engine)
    res["build"]["ray"]["actors"] = engine.report.get("actors")
    res["build"]["ray"]["cpus"] = engine.report.get("cpus")
    timed("shards2-local", shards=2)
    timed("shards2-ray", shards=2, engine="ray")
    res["build"]["ray_files_equal_local"] = _files(work / "ray-0") == _files(work / "local-0")
    res["build"]["ray_shard_files_equal_local"] = all(
        _files(work / "shards2-ray-0" / shard_name(i)) ==
        _files(work / "shards2-local-0" / shard_name(i)) for i in range(2))
    n = res["build"]["local"]["chunks"]
    res["build"]["passages_per_s"] = {
        k: round(n / res["build"][k]["seconds"], 1)
        for k in ("local", "ray", "shards2-local", "shards2-ray")}

    # answers
    single = base.replace(index_dir=work / "local-0")
    sharded = base.replace(index_dir=work / "shards2-local-0")
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    # no rate limit: this one client asks 3 x questions times (the default is 120 a minute)
    serve.run(build_app(config=sharded.replace(rate_limit=0), ui=False), name=APP_NAME,
              route_prefix="/")
    url = f"http://127.0.0.1:{port}/api/ask"
    sides = {"single in-process": [], "2 shards in-process": [], "2 shards, Ray Serve HTTP": []}
    equal = {m: 0 for m in ("hybrid", "dense", "keyword")}
    equal_local = dict(equal)
    differences = []
    with httpx.Client(timeout=120) as client:
        for q in questions[:5]:  # warm-up
            rag.ask(q, config=single)
            rag.ask(q, config=sharded)
            client.post(url, json={"question": q})
        for q in questions:
            for mode in equal:
                t = time.perf_counter()
                a = rag.ask(q, config=single, retrieval=mode)
                t1 = time.perf_counter()
                b = rag.ask(q, config=sharded, retrieval=mode)
                t2 = time.perf_counter()
                reply = client.post(url, json={"question": q, "retrieval": mode})
                t3 = time.perf_counter()
                if reply.status_code != 200:
                    raise SystemExit(f"Ray Serve answered {reply.status_code}: {reply.text}")
                c = reply.json()
                if mode == "hybrid":
                    sides["single in-process"].append(t1 - t)
                    sides["2 shards in-process"].append(t2 - t1)
                    sides["2 shards, Ray Serve HTTP"].append(t3 - t2)
                want, got_b, got_c = _comparable(a.to_dict()), _comparable(b.to_dict()), \
                    _comparable(c)
                equal_local[mode] += want == got_b
                equal[mode] += want == got_c
                if (want != got_b or want != got_c) and len(differences) < 5:
                    differences.append({"mode": mode, "question": q, "fields": sorted(
                        k for k in want if want[k] != got_b.get(k) or want[k] != got_c.get(k))})
    serve.shutdown()
    ray.shutdown()
    res["answers"] = {k: _stats(v) for k, v in sides.items()}
    base_ms = res["answers"]["single in-process"]["median_ms"]
    for k in res["answers"]:
        res["answers"][k]["ratio_to_single"] = round(res["answers"][k]["median_ms"] / base_ms, 2)
    res["equal_to_single"] = {m: round(v / len(questions), 4) for m, v in equal.items()}
    res["equal_to_single_in_process"] = {m: round(v / len(questions), 4)
                                         for m, v in equal_local.items()}
    res["differences"] = differences
    print(json.dumps(res, indent=1))

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"{stamp}-distributed.json").write_text(json.dumps(res, indent=1))
    b = res["build"]
    md = ["| build from scratch | seconds | passages/s |", "|---|---:|---:|"]
    md += [f"| {k} | {b[k]['seconds']} | {b['passages_per_s'][k]} |"
           for k in ("local", "ray", "shards2-local", "shards2-ray")]
    md += ["", f"Ray engine start {res['engine']['start_s']} s, stop {res['engine']['stop_s']} s; "
           f"Ray actors {b['ray']['actors']} of {b['ray']['cpus']} CPUs; Ray-built files equal "
           f"the local ones: {b['ray_files_equal_local']} (one index), "
           f"{b['ray_shard_files_equal_local']} (shards).", "",
           "| answer (warm, hybrid) | median ms | p90 ms | / single |", "|---|---:|---:|---:|"]
    md += [f"| {k} | {v['median_ms']} | {v['p90_ms']} | {v['ratio_to_single']} |"
           for k, v in res["answers"].items()]
    md += ["", "Answers equal to the single index's, 2 shards in-process: " +
           ", ".join(f"{m} {v:.3f}" for m, v in res["equal_to_single_in_process"].items()) +
           "; through Ray Serve: " +
           ", ".join(f"{m} {v:.3f}" for m, v in res["equal_to_single"].items())]
    (RESULTS / f"{stamp}-distributed.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"(results in {RESULTS / stamp}-distributed.json / .md)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
