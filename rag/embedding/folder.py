"""Any local sentence-transformers model (issue 27, item 1): ``RAG_MODEL=/path/to/folder``.

A folder that ``SentenceTransformer(path)`` loads (a model you fine-tuned, a bigger
English one, a multilingual one) is used with its own pooling, normalisation, maximum
length and prompts (``config_sentence_transformers.json``: a ``query`` prompt for
questions, a ``document`` or ``passage`` prompt for passages). Nothing is downloaded
(``local_files_only``).

Backends, as for the bundled model (``Config.backend``, :func:`folder_embedder`):

* ``"onnx-int8"`` (the default) and ``"onnx"``: the folder's transformer is exported once
  to ONNX, fp32 and int8 (:mod:`rag.embedding.export`, torch needed that once), into
  ``<cache>/onnx/st-<folder digest>-e<EXPORT_FORMAT>/``: keyed by the folder's content, so
  a changed folder is exported again and an unchanged one never. The query path then
  needs tokenizers + onnxruntime only. Each text runs on its own, unpadded (as MiniLM's
  rows: a vector depends on its text alone). This covers the usual layout, a Transformer
  then a mean or CLS Pooling (then Normalize); any other layout (a Dense projection,
  max pooling, lower-casing in the module, no ``tokenizer.json``) or a failed export
  falls back to torch, saying why once on stderr.
* ``"torch"``: sentence-transformers itself.

``model_id`` is ``st:<folder name>:<sha256 of the folder's files, 16 hex>`` (fp32 ONNX
gives torch's vectors within ~1e-6, so the same id); the int8 backend appends
``int8/e<EXPORT_FORMAT>/rows``. An index built with the folder records it, and a changed
folder (new weights) or another backend's vectors are refused with the rebuild hint, as
another model is.

Passages are embedded once, as MiniLM's are: one forward pass gives the passage vector
(the model's own pooling, then unit length) and its token vectors, from which each
sentence's vector is the mean of its tokens (late chunking), so answer selection needs
no second pass. Thread safety: the torch model's forward passes are serialised by a lock;
ONNX sessions may be run from several threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .pooling import Span
from .pooling import normalise as _normalise
from .pooling import pool_spans

QUERY_PROMPTS = ("query",)
PASSAGE_PROMPTS = ("document", "passage", "corpus")


def _prompts(prompts: dict) -> tuple[str, str]:
    """(query prompt, passage prompt) of a model's named prompts ("" when none)."""
    def first(names: tuple[str, ...]) -> str:
        return next((prompts[k] for k in names if prompts.get(k)), "")

    return first(QUERY_PROMPTS), first(PASSAGE_PROMPTS)


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
    """A sentence-transformers model from a local folder, run by torch (see the module
    docstring)."""

    backend = "torch"

    def __init__(self, path: str | Path, threads: int = 0, batch_size: int = 32,
                 digest: str | None = None) -> None:
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
        dim = getattr(self._st, "get_embedding_dimension", None) or \
            self._st.get_sentence_embedding_dimension  # (renamed in sentence-transformers 6)
        self.dim = int(dim())
        self.max_seq_length = int(self._st.max_seq_length)
        self.max_tokens = self.max_seq_length - 2
        self.model_id = f"st:{self.path.name}:{(digest or folder_digest(self.path))[:16]}"
        self.query_prompt, self.passage_prompt = _prompts(
            dict(getattr(self._st, "prompts", None) or {}))
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
        offsets = [tuple(o) for o in enc["offset_mapping"][:len(tokens)]]
        return pool_spans(tokens, offsets, len(offsets),
                          [(a + shift, b + shift) for a, b in spans], fallback)


@dataclass(frozen=True)
class Layout:
    """What the ONNX path needs to know of a model folder, read from its JSON files."""

    transformer: Path  # the folder of the transformer's config.json, weights, tokenizer
    dim: int
    max_seq_length: int
    pooling: str  # "mean" or "cls"
    query_prompt: str
    passage_prompt: str


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def read_layout(path: Path) -> Layout | str:
    """The folder's :class:`Layout`, or why the ONNX path cannot run it (a short reason;
    the torch path then does)."""
    try:
        modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds[:2] != ["Transformer", "Pooling"] or kinds[2:] not in ([], ["Normalize"]):
            return f"its modules are {' + '.join(kinds)}, not Transformer + Pooling"
        word = path / modules[0].get("path", "")
        bert = _json(word / "sentence_bert_config.json")
        pool = _json(path / modules[1]["path"] / "config.json")
        conf = _json(word / "config.json")
        tok = _json(word / "tokenizer_config.json")
        # the width under its usual names (BERT/RoBERTa/XLM-R, DistilBERT, T5/BART)
        hidden = int(next(conf[k] for k in ("hidden_size", "dim", "d_model") if k in conf))
        prompts = _json(path / "config_sentence_transformers.json").get("prompts") or {}
    except (OSError, ValueError, KeyError, TypeError, IndexError, StopIteration) as exc:
        return f"its module files are not readable ({type(exc).__name__}: {exc})"
    modes = pool.get("pooling_mode") or [  # sentence-transformers 6, or the older keys
        k[len("pooling_mode_"):] for k, v in pool.items()
        if k.startswith("pooling_mode_") and v is True]
    modes = [modes] if isinstance(modes, str) else list(modes)
    mode = {"mean": "mean", "mean_tokens": "mean", "cls": "cls", "cls_token": "cls"}.get(
        modes[0]) if len(modes) == 1 else None
    if mode is None:
        return f"its pooling is {', '.join(map(str, modes)) or 'unknown'}, not mean or CLS"
    if pool.get("include_prompt", True) is False:
        return "its pooling leaves the prompt out"
    if bert.get("do_lower_case"):
        return "its transformer lower-cases text itself"
    # sentence-transformers' rule: the module's max_seq_length, else the tokenizer's
    # model_max_length (a huge one means unset), else the position embeddings
    limits = (bert.get("max_seq_length"), tok.get("model_max_length"),
              conf.get("max_position_embeddings"))
    length = next((v for v in limits if isinstance(v, int) and 0 < v < 100_000), None)
    if length is None:
        return "it states no maximum sequence length"
    if not (word / "tokenizer.json").is_file():
        return "it has no tokenizer.json (a fast tokenizer)"
    dim = pool.get("embedding_dimension", pool.get("word_embedding_dimension", hidden))
    if int(dim) != hidden:
        return "its pooling dimension is not the transformer's"
    return Layout(word, hidden, length, mode, *_prompts(prompts))


