"""``ask()``: question -> :class:`~rag.types.Answer`, gluing retrieve and extract.

The index comes from :func:`rag.index.live.load_index` (the published version, cached per
process). Each call works on one loaded version from start to end, so an answer never
mixes two versions. ``ask`` is safe to call from several threads.
"""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path

from ..config import RETRIEVAL_HINT, RETRIEVAL_MODES, Config
from ..embedding.model import get_embedder
from ..index.live import load_index
from ..types import NO_ANSWER, Answer, InvalidQuestion
from .extract import make_citations, score_sentences
from .params import AnswerModel, abstain_threshold, answer_model
from .search import search
from .selector import SelectorError, get_selector


def clean_question(question: object, max_chars: int) -> tuple[str, str]:
    """The question made safe to process, and a note for the user ("" if none).

    Control characters (NUL included) become spaces, runs of white space collapse, and a
    question longer than ``max_chars`` is cut (the model reads 256 word pieces anyway).
    Raises :class:`InvalidQuestion` for a non-string or an empty question.
    """
    if not isinstance(question, str):
        raise InvalidQuestion(f"the question must be a string, not {type(question).__name__}")
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs") else ch
                   for ch in question[: max_chars * 4])
    text = " ".join(text.split())
    if not any(ch.isalnum() for ch in text):
        raise InvalidQuestion("please type a question (it has no letters or digits)"
                              if text else "please type a question (it is empty)")
    note = ""
    if len(text) > max_chars:
        text, note = text[:max_chars], f"the question was cut to its first {max_chars} characters"
    return text, note


def ask(question: str, k: int | None = None, index_dir: str | Path | None = None, *,
        config: Config | None = None, retrieval: str | None = None,
        model: AnswerModel | None = None) -> Answer:
    """Answer ``question`` with a verbatim quote from the indexed articles.

    ``k`` citations at most (default ``config.k``). Raises :class:`InvalidQuestion` for
    an unusable question or ``k``, :class:`IndexMissing` when nothing is built and
    :class:`IndexMismatch` when the index needs a rebuild. ``model``: the fitted answer
    model (default: the shipped one, :func:`rag.answer.params.answer_model`).
    """
    cfg = config or Config.from_env()
    model = model or answer_model(cfg.selector)
    if k is None:
        k = cfg.k
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= cfg.max_k:
        raise InvalidQuestion(f"k must be a whole number from 1 to {cfg.max_k}, got {k!r}")
    mode = retrieval or cfg.retrieval
    if mode not in RETRIEVAL_MODES:
        raise InvalidQuestion(RETRIEVAL_HINT)
    text, note = clean_question(question, cfg.max_question_chars)
    t0 = time.perf_counter()
    index = load_index(Path(index_dir or cfg.index_dir), cfg)
    t1 = time.perf_counter()
    embedder = get_embedder(cfg)
    qvec = embedder.embed_queries([text])[0]
    t2 = time.perf_counter()
    hits = search(index, text, qvec, max(cfg.candidates, k), mode)
    t3 = time.perf_counter()
    selector = None
    if cfg.selector and model.rescore:
        selector = get_selector(cfg.threads)
        if model.selector != selector.version:
            raise SelectorError(f"the answer parameters were fitted with {model.selector}, "
                                f"but {selector.version} is installed: refit them "
                                "(python -m rag.eval ... --selector --fit --save-params)")
    candidates = score_sentences(index, text, qvec, hits, model, selector, k)
    timings = {"load": (t1 - t0) * 1e3, "embed": (t2 - t1) * 1e3, "search": (t3 - t2) * 1e3}
    if not candidates:
        timings["extract"] = (time.perf_counter() - t3) * 1e3
        return Answer(question=text, text="", abstained=True, score=0.0, message=NO_ANSWER,
                      timings_ms=timings)
    best = candidates[0]
    score = model.confidence(best.features)
    abstained = score < abstain_threshold(cfg, model)
    citations = tuple(make_citations(index, candidates, k, not abstained, model))
    timings["extract"] = (time.perf_counter() - t3) * 1e3
    first = citations[0]
    return Answer(question=text, text="" if abstained else first.quote, abstained=abstained,
                  score=round(score, 4), citations=citations,
                  article_id=None if abstained else first.article_id,
                  start=None if abstained else first.start,
                  end=None if abstained else first.end,
                  message=NO_ANSWER if abstained else note, timings_ms=timings)
