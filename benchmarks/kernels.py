"""``python -m benchmarks.kernels``: the embedding model's speed per passage on one thread.

What bounds a full build (docs/performance.md, "Where a full build's time goes"): the
bundled all-MiniLM-L6-v2 through ONNX Runtime, int8 (the default backend) and fp32, one
session thread, random word pieces of ``--tokens`` length, in runs of 1, 4 and 16
equal-length rows (no padding), milliseconds per passage (median of ``--repeat`` runs);
then ONNX Runtime's profile of one int8 run by operator. Both sides run in this one
process, one after the other.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time

import numpy as np


def profiled_session(prefix: str):
    """The int8 session the runtime makes (:func:`rag.embedding.onnx_runtime.onnx_session`,
    one thread) with ONNX Runtime's profiler on."""
    import onnxruntime as ort

    from rag.embedding.onnx_runtime import onnx_path, onnx_session

    plain = onnx_session(True, 1)
    opts = ort.SessionOptions()
    for name in ("intra_op_num_threads", "inter_op_num_threads", "graph_optimization_level"):
        setattr(opts, name, getattr(plain.get_session_options(), name))
    opts.enable_profiling = True
    opts.profile_file_prefix = prefix
    return ort.InferenceSession(str(onnx_path(True)), sess_options=opts,
                                providers=["CPUExecutionProvider"])


def feed(sess, rows: int, tokens: int) -> dict:
    ids = np.random.RandomState(0).randint(1000, 20000, (rows, tokens)).astype(np.int64)
    full = {"input_ids": ids, "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids)}
    return {i.name: full[i.name] for i in sess.get_inputs()}


def per_passage_ms(sess, rows: int, tokens: int, repeat: int) -> float:
    f = feed(sess, rows, tokens)
    sess.run(None, f)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        sess.run(None, f)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) / rows * 1e3


def operator_shares(tokens: int, runs: int = 20) -> dict[str, float]:
    """Each operator's share of one int8 run's kernel time (ONNX Runtime's profiler)."""
    with tempfile.TemporaryDirectory() as tmp:
        sess = profiled_session(f"{tmp}/ort")
        f = feed(sess, 1, tokens)
        for _ in range(runs):
            sess.run(None, f)
        with open(sess.end_profiling(), encoding="utf-8") as fh:
            events = json.load(fh)
    spent: collections.Counter = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            spent[e["args"]["op_name"]] += e["dur"]
    total = sum(spent.values()) or 1
    return {op: round(100 * t / total, 1) for op, t in spent.most_common(6)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokens", type=int, default=160, help="word pieces per passage")
    p.add_argument("--repeat", type=int, default=6)
    args = p.parse_args(argv)
    print(f"| one thread, {args.tokens} word pieces, ms per passage | batch 1 | 4 | 16 |")
    print("|---|---|---|---|")
    from rag.embedding.onnx_runtime import onnx_session

    for quantized in (True, False):
        sess = onnx_session(quantized, 1)  # the runtime's own session settings
        cells = [per_passage_ms(sess, b, args.tokens, args.repeat) for b in (1, 4, 16)]
        print(f"| {'int8' if quantized else 'fp32'} | "
              + " | ".join(f"{c:.1f}" for c in cells) + " |")
    print("int8 run by operator (% of kernel time):", operator_shares(args.tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
