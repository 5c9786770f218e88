"""The ONNX export of the bundled model, made once per machine and cached.

:func:`onnx_session` returns an ONNX Runtime session over ``last_hidden_state`` of
all-MiniLM-L6-v2 (inputs ``input_ids``, ``attention_mask``, ``token_type_ids``, int64
[batch, tokens]). The fp32 file is exported from the bundled weights with
``torch.onnx.export``, graph-optimised for BERT by ONNX Runtime's transformer optimizer
(fused attention, layer norm and GELU); the int8 file is that graph dynamically quantised
(int8 weights per output channel with AVX2's reduced range, activations quantised per
batch at run time). Per-tensor weights cost too much accuracy here (mean cosine to fp32
0.953 vs 0.992 per channel, on news chunks).

Cache: ``$RAG_CACHE`` or ``$XDG_CACHE_HOME/rag`` or ``~/.cache/rag``, in
``onnx/minilm-<package version>-<weights digest>/``; never inside site-packages. A folder
is written under a temporary name and renamed into place, under a file lock, so two
processes never see half a model. Exporting needs torch (it is there for building); using
the cached files needs only onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

FILES = {False: "model.onnx", True: "model-int8.onnx"}
EXPORT_FORMAT = 2  # bump when the export recipe changes: the cache folder name changes
NUM_HEADS, HIDDEN = 12, 384


def cache_root() -> Path:
    env = os.environ.get("RAG_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rag"


def _weights_digest(model_path: Path) -> str:
    """Digest of the weight file's name, size and modification time (cheap, no read)."""
    st = (model_path / "model.safetensors").stat()
    return hashlib.sha256(f"{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:12]


def export_dir() -> Path:
    from .embed import model_dir, model_version

    path = Path(model_dir())
    return cache_root() / "onnx" / (f"minilm-{model_version()}-{_weights_digest(path)}"
                                    f"-e{EXPORT_FORMAT}")


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

            root = str(Path(__file__).resolve().parents[1])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
            done = subprocess.run([sys.executable, "-m", "rag.onnx_model", str(folder)],
                                  capture_output=True, text=True, env=env)
            if done.returncode != 0 or not target.is_file():
                raise RuntimeError("exporting the model to ONNX failed:\n"
                                   + done.stderr[-2000:])
    return target


def _export(folder: Path) -> None:
    """Export fp32 + int8 into ``folder`` (atomically: a temporary folder renamed)."""
    import numpy as np
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel

    from .embed import model_dir

    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model = AutoModel.from_pretrained(model_dir(), attn_implementation="eager").eval()

        class Wrapped(torch.nn.Module):  # keyword arguments, one output
            def __init__(self, bert):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids).last_hidden_state

        # The reference, computed before exporting: tracing leaves transformers' global
        # state altered, so torch in this process is not trusted afterwards (hence the
        # export runs in a subprocess of its own, see onnx_path).
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(1000, 20000, (3, 40), generator=gen)
        mask = torch.ones_like(ids)
        mask[1, 30:] = 0
        with torch.no_grad():
            ref = model(input_ids=ids, attention_mask=mask,
                        token_type_ids=torch.zeros_like(ids)).last_hidden_state.numpy().copy()
        dummy = torch.ones((2, 16), dtype=torch.long)
        pad = torch.ones_like(dummy)
        pad[1, 10:] = 0  # a padded row, so the mask path is traced
        raw = tmp / "raw.onnx"
        axes = {0: "batch", 1: "tokens"}
        with torch.no_grad():
            torch.onnx.export(Wrapped(model), (dummy, pad, torch.zeros_like(dummy)),
                              str(raw), input_names=["input_ids", "attention_mask",
                                                     "token_type_ids"],
                              output_names=["last_hidden_state"],
                              dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                            "token_type_ids": axes,
                                            "last_hidden_state": axes},
                              opset_version=17, dynamo=False)
        opt = optimize_model(str(raw), model_type="bert", num_heads=NUM_HEADS,
                             hidden_size=HIDDEN, opt_level=1)
        opt.save_model_to_file(str(tmp / FILES[False]))
        raw.unlink()
        quantize_dynamic(str(tmp / FILES[False]), str(tmp / FILES[True]),
                         weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         extra_options={"DefaultTensorType": 1})  # 1 = TensorProto.FLOAT
        # Check the export against torch before publishing it.
        import onnxruntime as ort

        sess = ort.InferenceSession(str(tmp / FILES[False]), providers=["CPUExecutionProvider"])
        got = sess.run(["last_hidden_state"], {"input_ids": ids.numpy(),
                                               "attention_mask": mask.numpy(),
                                               "token_type_ids": np.zeros_like(ids.numpy())})[0]
        keep = mask.numpy().astype(bool)
        err = float(np.abs(ref[keep] - got[keep]).max())
        if err > 1e-3:
            raise RuntimeError(f"ONNX export differs from torch by {err:.2e}")
        (tmp / "export.json").write_text(json.dumps(
            {"max_abs_diff_vs_torch": err, "torch": torch.__version__,
             "onnxruntime": ort.__version__, "source": model_dir()}, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


if __name__ == "__main__":
    import sys

    _export(Path(sys.argv[1]))
