"""A sharded index: articles hash-partitioned over N ordinary index folders (each a
list of segments, :mod:`rag.index.segments`), built together.

Layout::

    index/
      CLUSTER                  the name of the live cluster manifest (replaced atomically)
      .build.lock              held by the one build that may write
      cluster-<time>.json      shards and their versions, partition, syndicated-copy
                               groups (the previous one is kept)
      shard-000/ ... shard-N/  ordinary index folders (CURRENT, v<time>-<pid>/, segments/)

An article always lands in shard ``sha256(id) mod N`` (:func:`shard_of`), so an
incremental build re-embeds only what changed, shard by shard. Passage vectors do not
depend on which passages are embedded together (``rag.embedding.model``: one passage per
run), so a shard's files are those the same articles would get from any build. Keyword
statistics depend on the whole corpus: the coordinator sums every shard's when asked
(:mod:`rag.answer.shards`), so a passage scores exactly as it would in one index, and a
build writes only the shards whose articles changed (a new segment each).

The cluster manifest is written last, after every shard has published its version, and
then ``CLUSTER`` is replaced: a reader sees the old cluster or the new one, never a mix
(each shard keeps its previous version one more build). Answers over the shards:
:mod:`rag.answer.shards`; embedding in this process or on a Ray cluster
(:mod:`rag.distributed.build`, chosen by the caller).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import Config
from ..types import BuildError, BuildReport, IndexMismatch, IndexMissing
from .store import CLUSTER, current_version, is_cluster

CLUSTER_SCHEMA = 1
PARTITION = "sha256(article id) mod shards"


def shard_of(article_id: str, shards: int) -> int:
    """The shard an article belongs to: stable across builds, machines and Python runs."""
    digest = hashlib.sha256(article_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def shard_name(i: int) -> str:
    return f"shard-{i:03d}"


def read_cluster(index_dir: Path) -> tuple[str, dict[str, Any]]:
    """(name, manifest) of the live cluster manifest; IndexMissing / IndexMismatch."""
    index_dir = Path(index_dir)
    try:
        name = (index_dir / CLUSTER).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise IndexMissing(f"no sharded index in {index_dir}: run "
                           "`python -m rag.build --shards N` first") from None
    try:
        manifest = json.loads((index_dir / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexMismatch(f"the cluster manifest {name} in {index_dir} cannot be read "
                            f"({exc}); rebuild with `python -m rag.build --shards N "
                            "--rebuild`") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != CLUSTER_SCHEMA:
        raise IndexMismatch(f"the cluster manifest {name} in {index_dir} has another "
                            "schema; rebuild with `python -m rag.build --shards N --rebuild`")
    return name, manifest


def _publish_cluster(index_dir: Path, manifest: dict[str, Any]) -> str:
    from .store import _fsync_dir, _write_json

    name = f"cluster-{time.time_ns()}.json"
    _write_json(index_dir / name, {**manifest, "name": name})
    _write_json(index_dir / f"{CLUSTER}.tmp", None, raw=name)
    os.replace(index_dir / f"{CLUSTER}.tmp", index_dir / CLUSTER)
    _fsync_dir(index_dir)
    for old in sorted(index_dir.glob("cluster-*.json"))[:-2]:  # keep the previous one
        old.unlink(missing_ok=True)
    return name


# -- building -----------------------------------------------------------------

def build_sharded(source: str | Path | None = None, index_dir: str | Path | None = None,
                  shards: int = 2, *, rebuild: bool = False, config: Config | None = None,
                  embed=None, progress: bool = False, log=None,
                  on_progress: Callable[[str, int, int], None] | None = None,
                  optimize: bool = False) -> BuildReport:
    """Build or update a sharded index of ``source`` in ``index_dir`` (layout above).

    ``embed`` chunks and embeds the new or changed articles of every shard in one go:
    :func:`rag.index.build.embed_articles` (the default: this process) or
    ``rag.distributed.build.RayEmbed`` (a Ray cluster); its ``engine`` attribute is
    recorded in the cluster manifest. The shard count
    is fixed when the index is first built; ``rebuild=True`` re-partitions and re-embeds.
    Each changed shard gets a new segment and version; segments are merged per shard as
    the merge policy says (``optimize``: each shard into one segment).
    Returns one :class:`BuildReport` for the whole corpus (``version``: the cluster
    manifest's name). Raises :class:`BuildError` as :func:`rag.build` does, and for a
    shard count that does not match the existing index.
    """
    from ..embedding.model import get_embedder
    from .build import (_build_lock, check_source, collector_paused, compare, copy_manifest,
                        copies_stage,
                        embed_articles, folded_of, previous_layout, prior_copies,
                        publish_update, read_stage, recorded_settings)
    from .segments import merge

    step = on_progress or (lambda phase, done, total: None)
    cfg = (config or Config.from_env()).replace(
        source=Path(source) if source is not None else None,
        index_dir=Path(index_dir) if index_dir is not None else None)
    say = log or ((lambda m: print(m, file=sys.stderr)) if progress else (lambda m: None))
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 4096:
        raise BuildError(f"shards must be a whole number from 1 to 4096, got {shards!r}")
    embed = embed or embed_articles
    engine = getattr(embed, "engine", "local")
    started = time.perf_counter()
    src, out = check_source(Path(cfg.source)), Path(cfg.index_dir)
    if current_version(out) is not None:  # (the lock below makes ``out``)
        raise BuildError(f"{out} holds a single (unsharded) index; build the sharded one "
                         "in another folder")
    with _build_lock(out, cfg.lock_timeout, say), collector_paused():
        old_cluster = None
        if is_cluster(out):
            old_cluster = read_cluster(out)[1]
            if old_cluster["shards"] != shards and not rebuild:
                raise BuildError(f"{out} has {old_cluster['shards']} shards, not {shards}; "
                                 "add --rebuild to re-partition (everything is re-embedded)")
        # the same reading stage as one index: the live shards decide contested ids
        loaded = read_stage(src, cfg, progress, step, _indexed_shards(out, old_cluster),
                            cache_dir=None if rebuild else out)
        articles, skipped = loaded.articles, loaded.skipped
        embedder = get_embedder(cfg)
        settings = recorded_settings(cfg)
        parts_of = [[a for a in articles if shard_of(a.id, shards) == i] for i in range(shards)]
        olds = [None if rebuild or old_cluster is None
                else previous_layout(out / shard_name(i), embedder, settings, say)
                for i in range(shards)]
        added, updated, unchanged, removed, fresh, keeps = [], [], [], [], [], []
        gones = []
        for arts, old in zip(parts_of, olds):
            a, u, same, gone = compare(arts, old.hashes() if old else {})
            added, updated, unchanged, removed = added + a, updated + u, unchanged + same, \
                removed + gone
            keep = set(same)
            fresh += [loaded.full(x) for x in arts if x.id not in keep]
            keeps.append(keep)
            gones.append(gone)
        report = dict(index_dir=str(out), added=tuple(added), updated=tuple(updated),
                      unchanged=tuple(unchanged), removed=tuple(sorted(removed)),
                      skipped=tuple(skipped))
        if old_cluster is not None and not (added or updated or removed or rebuild
                                            or optimize):
            loaded.done()
            step("done", 0, 0)
            return BuildReport(**report, articles=len(articles),
                               chunks=int(old_cluster["counts"]["chunks"]),
                               seconds=time.perf_counter() - started,
                               version=old_cluster["name"])

        say(f"embedding {len(fresh)} article(s) on engine {engine}")
        new_parts, n_embedded = embed(fresh, embedder, cfg, progress, step)

        copies, signatures = copies_stage(  # over the whole corpus, in its order
            articles, cfg, [(out / shard_name(i), o) for i, o in enumerate(olds) if o],
            {a.id for a in fresh}, prior_copies(old_cluster) if old_cluster and not rebuild
            else None, loaded.full)
        full_of = {a.id: a for a in fresh}
        folded = folded_of(copies)

        step("writing", 0, 0)
        shard_entries = []
        for i, (arts, old, keep, gone) in enumerate(zip(parts_of, olds, keeps, gones)):
            sdir = out / shard_name(i)
            sdir.mkdir(exist_ok=True)
            changed = old is None or len(keep) != len(arts) or \
                len(old.live()) != len(keep)
            if changed:
                fresh_here = [full_of[a.id] for a in arts if a.id not in keep]
                version, chunks = publish_update(sdir, old, arts, fresh_here, new_parts, {},
                                                 embedder, settings, src, loaded.files, say,
                                                 signatures, removed=gone)
            else:
                version = old.manifest["version"]
                chunks = int(old.manifest["counts"]["chunks"])
            if (changed and cfg.merge) or optimize:  # (a merge keeps the live passages)
                version = merge(sdir, optimize=optimize, say=say) or version
            shard_entries.append({"dir": shard_name(i), "version": version,
                                  "articles": len(arts), "chunks": chunks})
            say(f"{shard_name(i)}: {len(arts)} articles, {chunks} chunks -> {version}")
        name = _publish_cluster(out, {
            "schema": CLUSTER_SCHEMA, "shards": shards, "partition": PARTITION,
            "model": embedder.model_id, "dim": embedder.dim, "settings": settings,
            "engine": engine, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "counts": {"articles": len(articles),
                       "chunks": sum(e["chunks"] for e in shard_entries)},
            "shard_versions": shard_entries,
            # syndicated copies, each group in corpus order (representative first)
            **copy_manifest(articles, copies)})
        loaded.done()
        step("done", 0, 0)
        return BuildReport(**report, articles=len(articles),
                           chunks=sum(e["chunks"] for e in shard_entries),
                           embedded_chunks=n_embedded, seconds=time.perf_counter() - started,
                           version=name, wrote=True, folded=folded)


def _indexed_shards(out: Path, cluster: dict | None):
    """What the live shards hold (ids -> files and hashes), for the reading stage's
    duplicate rules: the union of their manifests (empty for a first build)."""
    from ..ingest.loaders import Indexed
    from .build import live_layout

    files: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for entry in (cluster or {}).get("shard_versions", ()):
        layout = live_layout(out / entry["dir"])
        if layout is not None:
            files.update(layout.origins())
            hashes.update(layout.hashes())
    return Indexed(files=files, hashes=hashes)
