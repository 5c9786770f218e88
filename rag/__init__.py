"""rag: answers questions about a folder of articles with verbatim, cited quotes.

    import rag
    report = rag.build(source="seeds", index_dir="index")   # BuildReport
    answer = rag.ask("How much did it cost to train R1?")   # Answer
    answer = rag.ask("What did Nvidia lose?", filters={"sources": ["BBC"],
                     "since": "2025-01-01"})                  # only those articles
    passages = rag.search("Nvidia share price", k=10)       # [Passage]
    article = rag.get_article(answer.article_id)            # Article

The public face only; see docs/architecture.md for the layers and the two paths.
Importing this package is cheap: the model, FAISS and BM25 load on first use.
"""

from __future__ import annotations

import sys
import types as _types

from .config import Config
from .types import (Answer, Article, ArticleNotFound, BuildError, BuildReport, Citation,
                    Explanation, Filters, IndexMismatch, IndexMissing, InvalidQuestion,
                    Passage, RagError, Skipped)

__all__ = ["ask", "build", "search", "get_article", "Answer", "Citation", "BuildReport",
           "Article", "Skipped", "Filters", "Passage", "Explanation", "Config", "RagError",
           "InvalidQuestion", "IndexMissing", "IndexMismatch", "BuildError",
           "ArticleNotFound"]
__version__ = "0.1.0"


def ask(question, k=None, index_dir=None, **kwargs) -> Answer:
    """See :func:`rag.answer.pipeline.ask`."""
    from .answer.pipeline import ask as _ask

    return _ask(question, k=k, index_dir=index_dir, **kwargs)


def search(query, k=10, index_dir=None, **kwargs) -> list:
    """See :func:`rag.answer.pipeline.search_passages` (passages, no answer chosen)."""
    from .answer.pipeline import search_passages

    return search_passages(query, k=k, index_dir=index_dir, **kwargs)


def get_article(article_id, index_dir=None, **kwargs) -> Article:
    """See :func:`rag.answer.pipeline.get_article`."""
    from .answer.pipeline import get_article as _get

    return _get(article_id, index_dir=index_dir, **kwargs)


def build(source=None, index_dir=None, rebuild=False, *, shards=None, engine="local",
          address=None, actors=None, **kwargs) -> BuildReport:
    """Build or update the index; see :func:`rag.index.build.build`.

    ``shards=N`` builds a sharded index (:func:`rag.index.shards.build_sharded`; answers
    equal one index's; a folder that already holds one keeps its count when ``shards`` is
    None). ``engine="ray"`` embeds on a Ray cluster (``address``, ``actors``:
    :class:`rag.distributed.build.RayEmbed`; the ``distributed`` extra) and writes the
    same files as a local build."""
    from pathlib import Path

    from .index.shards import build_sharded, is_cluster, read_cluster
    from .types import BuildError

    if engine not in ("local", "ray"):
        raise BuildError(f"unknown engine {engine!r}: use 'local' or 'ray'")
    if engine == "ray":
        from .distributed.build import RayEmbed

        kwargs["embed"] = RayEmbed(address=address, actors=actors)
    cfg = kwargs.get("config")
    where = index_dir if index_dir is not None else (cfg or Config.from_env()).index_dir
    if shards is None and is_cluster(Path(where)):
        shards = int(read_cluster(Path(where))[1]["shards"])
    if shards is not None:
        refuse_web_sources(kwargs, "a sharded index")
        return build_sharded(source, index_dir, shards, rebuild=rebuild, **kwargs)
    from .index.build import build as _build

    return _build(source=source, index_dir=index_dir, rebuild=rebuild, **kwargs)


def refuse_web_sources(kwargs: dict, what: str) -> None:
    """Raise :class:`~rag.types.BuildError` when ``kwargs`` asks for pages or feeds
    (``urls``, ``feeds``), which only a single local build fetches (they were dropped
    silently before); drops the fetch options (``poll``, ``fetch_policy``) that mean
    nothing without them."""
    from .types import BuildError

    if kwargs.get("urls") or kwargs.get("feeds"):
        raise BuildError(f"urls and feeds are not supported with {what} yet: add the pages "
                         "to the folder first (python -m rag.build --url ... on a single "
                         "index saves them as files)")
    for name in ("urls", "feeds", "poll", "fetch_policy"):
        kwargs.pop(name, None)


class _Package(_types.ModuleType):
    """Keeps ``rag.ask`` and ``rag.build`` the functions even after the command-line
    modules ``rag.ask`` / ``rag.build`` are imported (Python would otherwise bind the
    submodules to these names)."""

    def __setattr__(self, name, value):
        if name in ("ask", "build") and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
