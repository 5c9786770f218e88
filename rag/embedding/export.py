"""The one-off export of a model to ONNX (run once per machine and model; needs torch).

``python -m rag.embedding.export FOLDER`` writes the bundled model's ``model.onnx`` (fp32)
and ``model-int8.onnx`` into FOLDER atomically; ``python -m rag.embedding.export --folder
SOURCE FOLDER`` does the same for the transformer of a local sentence-transformers model
(:mod:`rag.embedding.folder`). The fp32 file is exported from the bundled
weights with ``torch.onnx.export``, graph-optimised for BERT by ONNX Runtime's
transformer optimizer (fused attention, layer norm and GELU); the int8 file is that graph
dynamically quantised (int8 weights per output channel with AVX2's reduced range,
activations quantised per batch at run time). Per-tensor weights cost too much accuracy
here (mean cosine to fp32 0.953 vs 0.992 per channel, on news chunks). The export is
checked against torch before it is published. :func:`rag.embedding.onnx_runtime.onnx_path` runs this
in a subprocess of its own (tracing leaves transformers' global state altered); nothing
at query time imports this module.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .weights import FILES, model_dir


BERT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export_bert(model, output, inputs, output_axes: dict, fp32_path: Path,
                int8_path: Path, num_heads: int, hidden: int,
                names: tuple[str, ...] = BERT_INPUTS, unfused_ok: bool = False) -> None:
    """The recipe above for any BERT-family torch ``model`` called with the keyword
    arguments ``names`` (by default ``input_ids``, ``attention_mask``, ``token_type_ids``):
    ``output(model(...))`` is the one output (named by ``output_axes``'s key), traced on
    ``inputs`` (one tensor per name); fp32 graph written to ``fp32_path``, int8 to
    ``int8_path``. With ``unfused_ok``, a graph the BERT optimizer cannot fuse (another
    architecture) is kept unfused instead of failing."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    class Wrapped(torch.nn.Module):  # keyword arguments, one output
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *args):
            return output(self.m(**dict(zip(names, args))))

    (name,) = output_axes
    raw = Path(fp32_path).with_name(Path(fp32_path).stem + ".raw.onnx")
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        torch.onnx.export(Wrapped(model), tuple(inputs), str(raw),
                          input_names=list(names), output_names=[name],
                          dynamic_axes={**{n: axes for n in names}, **output_axes},
                          opset_version=17, dynamo=False)
    try:
        opt = optimize_model(str(raw), model_type="bert", num_heads=num_heads,
                             hidden_size=hidden, opt_level=1)
        opt.save_model_to_file(str(fp32_path))
        raw.unlink()
    except Exception:  # noqa: BLE001 - not BERT-shaped: the plain traced graph
        if not unfused_ok:
            raise
        os.replace(raw, fp32_path)
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8,
                     per_channel=True, reduce_range=True,
                     extra_options={"DefaultTensorType": 1})  # 1 = TensorProto.FLOAT


def _export(folder: Path) -> None:
    """The bundled model's export into ``folder``: :func:`_export_folder` of its weights
    (atomically: a temporary folder renamed)."""
    _export_folder(Path(model_dir()), folder)


def _export_folder(source: Path, folder: Path) -> None:
    """Export the transformer of a sentence-transformers model folder (``source``: the
    folder holding its ``config.json`` and weights) into ``folder``, fp32 + int8, checked
    against torch first (max abs difference of the token vectors at most 1e-3; the int8
    file's mean cosine to torch's mean-pooled vectors is recorded in ``export.json``).
    Atomic like :func:`_export`."""
    import inspect

    import numpy as np
    import torch
    from transformers import AutoModel

    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model = AutoModel.from_pretrained(str(source), attn_implementation="eager",
                                          local_files_only=True).eval()
        accepted = inspect.signature(model.forward).parameters
        names = tuple(n for n in BERT_INPUTS if n in accepted)
        cfg = model.config
        # The reference, computed before exporting: tracing leaves transformers' global
        # state altered, so torch in this process is not trusted afterwards (hence the
        # export runs in a subprocess of its own, see onnx_runtime.export_once).
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(5, max(6, cfg.vocab_size), (3, 40), generator=gen)
        mask = torch.ones_like(ids)
        mask[1, 30:] = 0

        def feed(i, m):
            return {"input_ids": i, "attention_mask": m,
                    "token_type_ids": torch.zeros_like(i)}

        with torch.no_grad():
            ref = model(**{n: v for n, v in feed(ids, mask).items() if n in names}
                        ).last_hidden_state.numpy().copy()
        dummy = torch.ones((2, 16), dtype=torch.long)
        pad = torch.ones_like(dummy)
        pad[1, 10:] = 0  # a padded row, so the mask path is traced
        sample = feed(dummy, pad)
        export_bert(model, lambda out: out.last_hidden_state, [sample[n] for n in names],
                    {"last_hidden_state": {0: "batch", 1: "tokens"}},
                    tmp / FILES[False], tmp / FILES[True], cfg.num_attention_heads,
                    cfg.hidden_size, names=names, unfused_ok=True)
        import onnxruntime as ort

        keep = mask.numpy().astype(bool)
        got = {}
        for quantized in (False, True):
            sess = ort.InferenceSession(str(tmp / FILES[quantized]),
                                        providers=["CPUExecutionProvider"])
            inputs = {n: v.numpy() for n, v in feed(ids, mask).items() if n in names}
            got[quantized] = sess.run(["last_hidden_state"], inputs)[0]
        err = float(np.abs(ref[keep] - got[False][keep]).max())
        if err > 1e-3:
            raise RuntimeError(f"ONNX export differs from torch by {err:.2e}")

        def pooled(t):
            v = (t * keep[..., None]).sum(1) / keep.sum(1, keepdims=True)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        cos = float((pooled(ref) * pooled(got[True])).sum(1).mean())
        (tmp / "export.json").write_text(json.dumps(
            {"max_abs_diff_vs_torch": err, "int8_mean_cosine_vs_torch": round(cos, 5),
             "inputs": list(names), "torch": torch.__version__,
             "onnxruntime": ort.__version__, "source": str(source)}, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import sys

    if sys.argv[1] == "--folder":  # python -m rag.embedding.export --folder SOURCE DEST
        _export_folder(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        _export(Path(sys.argv[1]))
