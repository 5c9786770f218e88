"""Vector arithmetic shared by the embedders (numpy only; pure functions, thread-safe)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Span = tuple[int, int]  # character offsets [start, end)


def normalise(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), float32."""
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)


def pool_spans(tokens: np.ndarray, offsets, length: int, spans: Sequence[Span],
               fallback: np.ndarray) -> np.ndarray:
    """Unit mean of the token vectors whose characters lie inside each span ("late
    chunking"; special tokens, whose offsets are empty, excluded); a span with no token
    (cut off by truncation) gets ``fallback``. ``offsets`` are the tokens' character
    offsets, ``length`` how many of ``tokens`` are real."""
    out = np.empty((len(spans), tokens.shape[-1]), dtype=np.float32)
    starts = np.array([o[0] for o in offsets[:length]])
    ends = np.array([o[1] for o in offsets[:length]])
    real = ends > starts  # [CLS]/[SEP] have (0, 0)
    for j, (a, b) in enumerate(spans):
        sel = real & (starts >= a) & (ends <= b)
        out[j] = tokens[:length][sel].mean(0) if sel.any() else fallback
    return normalise(out)
