"""Any local sentence-transformers model (issue 27, item 1): ``RAG_MODEL=/path/to/folder``.

A folder that ``SentenceTransformer(path)`` loads (a model you fine-tuned, a bigger
English one, a multilingual one) is used with its own pooling, normalisation, maximum
length and prompts (``config_sentence_transformers.json``: a ``query`` prompt for
questions, a ``document`` or ``passage`` prompt for passages). Nothing is downloaded
(``local_files_only``). Torch runs it; the bundled MiniLM keeps its ONNX path.

``model_id`` is ``st:<folder name>:<sha256 of the folder's files, 16 hex>``: an index
built with the folder records it, and a changed folder (new weights) is refused with
the rebuild hint, as another model is.

Passages are embedded once, as MiniLM's are: one forward pass gives the passage vector
(the model's own pooling, then unit length) and its token vectors, from which each
sentence's vector is the mean of its tokens (late chunking), so answer selection needs
no second pass. Thread safety: forward passes are serialised by a lock.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Span = tuple[int, int]  # (as rag.embedding.model's; this module must not import it)


def _normalise(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(norms, 1e-12)).astype(np.float32)

QUERY_PROMPTS = ("query",)
PASSAGE_PROMPTS = ("document", "passage", "corpus")


def folder_digest(path: Path) -> str:
    """sha256 over every file of the model folder (relative name and bytes, sorted;
    hidden files skipped): the model's identity."""
    h = hashlib.sha256()
    root = Path(path)
    for f in sorted(p for p in root.rglob("*") if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(root).parts)):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def is_model_folder(name: str) -> bool:
    """Whether ``name`` names a folder that looks like a sentence-transformers model."""
    p = Path(name).expanduser()
    return p.is_dir() and ((p / "modules.json").is_file() or (p / "config.json").is_file())


class FolderEmbedder:
    """A sentence-transformers model from a local folder (see the module docstring)."""

    def __init__(self, path: str | Path, threads: int = 0, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        from ..types import RagError

        self.path = Path(path).expanduser().resolve()
        try:
            self._st = SentenceTransformer(str(self.path), device="cpu",
                                           local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any load failure is the user's folder
            raise RagError(f"cannot load the sentence-transformers model in {self.path} "
                           f"({type(exc).__name__}: {exc})") from exc
        self._st.eval()
        torch.set_num_threads(threads or min(os.cpu_count() or 1, 8))
        self._torch = torch
        self.batch_size = batch_size
        self.dim = int(self._st.get_sentence_embedding_dimension())
        self.max_seq_length = int(self._st.max_seq_length)
        self.max_tokens = self.max_seq_length - 2
        self.model_id = f"st:{self.path.name}:{folder_digest(self.path)[:16]}"
        prompts = dict(getattr(self._st, "prompts", None) or {})
        self.query_prompt = next((prompts[k] for k in QUERY_PROMPTS if prompts.get(k)), "")
        self.passage_prompt = next((prompts[k] for k in PASSAGE_PROMPTS if prompts.get(k)),
                                   "")
        self._tok = self._st.tokenizer
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` without special tokens."""
        return len(self._tok(text, add_special_tokens=False)["input_ids"])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (n, dim) float32, with the model's query prompt."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with self._lock:
            vecs = self._st.encode(list(texts), prompt=self.query_prompt or None,
                                   batch_size=self.batch_size, convert_to_numpy=True,
                                   show_progress_bar=False)
        return _normalise(np.asarray(vecs, dtype=np.float32))

    def embed_passages(self, texts: Sequence[str], spans: Sequence[Sequence[Span]],
                       progress: Callable[[int], None] | None = None
                       ) -> tuple[np.ndarray, list[np.ndarray]]:
        """(passage vectors (n, dim), per passage its sentences' vectors), with the
        model's passage prompt; spans are character offsets into each passage."""
        n = len(texts)
        vecs = np.zeros((n, self.dim), dtype=np.float32)
        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * n
        prompt = self.passage_prompt
        for lo in range(0, n, self.batch_size):
            batch = list(texts[lo:lo + self.batch_size])
            with self._lock:
                got = self._st.encode(batch, prompt=prompt or None, output_value=None,
                                      batch_size=self.batch_size, show_progress_bar=False)
            for j, item in enumerate(got):
                i = lo + j
                pooled = item["sentence_embedding"].float().numpy()
                vecs[i] = _normalise(pooled[None])[0]
                tokens = item["token_embeddings"].float().numpy()
                if tokens.shape[-1] == self.dim:
                    out[i] = self._pool_spans(prompt + texts[i], len(prompt), tokens,
                                              spans[i], vecs[i])
                elif len(spans[i]):  # a projection after pooling: embed each sentence
                    out[i] = self._sentences(texts[i], spans[i])
            if progress:
                progress(len(batch))
        return vecs, out

    def _sentences(self, text: str, spans: Sequence[Span]) -> np.ndarray:
        with self._lock:
            got = self._st.encode([text[a:b] for a, b in spans],
                                  prompt=self.passage_prompt or None,
                                  batch_size=self.batch_size, convert_to_numpy=True,
                                  show_progress_bar=False)
        return _normalise(np.asarray(got, dtype=np.float32))

    def _pool_spans(self, text: str, shift: int, tokens: np.ndarray,
                    spans: Sequence[Span], fallback: np.ndarray) -> np.ndarray:
        """Mean of the token vectors inside each span (offsets of ``text``, which starts
        with the ``shift`` characters of the prompt); a span with no token gets
        ``fallback``."""
        enc = self._tok(text, return_offsets_mapping=True, truncation=True,
                        max_length=self.max_seq_length)
        offsets = np.asarray(enc["offset_mapping"][:len(tokens)], dtype=np.int64).reshape(-1, 2)
        real = offsets[:, 1] > offsets[:, 0]
        res = np.empty((len(spans), self.dim), dtype=np.float32)
        for k, (a, b) in enumerate(spans):
            sel = real & (offsets[:, 0] >= a + shift) & (offsets[:, 1] <= b + shift)
            res[k] = tokens[:len(offsets)][sel].mean(0) if sel.any() else fallback
        return _normalise(res)
