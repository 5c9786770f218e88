"""rag: answers questions about a folder of articles with verbatim, cited quotes.

    import rag
    report = rag.build(source="seeds", index_dir="index")   # BuildReport
    answer = rag.ask("How much did it cost to train R1?")   # Answer
    answer = rag.ask("What did Nvidia lose?", filters={"sources": ["BBC"],
                     "since": "2025-01-01"})                  # only those articles
    passages = rag.search("Nvidia share price", k=10)       # [Passage]
    article = rag.get_article(answer.article_id)            # Article
    with rag.open("index") as r:                            # one folder, config read once
        answer = r.ask("How much did it cost to train R1?", k=3)

The public face only; see docs/architecture.md for the layers and the two paths.
Importing this package is cheap: the model, FAISS and BM25 load on first use.
"""

from __future__ import annotations

import sys
import types as _types
from datetime import date
from pathlib import Path

from .config import Config
from .handle import Rag
from .handle import build as _build
from .types import (Answer, Article, ArticleNotFound, BuildError, BuildReport, Citation,
                    Explanation, Filters, IndexMismatch, IndexMissing, InvalidQuestion,
                    Passage, RagError, Skipped)

__all__ = ["ask", "build", "search", "get_article", "open", "Rag", "Answer", "Citation", "BuildReport",
           "Article", "Skipped", "Filters", "Passage", "Explanation", "Config", "RagError",
           "InvalidQuestion", "IndexMissing", "IndexMismatch", "BuildError",
           "ArticleNotFound"]
__version__ = "0.1.0"


def ask(question: str, k: int | None = None, index_dir: str | Path | None = None, *,
        config: Config | None = None, retrieval: str | None = None,
        filters: Filters | dict | None = None, as_of: date | str | None = None,
        dates: bool = True, model=None) -> Answer:
    """Answer ``question`` with a verbatim quote: see :func:`rag.answer.pipeline.ask`."""
    from .answer.pipeline import ask as _ask

    return _ask(question, k=k, index_dir=index_dir, config=config, retrieval=retrieval,
                model=model, filters=filters, as_of=as_of, dates=dates)


def search(query: str, k: int = 10, index_dir: str | Path | None = None, *,
           config: Config | None = None, retrieval: str | None = None,
           filters: Filters | dict | None = None,
           as_of: date | str | None = None) -> list[Passage]:
    """The ``k`` best passages, no answer chosen: see
    :func:`rag.answer.pipeline.search_passages`."""
    from .answer.pipeline import search_passages

    return search_passages(query, k=k, index_dir=index_dir, config=config,
                           retrieval=retrieval, filters=filters, as_of=as_of)


def get_article(article_id: str, index_dir: str | Path | None = None, *,
                config: Config | None = None) -> Article:
    """The indexed article with this id: see :func:`rag.answer.pipeline.get_article`."""
    from .answer.pipeline import get_article as _get

    return _get(article_id, index_dir=index_dir, config=config)


def open(index_dir: str | Path | None = None, *, config: Config | None = None,  # noqa: A001
         source: str | Path | None = None) -> Rag:
    """A handle on one index folder with ``ask``, ``search``, ``article``, ``build`` and
    ``close`` (:class:`rag.handle.Rag`): the configuration read once."""
    return Rag(index_dir, config=config, source=source)


def build(source: str | Path | None = None, index_dir: str | Path | None = None,
          rebuild: bool = False, *, shards: int | None = None, engine: str = "local",
          address: str | None = None, actors: int | None = None, **kwargs) -> BuildReport:
    """Build or update the index: see :func:`rag.handle.build` (one index, a sharded one
    with ``shards=N``, or embedded on Ray with ``engine="ray"``)."""
    return _build(source, index_dir, rebuild, shards=shards, engine=engine, address=address,
                  actors=actors, **kwargs)


class _Package(_types.ModuleType):
    """Keeps ``rag.ask`` and ``rag.build`` the functions even after the command-line
    modules ``rag.ask`` / ``rag.build`` are imported (Python would otherwise bind the
    submodules to these names)."""

    def __setattr__(self, name, value):
        if name in ("ask", "build") and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