class OnnxFolderEmbedder:
    """A sentence-transformers model folder on ONNX Runtime (see the module docstring).
    Construct through :func:`folder_embedder`."""

    def __init__(self, path: Path, layout: Layout, digest: str, quantized: bool,
                 threads: int = 0, batch_size: int = 32) -> None:
        from tokenizers import Tokenizer

        from .onnx_runtime import export_once, onnx_session
        from .weights import EXPORT_FORMAT, FILES
        from ..config import cache_root

        self.path, self.layout = path, layout
        self.backend = "onnx-int8" if quantized else "onnx"
        self.dim, self.max_seq_length = layout.dim, layout.max_seq_length
        self.query_prompt, self.passage_prompt = layout.query_prompt, layout.passage_prompt
        self.batch_size = batch_size
        self.threads = threads or min(os.cpu_count() or 1, 8)
        self.model_id = f"st:{path.name}:{digest[:16]}" + (
            f" int8/e{EXPORT_FORMAT}/rows" if quantized else "")
        self._counter = Tokenizer.from_file(str(layout.transformer / "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._tok = Tokenizer.from_file(str(layout.transformer / "tokenizer.json"))
        self._tok.enable_truncation(max_length=self.max_seq_length)
        self._tok.no_padding()
        self.max_tokens = self.max_seq_length - self._tok.num_special_tokens_to_add(False)
        cache = cache_root() / "onnx" / f"st-{digest[:16]}-e{EXPORT_FORMAT}"
        if not (cache / FILES[quantized]).is_file():  # the one wait, said before it starts
            print(f"rag: exporting the model in {path} to ONNX once (fp32 and int8, "
                  f"checked against torch; cached in {cache})", file=sys.stderr)
        model = export_once(cache, cache / FILES[quantized],
                            ["--folder", str(layout.transformer), str(cache)])
        self._session = onnx_session(quantized, 1, path=model)
        names = {i.name for i in self._session.get_inputs()}
        self._inputs = tuple(n for n in ("input_ids", "attention_mask", "token_type_ids")
                             if n in names)

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` without special tokens."""
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def _encode(self, texts: list[str], prompt: str, spans, progress=None):
        from .onnx_runtime import run_rows

        n = len(texts)
        vecs = np.zeros((n, self.dim), dtype=np.float32)
        out: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * n
        if n == 0:
            return vecs, out
        encodings = self._tok.encode_batch([prompt + t for t in texts])
        shift = len(prompt)
        for i, tokens in run_rows(self._session, encodings, self._inputs, self.threads):
            pooled = tokens.mean(0) if self.layout.pooling == "mean" else tokens[0]
            vecs[i] = _normalise(pooled[None])[0]
            if spans is not None:
                e = encodings[i]
                out[i] = pool_spans(tokens, e.offsets, len(e.ids),
                                    [(a + shift, b + shift) for a, b in spans[i]], vecs[i])
            if progress:
                progress(1)
        return vecs, out

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors (n, dim) float32, with the model's query prompt."""
        return self._encode(list(texts), self.query_prompt, None)[0]

    def embed_passages(self, texts: Sequence[str], spans: Sequence[Sequence[Span]],
                       progress: Callable[[int], None] | None = None
                       ) -> tuple[np.ndarray, list[np.ndarray]]:
        """(passage vectors (n, dim), per passage its sentences' vectors, late-chunked),
        with the model's passage prompt; spans are character offsets into each passage."""
        return self._encode(list(texts), self.passage_prompt, spans, progress)


def folder_embedder(path: str | Path, threads: int = 0, batch_size: int = 32,
                    backend: str = "onnx-int8"):
    """The embedder of a model folder on ``backend`` (see the module docstring): ONNX
    where the folder's layout allows and onnxruntime is installed, else torch (saying
    why on stderr)."""
    root = Path(path).expanduser().resolve()
    digest = folder_digest(root)
    if backend != "torch":
        from importlib.util import find_spec

        layout = read_layout(root) if find_spec("onnxruntime") else "onnxruntime is missing"
        if isinstance(layout, Layout):
            try:
                return OnnxFolderEmbedder(root, layout, digest, backend == "onnx-int8",
                                          threads, batch_size)
            except Exception as exc:  # noqa: BLE001 - any export or session failure
                why = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                layout = f"its ONNX export failed ({why})"
        print(f"rag: the model in {root} runs on torch, not {backend}: {layout}",
              file=sys.stderr)
    return FolderEmbedder(root, threads, batch_size, digest=digest)
