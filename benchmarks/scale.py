"""Search alone at scale: ``python -m benchmarks.scale N [N...]`` (one JSON line per N).

Vectors are synthetic but clustered like sentence embeddings: 384-d unit vectors drawn
around ``N / 500`` sub-topic centres, which themselves lie around 32 broad topics (cosine
of a vector to its centre ~0.6, of two sub-topics of one topic ~0.5); the queries are
fresh draws from the same mixture (not in the index). For each size the project's own
choice (:func:`rag.index.dense.build_index`: exact below ``ANN_MIN_CHUNKS``, calibrated IVF
above) is built, written, memory-mapped back as the query path does, and searched one
query at a time with one OpenMP thread. Recall@10 is against exact search (numpy, in
blocks). Exact ``IndexFlatIP`` latency is reported alongside for comparison.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384


def clustered(n: int, rng, centres: np.ndarray, spread: float = 1.3) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        x = centres[rng.integers(0, len(centres), m)]
        x = x + spread * rng.standard_normal((m, DIM), dtype=np.float32) / np.sqrt(DIM)
        out[lo:lo + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def run(n: int, n_queries: int = 300, seed: int = 0) -> dict:
    import faiss

    from rag.index import dense as vectors

    rng = np.random.default_rng(seed)
    # two levels, like news: 32 broad topics, n/500 sub-topics around them
    topics = rng.standard_normal((32, DIM), dtype=np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    m = max(20, n // 500)
    centres = topics[np.arange(m) % 32] + rng.standard_normal((m, DIM), dtype=np.float32) \
        / np.sqrt(DIM)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    data = clustered(n, rng, centres)
    queries = clustered(n_queries, rng, centres)
    truth = vectors.exact_top(data, queries, 10)

    t = time.perf_counter()
    index, info = vectors.build_index(data, DIM)
    build_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vectors.faiss"
        faiss.write_index(index, str(path))
        size = path.stat().st_size
        del index
        loaded = vectors.load(path, info)  # memory-mapped, 1 OpenMP thread
        times, found = [], []
        for q in queries:
            t = time.perf_counter()
            _, ids = loaded.search(q[None], 10)
            times.append(time.perf_counter() - t)
            found.append(ids[0])
        recall = vectors.recall_at(np.array(found), truth)
        two = []
        faiss.omp_set_num_threads(2)
        for q in queries[:100]:
            t = time.perf_counter()
            loaded.search(q[None], 10)
            two.append(time.perf_counter() - t)
        faiss.omp_set_num_threads(1)
        del loaded
    flat = faiss.IndexFlatIP(DIM)
    flat.add(data[: min(n, 1_000_000)])
    flat_t = []
    for q in queries[:50]:
        t = time.perf_counter()
        flat.search(q[None], 10)
        flat_t.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {"n": n, "index": vectors.describe(info), "type": info["type"],
            "build_s": round(build_s, 1), "median_ms": float(np.median(ms)),
            "p95_ms": float(np.percentile(ms, 95)), "recall_at_10": recall,
            "median_ms_2_threads": float(np.median(two) * 1e3),
            "flat_median_ms": float(np.median(flat_t) * 1e3),
            "index_bytes_per_chunk": size / n,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_real(index_dir: str, qfile: str, n_queries: int = 300) -> dict:
    """IVF forced on the real chunk vectors of a built index, queried with real questions
    embedded by the project's model: recall@10 against exact on real data."""
    from rag.index import dense as vectors
    from rag.config import Config
    from rag.embedding.model import get_embedder
    from rag.index.segments import open_version

    cfg = Config.from_env(index_dir=index_dir)
    # every live passage of every segment (the benchmark's index has had updates)
    data = np.concatenate([np.asarray(part.index.chunk_vectors, dtype=np.float32)[
        np.arange(part.index.n_chunks) if part.live_ids is None else part.live_ids]
        for part in open_version(Path(index_dir)).parts])
    with open(qfile, encoding="utf-8") as f:
        qs = [json.loads(line)["question"] for line in f if line.strip()]
    qs = qs[:: max(1, len(qs) // n_queries)][:n_queries]
    emb = get_embedder(cfg)
    queries = np.stack([emb.embed_queries([q])[0] for q in qs])
    index, info = vectors.build_index(data, data.shape[1], min_ann=0)
    index.nprobe = info["nprobe"]
    _, found = index.search(queries, 10)
    return {"n": len(data), "index": vectors.describe(info),
            "recall_at_10_real_questions": vectors.recall_at(found, vectors.exact_top(
                data, queries, 10)), "queries": len(qs)}


if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if sys.argv[1] == "--real":
        print(json.dumps(run_real(sys.argv[2], sys.argv[3])), flush=True)
    else:
        for arg in sys.argv[1:]:
            print(json.dumps(run(int(float(arg)))), flush=True)
