"""A sharded index: articles hash-partitioned over N ordinary index folders, built
together so that every shard scores BM25 with the whole corpus's statistics.

Layout::

    index/
      CLUSTER                  the name of the live cluster manifest (replaced atomically)
      .build.lock              held by the one build that may write
      cluster-<time>.json      shards and their versions, partition, corpus statistics,
                               syndicated-copy groups (the previous one is kept)
      shard-000/ ... shard-N/  ordinary index folders (CURRENT, v<time>-<pid>/, ...)

An article always lands in shard ``sha256(id) mod N`` (:func:`shard_of`), so an
incremental build re-embeds only what changed, shard by shard. Passage vectors do not
depend on which passages are embedded together (``rag.embedding.model``: one passage per
run), so a shard's files are those the same articles would get from any build. Keyword
statistics do depend on the whole corpus: the build adds up every shard's
(:class:`~rag.index.keyword.KeywordStats`) and writes every shard's BM25 with the sum,
so a passage scores exactly as it would in one index over all the articles; when the sum
changes, every shard gets a new version (BM25 only is recomputed; nothing is re-embedded).

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

import numpy as np

from ..config import Config
from ..types import BuildError, BuildReport, IndexMismatch, IndexMissing
from .keyword import KeywordStats, build_keyword_writer, keyword_stats
from .store import CLUSTER, current_version, is_cluster, write_version

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
                  local_keyword_stats: bool = False) -> BuildReport:
    """Build or update a sharded index of ``source`` in ``index_dir`` (layout above).

    ``embed`` chunks and embeds the new or changed articles of every shard in one go:
    :func:`rag.index.build.embed_articles` (the default: this process) or
    ``rag.distributed.build.RayEmbed`` (a Ray cluster); its ``engine`` attribute is
    recorded in the cluster manifest. The shard count
    is fixed when the index is first built; ``rebuild=True`` re-partitions and re-embeds.
    ``local_keyword_stats`` scores each shard with its own statistics: wrong (answers
    then differ from one index's); it exists for the test that shows it.
    Returns one :class:`BuildReport` for the whole corpus (``version``: the cluster
    manifest's name). Raises :class:`BuildError` as :func:`rag.build` does, and for a
    shard count that does not match the existing index.
    """
    from ..embedding.model import get_embedder
    from .build import (_assemble, _build_lock, _open_previous, check_source, compare,
                        copies_stage, embed_articles, folded_of, part_manifest, read_stage,
                        recorded_settings)
    from .dense import build_index as build_vector_index

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
    with _build_lock(out, cfg.lock_timeout, say):
        old_cluster = None
        if is_cluster(out):
            old_cluster = read_cluster(out)[1]
            if old_cluster["shards"] != shards and not rebuild:
                raise BuildError(f"{out} has {old_cluster['shards']} shards, not {shards}; "
                                 "add --rebuild to re-partition (everything is re-embedded)")
        # the same reading stage as one index: the live shards decide contested ids
        loaded = read_stage(src, cfg, progress, step, _indexed_shards(out, old_cluster))
        articles, skipped = loaded.articles, loaded.skipped
        embedder = get_embedder(cfg)
        settings = recorded_settings(cfg)
        parts_of = [[a for a in articles if shard_of(a.id, shards) == i] for i in range(shards)]
        olds = [None if rebuild or old_cluster is None
                else _open_previous(out / shard_name(i), embedder, settings, say)
                for i in range(shards)]
        added, updated, unchanged, removed, fresh, keeps = [], [], [], [], [], []
        for arts, old in zip(parts_of, olds):
            a, u, same, gone = compare(arts, old.manifest["articles"] if old else {})
            added, updated, unchanged, removed = added + a, updated + u, unchanged + same, \
                removed + gone
            keep = set(same)
            fresh += [x for x in arts if x.id not in keep]
            keeps.append(keep)
        report = dict(index_dir=str(out), added=tuple(added), updated=tuple(updated),
                      unchanged=tuple(unchanged), removed=tuple(sorted(removed)),
                      skipped=tuple(skipped))
        if old_cluster is not None and not (added or updated or removed or rebuild):
            step("done", 0, 0)
            return BuildReport(**report, articles=len(articles),
                               chunks=sum(o.n_chunks for o in olds if o),
                               seconds=time.perf_counter() - started,
                               version=old_cluster["name"])

        say(f"embedding {len(fresh)} article(s) on engine {engine}")
        new_parts, n_embedded = embed(fresh, embedder, cfg, progress, step)

        datas = []
        for arts, keep, old in zip(parts_of, keeps, olds):
            old_rows = {aid: r for r, aid in enumerate(old.article_ids)} if old else {}
            datas.append(_assemble(arts, keep, old, old_rows, new_parts, embedder.dim)
                         if arts else None)
        copies = copies_stage(articles, cfg)  # over the whole corpus, in its order
        groups: dict[str, list[str]] = {}
        for aid, (target, _sim) in copies.items():
            groups.setdefault(target, [target]).append(aid)
        folded = folded_of(copies)

        step("writing", 0, 0)
        texts_of = [[arts[r].text[s:e] for r, s, e in d.chunks[:, :3].tolist()] if d else []
                    for arts, d in zip(parts_of, datas)]
        stats_of = [keyword_stats(t) for t in texts_of]
        total = KeywordStats(0, 0, {})
        for st in stats_of:
            total = total.plus(st)
        shard_entries = []
        for i, (arts, data, texts) in enumerate(zip(parts_of, datas, texts_of)):
            sdir = out / shard_name(i)
            if data is None:  # no article hashes here: an empty, valid shard
                data = _empty(embedder.dim)
            data.copies = {a.id: copies[a.id] for a in arts if a.id in copies}
            vector_index, vector_info = build_vector_index(data.chunk_vectors, embedder.dim)
            stats = stats_of[i] if local_keyword_stats else total
            manifest = part_manifest(embedder, settings, vector_info, src, data, loaded.files,
                                     shard={"index": i, "of": shards, "partition": PARTITION,
                                            "keyword_stats": {"n_docs": stats.n_docs,
                                                              "total_len": stats.total_len}})
            sdir.mkdir(exist_ok=True)
            version = write_version(sdir, data, manifest, vector_index,
                                    build_keyword_writer(texts, stats))
            shard_entries.append({"dir": shard_name(i), "version": version,
                                  "articles": len(arts), "chunks": len(data.chunks)})
            say(f"{shard_name(i)}: {len(arts)} articles, {len(data.chunks)} chunks -> {version}")
        order = {a.id: n for n, a in enumerate(articles)}
        name = _publish_cluster(out, {
            "schema": CLUSTER_SCHEMA, "shards": shards, "partition": PARTITION,
            "model": embedder.model_id, "dim": embedder.dim, "settings": settings,
            "engine": engine, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "keyword_stats": {"n_docs": total.n_docs, "total_len": total.total_len,
                              "shard_local": bool(local_keyword_stats)},
            "counts": {"articles": len(articles),
                       "chunks": sum(e["chunks"] for e in shard_entries)},
            "shard_versions": shard_entries,
            # syndicated copies, each group in corpus order (representative first)
            "copy_groups": [sorted(g, key=order.__getitem__) for g in groups.values()]})
        step("done", 0, 0)
        return BuildReport(**report, articles=len(articles),
                           chunks=sum(e["chunks"] for e in shard_entries),
                           embedded_chunks=n_embedded, seconds=time.perf_counter() - started,
                           version=name, wrote=True, folded=folded)


def _indexed_shards(out: Path, cluster: dict | None):
    """What the live shards hold (ids -> files and hashes), for the reading stage's
    duplicate rules: the union of their manifests (empty for a first build)."""
    from ..ingest.loaders import Indexed
    from .build import indexed_in

    files: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for entry in (cluster or {}).get("shard_versions", ()):
        part = indexed_in(out / entry["dir"])
        files.update(part.files)
        hashes.update(part.hashes)
    return Indexed(files=files, hashes=hashes)


def _empty(dim: int):
    from .store import IndexData

    return IndexData(articles=[], chunks=np.zeros((0, 5), np.int32),
                     sentences=np.zeros((0, 2), np.int32),
                     chunk_vectors=np.zeros((0, dim), np.float32),
                     sentence_vectors=np.zeros((0, dim), np.float16))
