"""The answer selector: a small cross-encoder that reads the question together with a
candidate sentence and gives the log-odds that the sentence answers the question.

It was trained with a little context after the sentence where the data had it (the
article title and the previous sentence, :func:`make_context`), and reads it when given
``contexts``; the answer pipeline passes none, which measured better on the development
set (see :func:`rag.answer.extract.add_selector_scores`).

The model ships in the package (``rag/models/selector/``: int8 ONNX, its tokenizer, a model
card and ``SELECTOR.json`` with the sha256 of each file, checked on load); it was trained
by ``python -m rag.training`` (see the model card). Only onnxruntime, tokenizers and numpy
run here: no torch import on the question path.

:meth:`Selector.logits` is a pure function of its inputs (deterministic for one
onnxruntime build), and each sentence's score depends on that sentence alone: every
(question, sentence) pair runs on its own, unpadded, because the int8 model quantises its
activations per run, so a padded batch made a sentence's score depend on its neighbours
(by up to 1.0 logit). The pairs run on a small pool of one-thread workers, longest first:
on the selector's inputs for 120 development questions (median 11 sentences) that took
23.9 ms against 36.4 ms for one padded batch on two threads. A :class:`Selector` may be
shared by threads (ONNX Runtime sessions are thread-safe for ``run``; the tokenizer is
used through ``encode_batch``, which does not mutate it).
"""

from __future__ import annotations

import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..index.store import file_sha256
from ..types import IndexMismatch

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "selector"
CONTEXT_WORDS = 40  # the end of the previous sentence, at most this many words
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")


class SelectorError(IndexMismatch):
    """The shipped selector files are missing or do not match their checksums."""


def pair_text(sentence: str, context: str) -> str:
    """The second segment the selector reads: the sentence, then its context."""
    return f"{sentence} [SEP] {context}" if context else sentence


def make_context(title: str | None, previous: str | None, max_words: int = CONTEXT_WORDS
                 ) -> str:
    """The article title and the end of the previous sentence, as the model was trained."""
    prev_words = (previous or "").split()
    if len(prev_words) > max_words:
        prev_words = prev_words[-max_words:]
    parts = [p for p in ((title or "").strip(), " ".join(prev_words)) if p]
    return " | ".join(parts)


def previous_sentence(text: str, start: int) -> str:
    """The sentence before offset ``start`` in the same paragraph ("" at a paragraph's
    start): the text back to the previous sentence end, cheap and without an index."""
    before = text[max(0, start - 600):start]
    if "\n\n" in before:
        before = before.rsplit("\n\n", 1)[1]
    before = before.strip()
    return _SENT_SPLIT.split(before)[-1] if before else ""


class Selector:
    """The shipped cross-encoder on ONNX Runtime (CPU)."""

    def __init__(self, folder: Path = MODEL_DIR, threads: int = 0, verify: bool = True):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        try:
            self.manifest = json.loads((folder / "SELECTOR.json").read_text())
            files = self.manifest["files"]
            if verify:
                for name, digest in files.items():
                    if file_sha256(folder / name) != digest:
                        raise SelectorError(f"the answer selector file {folder / name} does not "
                                            "match its checksum: reinstall the package")
        except (OSError, KeyError, ValueError) as e:
            raise SelectorError(f"the answer selector in {folder} is missing or damaged "
                                f"({e}): reinstall the package") from e
        # "-rows": scored a pair at a time (see the module docstring); answer parameters
        # fitted on padded batches name the version without it and are refused
        self.version = f"{self.manifest.get('name', 'selector')}-" \
                       f"{files['model-int8.onnx'][:12]}-rows"
        self.max_length = int(self.manifest.get("max_length", 128))
        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.enable_truncation(max_length=self.max_length, strategy="only_second")
        tok.no_padding()
        self._tok = tok  # as in training: the sentence is cut, never the question
        long_q = Tokenizer.from_file(str(folder / "tokenizer.json"))
        long_q.enable_truncation(max_length=self.max_length, strategy="longest_first")
        long_q.no_padding()
        self._tok_long = long_q  # a question too long to leave room for the sentence
        self.workers = threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rag-selector") \
            if self.workers > 1 else None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # parallel over pairs instead (see logits)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(folder / "model-int8.onnx"), sess_options=opts,
                                             providers=["CPUExecutionProvider"])

    def logits(self, question: str, sentences: list[str], contexts: list[str] | None = None
               ) -> np.ndarray:
        """Log-odds (unbounded; sigmoid gives the probability) that each sentence answers
        ``question``, one float per sentence, in order."""
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        contexts = contexts or [""] * len(sentences)
        pairs = [(question, pair_text(s, c)) for s, c in zip(sentences, contexts)]
        try:
            encs = self._tok.encode_batch(pairs)
        except Exception:  # tokenizers: "sequence to truncate too short" (a long question)
            encs = self._tok_long.encode_batch(pairs)
        order = sorted(range(len(encs)), key=lambda i: -len(encs[i].ids))  # longest first
        runs = (self._pool.map(self._run, [encs[i] for i in order]) if self._pool
                else map(self._run, [encs[i] for i in order]))
        out = np.zeros(len(encs), dtype=np.float32)
        out[order] = list(runs)
        return out

    def _run(self, enc) -> float:
        """The log-odds of one encoded pair (no padding)."""
        ids = np.asarray([enc.ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                 "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64)}
        return float(self._session.run(["logits"], feeds)[0][0, 0])


_cache: dict[tuple[str, int], Selector] = {}
_lock = threading.Lock()


def get_selector(threads: int = 0, folder: Path = MODEL_DIR) -> Selector:
    """The process-wide :class:`Selector` (loaded and checksummed once)."""
    key = (str(folder), threads)
    sel = _cache.get(key)
    if sel is None:
        with _lock:
            sel = _cache.get(key)
            if sel is None:
                sel = _cache[key] = Selector(folder, threads)
    return sel
