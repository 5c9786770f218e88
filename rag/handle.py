"""``rag.open()``: one index folder as an object with explicit methods (issue 25, item 3).

    import rag
    with rag.open("index", source="seeds") as r:
        r.build()
        answer = r.ask("How much did it cost to train R1?", k=3)
        passages = r.search("Nvidia share price", k=10)
        article = r.article(answer.article_id)

The configuration is read once, when the handle is opened (``config``, else the
environment: :meth:`rag.config.Config.from_env`), and every call uses it; the module
functions ``rag.ask``, ``rag.search``, ``rag.get_article`` and ``rag.build`` keep working
as before (they read the environment on each call). A handle works on one index or on
a sharded one alike (:class:`rag.answer.corpus.Corpus`). It is safe to share between
threads for asking, searching and reading (builds take the index's build lock);
:meth:`Rag.close` lets go of the loaded index (it is loaded again on the next call).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Callable, Sequence

from .config import Config
from .types import Answer, Article, BuildError, BuildReport, Filters, Passage


class Rag:
    """An index folder opened with one configuration (see the module docstring)."""

    def __init__(self, index_dir: str | Path | None = None, *, config: Config | None = None,
                 source: str | Path | None = None) -> None:
        cfg = config or Config.from_env()
        self.config = cfg.replace(
            index_dir=Path(index_dir) if index_dir is not None else None,
            source=Path(source) if source is not None else None)
        self.index_dir = Path(self.config.index_dir)

    def ask(self, question: str, *, k: int | None = None,
            filters: Filters | dict | None = None, retrieval: str | None = None,
            as_of: date | str | None = None, dates: bool = True) -> Answer:
        """The answer to ``question``: see :func:`rag.answer.pipeline.ask`."""
        from .answer.pipeline import ask

        return ask(question, k, self.index_dir, config=self.config, retrieval=retrieval,
                   filters=filters, as_of=as_of, dates=dates)

    def search(self, query: str, *, k: int = 10, filters: Filters | dict | None = None,
               retrieval: str | None = None, as_of: date | str | None = None
               ) -> list[Passage]:
        """The ``k`` best passages: see :func:`rag.answer.pipeline.search_passages`."""
        from .answer.pipeline import search_passages

        return search_passages(query, k, self.index_dir, config=self.config,
                               retrieval=retrieval, filters=filters, as_of=as_of)

    def article(self, article_id: str) -> Article:
        """The article with this id: see :func:`rag.answer.pipeline.get_article`."""
        from .answer.pipeline import get_article

        return get_article(article_id, self.index_dir, config=self.config)

    def build(self, source: str | Path | None = None, *, rebuild: bool = False,
              shards: int | None = None, urls: Sequence[str] = (),
              feeds: Sequence[str] = (), poll: bool = True, progress: bool = False,
              on_progress: Callable[[str, int, int], None] | None = None,
              optimize: bool = False) -> BuildReport:
        """Build or update this index from ``source`` (default: the configured folder):
        see :func:`rag.build` (``optimize``: merge every segment into one)."""
        return build(source, self.index_dir, rebuild, shards=shards, config=self.config,
                     urls=urls, feeds=feeds, poll=poll, progress=progress,
                     on_progress=on_progress, optimize=optimize)

    def close(self) -> None:
        """Drop this folder's loaded index from the process's cache (its files close once
        no answer in flight holds it; a later call loads the published version again)."""
        from .answer.pipeline import forget_corpus

        forget_corpus(self.index_dir)

    def __enter__(self) -> "Rag":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"rag.open({str(self.index_dir)!r})"


def build(source: str | Path | None = None, index_dir: str | Path | None = None,
          rebuild: bool = False, *, shards: int | None = None, engine: str = "local",
          address: str | None = None, actors: int | None = None, **kwargs) -> BuildReport:
    """Build or update the index; see :func:`rag.index.build.build`.

    ``shards=N`` builds a sharded index (:func:`rag.index.shards.build_sharded`; answers
    equal one index's; a folder that already holds one keeps its count when ``shards`` is
    None). ``engine="ray"`` embeds on a Ray cluster (``address``, ``actors``:
    :class:`rag.distributed.build.RayEmbed`; the ``distributed`` extra) and writes the
    same files as a local build."""
    from .index.shards import build_sharded, is_cluster, read_cluster

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
        kwargs.pop("changed", None)  # a hint: the sharded builder walks the folder
        return build_sharded(source, index_dir, shards, rebuild=rebuild, **kwargs)
    from .index.build import build as build_one

    return build_one(source=source, index_dir=index_dir, rebuild=rebuild, **kwargs)


def refuse_web_sources(kwargs: dict, what: str) -> None:
    """Raise :class:`~rag.types.BuildError` when ``kwargs`` asks for pages or feeds
    (``urls``, ``feeds``), which only a single local build fetches (they were dropped
    silently before); drops the fetch options (``poll``, ``fetch_policy``) that mean
    nothing without them."""
    if kwargs.get("urls") or kwargs.get("feeds"):
        raise BuildError(f"urls and feeds are not supported with {what} yet: add the pages "
                         "to the folder first (python -m rag.build --url ... on a single "
                         "index saves them as files)")
    for name in ("urls", "feeds", "poll", "fetch_policy"):
        kwargs.pop(name, None)
