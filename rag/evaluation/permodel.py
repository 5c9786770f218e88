"""Answer parameters for another embedding model (issue 27, item 2; ``python -m rag.fit``):
the fit of :mod:`rag.evaluation.fit` on the development set, stored beside an index."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from .fit import fit_answer_model
from .run import VENDORED_EVAL, holdout_articles, load_data, prepare_index


def fit_for_model(model: str, index_dir: Path, out: Path | None = None,
                  data_dir: Path | None = None, limit: int | None = None,
                  cache: Path | None = None, quiet: bool = False) -> Path:
    """Fit the answer model (selection weights, calibration, threshold; the fast path)
    for the embedding model ``model`` on the development set ``data_dir`` (default: the
    vendored ``data/eval``), with 8 articles held out for off-topic questions, and
    write it to ``out`` (default: ``index_dir/answer_model.json``, where asking finds
    it: :func:`rag.answer.params.fitted_for`). ``limit``: about that many questions.
    Returns the file written."""
    import datetime
    import tempfile

    from ..answer.params import INDEX_PARAMS, answer_model
    from ..config import Config
    from ..embedding.model import get_embedder

    data_dir = Path(data_dir or VENDORED_EVAL)
    cfg = Config.from_env(model=model, selector=False)
    model_id = get_embedder(cfg).model_id
    articles, questions = load_data(data_dir)
    if limit and limit < len(questions):
        step = len(questions) / limit
        questions = [questions[int(i * step)] for i in range(limit)]
    held = holdout_articles(articles, questions, 8)
    with tempfile.TemporaryDirectory(prefix="rag-fit-") as tmp:
        where = Path(cache or tmp)
        full = prepare_index(where, articles, None, cfg, quiet=quiet)
        off = prepare_index(where, articles, None, cfg, exclude=held, name="holdout-8",
                            seed_from=full.index_dir, quiet=quiet) if held else None
        with contextlib.redirect_stdout(io.StringIO()) if quiet else \
                contextlib.nullcontext():  # --quiet: no comparison tables, no bars
            fitted = fit_answer_model(questions, full, off, held, cfg.retrieval, None,
                                      answer_model(False), progress=not quiet)
    fitted = fitted.replace(provenance={
        "model": model_id, "fitted_on": f"{data_dir.name}: {len(questions)} questions, "
        f"{len(held)} articles held out for off-topic ones",
        "command": f"python -m rag.fit --model {model}", "date":
        datetime.date.today().isoformat()})
    path = Path(out) if out is not None else Path(index_dir) / INDEX_PARAMS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(f".{path.name}.tmp")
    fitted.save(tmp_path)
    tmp_path.replace(path)  # asking never reads half a file
    return path
