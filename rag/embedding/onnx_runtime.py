"""The ONNX Runtime side of the bundled model: the cached export and its sessions.

:func:`onnx_session` returns an ONNX Runtime session over ``last_hidden_state`` of
all-MiniLM-L6-v2 (inputs ``input_ids``, ``attention_mask``, ``token_type_ids``, int64
[batch, tokens]), fp32 or int8. :func:`onnx_path` finds the cached file (see
:mod:`rag.embedding.weights`) or, the first time on a machine, has
:mod:`rag.embedding.export` make it in a subprocess, under a file lock, so two processes never see half a model. Exporting
needs torch (it is there for building); using the cached files needs only onnxruntime.
"""

from __future__ import annotations

import os
from pathlib import Path

from .weights import FILES, export_dir


def onnx_path(quantized: bool) -> Path:
    """The cached ONNX file, exported first if missing (needs torch the first time)."""
    folder = export_dir()
    target = folder / FILES[quantized]
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
            done = subprocess.run([sys.executable, "-m", "rag.embedding.export", str(folder)],
                                  capture_output=True, text=True, env=env)
            if done.returncode != 0 or not target.is_file():
                raise RuntimeError("exporting the model to ONNX failed:\n"
                                   + done.stderr[-2000:])
    return target


def onnx_session(quantized: bool, threads: int):
    """An ONNX Runtime CPU session for the fp32 or int8 model with ``threads`` threads.
    ``run`` on it may be called from several threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    # No busy-waiting between operators: on a shared 2-core machine spinning threads
    # steal the cores the work needs (one query: 6 ms without, up to 19 ms with).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_path(quantized)), sess_options=opts,
                                providers=["CPUExecutionProvider"])
