"""The ONNX Runtime side of the models: cached exports, their sessions, one run per text.

:func:`onnx_session` returns an ONNX Runtime session over ``last_hidden_state`` of
all-MiniLM-L6-v2 (inputs ``input_ids``, ``attention_mask``, ``token_type_ids``, int64
[batch, tokens]), fp32 or int8. :func:`onnx_path` finds the cached file (see
:mod:`rag.embedding.weights`) or, the first time on a machine, has
:mod:`rag.embedding.export` make it in a subprocess, under a file lock, so two processes never see half a model. Exporting
needs torch (it is there for building); using the cached files needs only onnxruntime.
A local sentence-transformers folder's export (:mod:`rag.embedding.folder`) goes through
the same :func:`export_once`, :func:`onnx_session` and :func:`run_rows`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .weights import FILES, export_dir


def onnx_path(quantized: bool) -> Path:
    """The cached ONNX file, exported first if missing (needs torch the first time)."""
    folder = export_dir()
    return export_once(folder, folder / FILES[quantized], [str(folder)])


def export_once(folder: Path, target: Path, args: list[str]) -> Path:
    """``target`` (a file in ``folder``), made first if missing by ``python -m
    rag.embedding.export ARGS`` in a subprocess, under a file lock, so two processes never
    see half a model (tracing also leaves transformers' global state altered)."""
    if target.is_file():
        return target
    folder.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(folder) + ".lock"):
        if not target.is_file():
            import subprocess
            import sys

            root = str(Path(__file__).resolve().parents[2])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
            done = subprocess.run([sys.executable, "-m", "rag.embedding.export", *args],
                                  capture_output=True, text=True, env=env)
            if done.returncode != 0 or not target.is_file():
                raise RuntimeError("exporting the model to ONNX failed:\n"
                                   + done.stderr[-2000:])
    return target


def onnx_session(quantized: bool, threads: int, path: Path | None = None):
    """An ONNX Runtime CPU session with ``threads`` threads over ``path``, by default the
    bundled model's fp32 or int8 file. ``run`` on it may be called from several threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # No busy-waiting between operators: on a shared 2-core machine spinning threads
    # steal the cores the work needs (one query: 6 ms without, up to 19 ms with).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path or onnx_path(quantized)), sess_options=opts,
                                providers=["CPUExecutionProvider"])


_pools: dict[int, object] = {}  # thread count -> its workers, shared by every model
_pools_lock = threading.Lock()


def _workers(threads: int):
    """The ``threads`` one-thread workers of :func:`run_rows`, created once per process
    (None for one thread)."""
    if threads <= 1:
        return None
    with _pools_lock:
        if threads not in _pools:
            from concurrent.futures import ThreadPoolExecutor

            _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="rag-embed")
        return _pools[threads]


def run_rows(session, encodings, names: tuple[str, ...], threads: int):
    """(i, token vectors [tokens, dim]) for each tokenizers ``Encoding``, each in its own
    run, unpadded (longest first, on ``threads`` workers sharing ``session``, which has
    one thread). A text's vectors then depend on that text alone: int8 quantises
    activations per run, so in a padded batch they depended on the batch's other texts.
    ``names`` are the model's inputs (``token_type_ids`` are zeros)."""
    import numpy as np

    def run(i: int):
        ids = np.asarray([encodings[i].ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                "token_type_ids": np.zeros_like(ids)}
        return i, session.run(["last_hidden_state"], {n: feed[n] for n in names})[0][0]

    order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
    pool = _workers(threads) if len(order) > 1 else None
    return pool.map(run, order) if pool is not None else map(run, order)
