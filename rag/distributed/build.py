"""The build's chunking and embedding on a Ray cluster.

:class:`RayEmbed` is an ``embed`` for :func:`rag.index.build.build` and
:func:`rag.index.shards.build_sharded`: the articles to embed go into a Ray Dataset
(id and text only), an actor pool runs the project's own
:func:`rag.index.build.embed_articles` on batches of them (each actor loads the model
once), and the parts come back to the driver, which writes the index as a local build
does. Because a passage's vectors depend on its text alone (one passage per model run,
``rag.embedding.model``), the files are the local build's, byte for byte
(``tests/distributed/test_distributed.py``).

The pool stays below the cluster's CPU count: Ray Data stalls when an actor pool takes
every CPU (ray-project/ray#44687). Parts travel as ``.npy`` bytes (no pickle of our
data; Ray moves the bytes).
"""

from __future__ import annotations

import io
import json
import time
from types import SimpleNamespace

import numpy as np

from . import require_ray

ARTICLES_PER_BATCH = 16


def _pack(part) -> bytes:
    """One article's parts as bytes: a JSON header line, then the two vector arrays."""
    chunks, counts, sentences, cv, sv = part
    buf = io.BytesIO()
    head = json.dumps({"chunks": [list(c) for c in chunks], "counts": list(counts),
                       "sentences": [list(x) for x in sentences]}).encode()
    buf.write(len(head).to_bytes(8, "little"))
    buf.write(head)
    np.save(buf, np.ascontiguousarray(cv, dtype=np.float32), allow_pickle=False)
    np.save(buf, np.ascontiguousarray(sv, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _unpack(blob: bytes):
    buf = io.BytesIO(blob)
    n = int.from_bytes(buf.read(8), "little")
    head = json.loads(buf.read(n))
    cv = np.load(buf, allow_pickle=False)
    sv = np.load(buf, allow_pickle=False)
    return ([tuple(c) for c in head["chunks"]], head["counts"],
            [tuple(x) for x in head["sentences"]], cv, sv)


class _EmbedActor:
    """A Ray Data actor: loads the model once, embeds batches of articles."""

    def __init__(self, config) -> None:
        from ..embedding.model import get_embedder

        self.cfg = config
        self.embedder = get_embedder(config)

    def __call__(self, batch: dict) -> dict:
        from ..index.build import embed_articles

        arts = [SimpleNamespace(id=str(i), text=str(t))
                for i, t in zip(batch["id"], batch["text"])]
        parts, n = embed_articles(arts, self.embedder, self.cfg)
        return {"id": np.array([a.id for a in arts], dtype=object),
                "part": np.array([_pack(parts[a.id]) for a in arts], dtype=object),
                "passages": np.array([len(parts[a.id][0]) for a in arts], dtype=np.int64)}


class RayEmbed:
    """``embed`` on a Ray cluster. ``address``: None starts a local Ray instance for the
    build (and stops it after), ``"auto"`` joins the running cluster, or a
    ``ray://host:port`` address; ``actors``: embedding actors (default the cluster's CPUs
    minus one, at least one); ``threads``: model threads per actor (each actor asks Ray
    for that many CPUs)."""

    engine = "ray"

    def __init__(self, address: str | None = None, actors: int | None = None,
                 threads: int = 1, batch: int = ARTICLES_PER_BATCH) -> None:
        self.address, self.actors, self.threads, self.batch = address, actors, threads, batch
        self.report: dict = {}

    def __call__(self, articles, embedder, cfg, progress: bool = False,
                 step=lambda phase, done, total: None):
        ray = require_ray()
        if not articles:
            return {}, 0
        started = not ray.is_initialized()
        t0 = time.perf_counter()
        if started:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        try:
            t1 = time.perf_counter()
            cpus = int(ray.cluster_resources().get("CPU", 1))
            actors = self.actors or max(1, cpus // self.threads - 1)
            if actors * self.threads >= cpus > self.threads:
                actors = max(1, (cpus - 1) // self.threads)  # below the CPU count (#44687)
            ray.data.DataContext.get_current().enable_progress_bars = bool(progress)
            if not progress:  # --quiet: Ray Data's own INFO lines too
                import logging

                logging.getLogger("ray.data").setLevel(logging.WARNING)
            ds = ray.data.from_items([{"id": a.id, "text": a.text} for a in articles],
                                     override_num_blocks=max(1, min(len(articles) // self.batch,
                                                                    4 * actors)))
            out = ds.map_batches(_EmbedActor, fn_constructor_kwargs={
                "config": cfg.replace(threads=self.threads)}, batch_size=self.batch,
                compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=self.threads,
                batch_format="numpy")
            parts, done, passages = {}, 0, 0
            step("embedding", 0, len(articles))
            for b in out.iter_batches(batch_size=None, batch_format="numpy"):
                for aid, blob, n in zip(b["id"], b["part"], b["passages"]):
                    parts[str(aid)] = _unpack(bytes(blob))
                    passages += int(n)
                done += len(b["id"])
                step("embedding", done, len(articles))
            self.report = {"start_s": t1 - t0, "actors": actors, "cpus": cpus,
                           "embed_s": time.perf_counter() - t1}
        finally:
            if started:
                ray.shutdown()
        missing = [a.id for a in articles if a.id not in parts]
        if missing:
            from ..types import BuildError

            raise BuildError(f"the Ray cluster returned no passages for {len(missing)} "
                             f"article(s), e.g. {missing[0]!r}; the index is unchanged")
        # passages: counted per article, so a passage shared by two articles counts twice
        return parts, passages
