"""Ship a trained selector: int8 ONNX + tokenizer + checksums + model card, in the package.

    python -m rag.training.export build/selector      # after python -m rag.training

The ONNX graph maps ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64,
[batch, tokens]) to ``logits`` ([batch, 1], the log-odds that the sentence answers). It is
exported from the torch weights, graph-optimised for BERT by ONNX Runtime, then dynamically
quantised (int8 weights per output channel, reduced range for AVX2, as the embedder's
export). The export is checked against torch before it is written. ``SELECTOR.json``
records the sha256 of every shipped file; the runtime refuses files that do not match.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from rag.embedding.export import export_bert
from rag.index.store import file_sha256 as sha256

SHIP_DIR = Path(__file__).resolve().parents[1] / "models" / "selector"
FILES = ("model-int8.onnx", "tokenizer.json")


def export_onnx(hf_dir: Path, out: Path) -> dict:
    """Write ``out/model-int8.onnx`` and ``out/tokenizer.json``; return check figures."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        str(hf_dir), attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    cfg = model.config

    sample = tok(["who founded the company?", "when did it open?", "how much did it cost?"],
                 ["It was founded by Ada Lovelace in 1843 [SEP] History | Earlier text.",
                  "The museum opened in 1901.", "The bridge cost $5 million to build."],
                 padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = model(**sample).logits.numpy().copy()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        out.mkdir(parents=True, exist_ok=True)
        export_bert(model, lambda o: o.logits, (sample["input_ids"], sample["attention_mask"],
                                                sample["token_type_ids"]),
                    {"logits": {0: "batch"}}, fp32, out / "model-int8.onnx",
                    cfg.num_attention_heads, cfg.hidden_size)
        feeds = {k: sample[k].numpy() for k in ("input_ids", "attention_mask", "token_type_ids")}
        got32 = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(
            ["logits"], feeds)[0]
    got8 = ort.InferenceSession(str(out / "model-int8.onnx"),
                                providers=["CPUExecutionProvider"]).run(["logits"], feeds)[0]
    err32 = float(np.abs(ref - got32).max())
    if err32 > 1e-3:
        raise RuntimeError(f"ONNX export differs from torch by {err32:.2e}")
    shutil.copy(Path(hf_dir) / "tokenizer.json", out / "tokenizer.json")
    return {"max_abs_logit_diff_fp32_vs_torch": err32,
            "max_abs_logit_diff_int8_vs_torch": float(np.abs(ref - got8).max()),
            "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
            "onnxruntime": ort.__version__, "torch": torch.__version__}


def write_manifest(folder: Path, info: dict) -> dict:
    manifest = {**info, "files": {name: sha256(folder / name) for name in FILES}}
    (folder / "SELECTOR.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def ship(train_dir: Path, report: dict | None = None, dest: Path = SHIP_DIR) -> dict:
    """Export ``train_dir/hf`` into ``dest`` (the package's shipped selector)."""
    train_dir = Path(train_dir)
    if report is None:
        report = json.loads((train_dir / "train.json").read_text())
    check = export_onnx(train_dir / "hf", dest)
    settings = report.get("settings", {})
    info = {"name": "rag-answer-selector", "version": report.get("version", 1),
            "max_length": settings.get("max_len", 128), "check": check,
            "training": {k: report.get(k) for k in (
                "base_model", "train_questions", "validation_questions", "pairs", "steps",
                "minutes", "device", "threads", "torch", "loss_first_50", "loss_last_50",
                "validation_top1", "validation", "data", "learning_curve",
                "from_checkpoint") if k in report} | {"settings": settings}}
    manifest = write_manifest(dest, info)
    print(json.dumps(manifest, indent=1))
    return manifest


def hf_from_checkpoint(checkpoint: Path, train_dir: Path, layers: int = 4) -> dict:
    """Write ``train_dir/hf`` (and a ``train.json``) from a training checkpoint of
    :func:`rag.training.train.train_steps` (``--checkpoint``): a run stopped before its
    last step can be exported and measured. Loaded with ``weights_only`` (no pickle code)."""
    import torch

    from .model import load_model

    state = torch.load(checkpoint, weights_only=True)
    tok, model = load_model(layers)
    model.load_state_dict(state["model"])
    train_dir = Path(train_dir)
    model.save_pretrained(train_dir / "hf")
    tok.save_pretrained(train_dir / "hf")
    losses = list(state["losses"])
    report = {"steps": int(state["step"]), "from_checkpoint": str(checkpoint),
              "loss_first_50": round(sum(losses[:50]) / max(1, len(losses[:50])), 4),
              "loss_last_50": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4),
              "learning_curve": json.loads(state["curve"])}
    (train_dir / "train.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    import argparse
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(prog="python -m rag.training.export",
                                description=__doc__.split("\n")[0])
    p.add_argument("train_dir", type=Path, help="the --out folder of python -m rag.training")
    p.add_argument("--checkpoint", type=Path, help="first write train_dir/hf from this "
                   "training checkpoint (a run stopped early)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dest", type=Path, default=SHIP_DIR,
                   help="where to write the int8 ONNX files (default: the package)")
    a = p.parse_args()
    if a.checkpoint:
        hf_from_checkpoint(a.checkpoint, a.train_dir, a.layers)
    ship(a.train_dir, dest=a.dest)
