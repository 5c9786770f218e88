"""The one-off export of the bundled model to ONNX (run once per machine; needs torch).

``python -m rag.embedding.export FOLDER`` writes ``model.onnx`` (fp32) and
``model-int8.onnx`` into FOLDER atomically. The fp32 file is exported from the bundled
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

NUM_HEADS, HIDDEN = 12, 384


def export_bert(model, output, inputs, output_axes: dict, fp32_path: Path,
                int8_path: Path, num_heads: int, hidden: int) -> None:
    """The recipe above for any BERT-family torch ``model`` called with keyword
    ``input_ids``, ``attention_mask``, ``token_type_ids``: ``output(model(...))`` is the one
    output (named by ``output_axes``'s key), traced on ``inputs`` (the three tensors); fp32
    graph written to ``fp32_path``, int8 to ``int8_path``."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    class Wrapped(torch.nn.Module):  # keyword arguments, one output
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return output(self.m(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids))

    (name,) = output_axes
    raw = Path(fp32_path).with_name(Path(fp32_path).stem + ".raw.onnx")
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad():
        torch.onnx.export(Wrapped(model), tuple(inputs), str(raw),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=[name],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                        "token_type_ids": axes, **output_axes},
                          opset_version=17, dynamo=False)
    opt = optimize_model(str(raw), model_type="bert", num_heads=num_heads,
                         hidden_size=hidden, opt_level=1)
    opt.save_model_to_file(str(fp32_path))
    raw.unlink()
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8,
                     per_channel=True, reduce_range=True,
                     extra_options={"DefaultTensorType": 1})  # 1 = TensorProto.FLOAT


def _export(folder: Path) -> None:
    """Export fp32 + int8 into ``folder`` (atomically: a temporary folder renamed)."""
    import numpy as np
    import torch
    from transformers import AutoModel

    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model = AutoModel.from_pretrained(model_dir(), attn_implementation="eager").eval()
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
        export_bert(model, lambda out: out.last_hidden_state,
                    (dummy, pad, torch.zeros_like(dummy)),
                    {"last_hidden_state": {0: "batch", 1: "tokens"}},
                    tmp / FILES[False], tmp / FILES[True], NUM_HEADS, HIDDEN)
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


if __name__ == "__main__":
    import sys

    _export(Path(sys.argv[1]))
