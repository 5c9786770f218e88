"""Incremental, atomic builds: source folder -> a new segment and a new version.

:func:`build` loads every article, compares content hashes with the live version, and
embeds only new or changed articles, which become one new segment; the replaced and
removed ones are marked deleted in their old segments (issue 26: nothing written before
is rewritten). The new version is published atomically (see :mod:`rag.index.store`),
so a build that fails or is killed at any point leaves the previous index answering;
then the merge policy (:mod:`rag.index.segments`) may merge segments and publish again.
One build at a time per index folder (a file lock).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import operator
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..config import Config
from ..embedding.model import Embedder, get_embedder
from ..ingest import thai
from ..ingest.chunking import SEPARATORS, OffsetTextSplitter, sentences_in, split_sentences
from ..ingest.loaders import Indexed, Loaded, load_sources
from .keyword import KEYWORD_TERMS
from ..ingest.sandbox import reader_for, reading
from ..types import (BuildError, BuildReport, Fetched, Folded, IndexMismatch, RagError,
                     IndexMissing)
from .segments import Layout, Lookup, entry_of, merge, read_layout, write_data_segment
from .store import (IndexData, check_compatible, collect_garbage, copy_files_for, is_cluster,
                    publish_version, read_copies)

SENTENCE_SPLITTER = "lines+blingfire+scripts-2"  # + the sentence ends of other scripts


def sentence_splitter() -> str:
    """How this installation cuts sentences, as the manifest records it: Thai by
    PyThaiNLP's model where it is installed (:mod:`rag.ingest.thai`), so an index built
    with it and updated without it (or the reverse) is rebuilt, not mixed."""
    return SENTENCE_SPLITTER + (f"+{thai.SPLITTER}" if thai.available() else "")


_ID = operator.attrgetter("id")
EMBED_GROUP = 256  # new passages handed from the chunking thread to the model at a time


def build(source: str | Path | None = None, index_dir: str | Path | None = None,
          rebuild: bool = False, *, config: Config | None = None,
          progress: bool = False, log=None, urls: Sequence[str] = (),
          feeds: Sequence[str] = (), poll: bool = True, fetch_policy=None,
          on_progress: Callable[[str, int, int], None] | None = None,
          embed: "EmbedFn | None" = None, optimize: bool = False,
          changed: Sequence[str | Path] | None = None) -> BuildReport:
    """Build or update the index of ``source`` in ``index_dir``; returns a BuildReport.

    ``rebuild=True`` re-embeds everything. ``urls`` (web pages) and ``feeds`` (RSS/Atom,
    remembered) are fetched into ``source/web/`` first (:mod:`rag.ingest.web`), and with
    ``poll`` every remembered feed is polled again; what happened to each page or item is
    in ``BuildReport.fetched`` (a page that cannot be fetched is a ``skipped`` line, never
    an error). Near-duplicate articles (syndicated copies) are found when a version is
    written (``BuildReport.folded``; ``config.fold_copies``). Raises :class:`BuildError`
    for a missing source folder, no readable article, or a build already running that
    does not finish within ``config.lock_timeout`` seconds. ``log`` receives one-line
    messages (default: stderr when ``progress`` is on). ``on_progress(phase, done,
    total)`` is called as the build goes: ``fetching``, ``reading`` (articles read),
    ``embedding`` (passages embedded of those to embed), ``writing``, ``done``; it must
    be quick and must not raise. ``embed`` chunks and embeds the new or changed articles
    (default :func:`embed_articles`, in this process; ``rag.distributed.build.RayEmbed``
    does it on a Ray cluster, with the same result). After publishing, segments are
    merged as the merge policy says (``config.merge``), or all into one with
    ``optimize`` (also when nothing changed).

    ``changed`` (a watcher's report: files and folders under the source created,
    modified, moved or deleted since this process's last build of it) looks at those
    alone instead of walking the whole folder (:func:`rag.ingest.loaders.load_sources`);
    the first build in a process, and any without it, walks the folder.
    """
    embed = embed or embed_articles
    step = on_progress or (lambda phase, done, total: None)
    cfg = (config or Config.from_env()).replace(
        source=Path(source) if source is not None else None,
        index_dir=Path(index_dir) if index_dir is not None else None)
    say = log or ((lambda m: print(m, file=sys.stderr)) if progress else (lambda m: None))
    started = time.perf_counter()
    src = check_source(Path(cfg.source))
    out = Path(cfg.index_dir)
    if is_cluster(out):
        raise BuildError(f"{out} holds a sharded index: update it with `python -m rag.build "
                         "--index ...` or rag.build() (they keep its shards), not this builder")
    with _build_lock(out, cfg.lock_timeout, say), collector_paused():  # (the lock makes
        # ``out``, and removes it when it holds no index)
        collect_garbage(out)  # what killed builds left (.tmp-* folders), even if none writes
        step("fetching", 0, 0)
        fetched = _fetch(src, urls, feeds, poll, fetch_policy, cfg, say)
        if changed is not None and fetched:
            from ..ingest.web import WEB_FOLDER
            changed = [*changed, src / WEB_FOLDER]  # where the fetcher saves pages
        # the live index decides contested ids, not file names (issue 22), also on rebuild
        loaded = read_stage(src, cfg, progress, step, indexed_in(out),
                            cache_dir=None if rebuild else out, changed=changed)
        articles, skipped = loaded.articles, loaded.skipped
        embedder = get_embedder(cfg)
        settings = recorded_settings(cfg)
        old = None if rebuild else previous_layout(out, embedder, settings, say)
        added, updated, unchanged, removed = compare_loaded(loaded, old)
        report = dict(index_dir=str(out), added=tuple(added), updated=tuple(updated),
                      unchanged=tuple(unchanged), removed=tuple(removed),
                      skipped=tuple(skipped), fetched=tuple(fetched))
        if old is not None and not (added or updated or removed):
            version = old.manifest["version"]
            if optimize:
                step("writing", 0, 0)
                version = merge(out, optimize=True, say=say) or version
            loaded.published(version)
            step("done", 0, 0)
            return BuildReport(**report, articles=len(articles),
                               chunks=int(old.manifest["counts"]["chunks"]),
                               seconds=time.perf_counter() - started, version=version,
                               wrote=version != old.manifest["version"])

        fresh = loaded.pick({*added, *updated})  # in corpus order
        languages = _languages_meanwhile(fresh)
        new_parts, n_embedded = embed(fresh, embedder, cfg, progress, step)
        copies, signatures = copies_stage(
            articles, cfg, [(out, old)] if old else (), {a.id for a in fresh},
            prior_copies(old.manifest, out) if old else None, loaded.full,
            order=loaded.order, lookup=loaded.article, complete=True)
        step("writing", 0, 0)
        version, chunks = publish_update(out, old, articles, fresh, new_parts, copies,
                                         embedder, settings, src, loaded.files, say,
                                         signatures, languages(), removed=removed,
                                         order=loaded.order)
        if optimize or cfg.merge:
            version = merge(out, optimize=optimize, say=say) or version
        loaded.published(version)
        step("done", 0, 0)
        return BuildReport(**report, articles=len(articles), chunks=chunks,
                           embedded_chunks=n_embedded, seconds=time.perf_counter() - started,
                           version=version, wrote=True, folded=folded_of(copies))


def publish_update(out: Path, old: Layout | None, articles: Sequence, fresh: Sequence,
                   new_parts: dict, copies: dict[str, tuple[str, float]], embedder: Embedder,
                   settings: dict, src: Path, files: dict[str, str], say,
                   signatures: dict[str, np.ndarray] | None = None,
                   languages: dict[str, str] | None = None, *,
                   removed: Sequence[str] = (),
                   order: Mapping[str, object] | None = None) -> tuple[str, int]:
    """Publish the version of ``articles`` (in corpus order) over ``old``: one new
    segment of the ``fresh`` articles (new or changed; embedded in ``new_parts``; their
    ``languages`` by id, detected when missing), the old segments with the rows of
    changed and ``removed`` articles (live in ``old``, gone from ``articles``) marked
    deleted, and the syndicated-copy groups of ``copies`` (each sorted by ``order``:
    id -> a corpus-order key; default the place in ``articles``). Returns (version
    name, live passages). Costs what changed: the rows to delete are looked up one by
    one (:meth:`Layout.locate`), not from a map of every live article."""
    entries, deleted, live_chunks = [], {}, 0
    if old is not None:
        dead_of = [set(d.tolist()) for d in old.deleted]
        for aid in itertools.chain(removed, map(_ID, fresh)):
            at = old.locate(aid)
            if at is not None:
                dead_of[at[0]].add(at[1])
        was = {e.get("name"): e for e in old.manifest.get("segments", ())}
        for seg, dead, gone in zip(old.segments, dead_of, old.deleted):
            rows = np.array(sorted(dead), dtype=np.int32)
            if len(rows) == seg["counts"]["articles"]:
                continue  # nothing live: the version drops it
            entry = entry_of(seg["segment"], seg, rows, was.get(seg["segment"]), gone)
            live_chunks += entry["live_chunks"]
            entries.append(entry)
            if len(rows):
                deleted[seg["segment"]] = rows
    if fresh:
        data = _assemble(fresh, new_parts, embedder.dim)
        say(f"writing segment: {len(data.chunks)} chunks, {len(data.sentences)} sentences")
        name, seg = write_data_segment(out, data, segment_manifest(
            embedder, settings, src, files, data), embedder.dim, signatures, languages)
        entry = entry_of(name, seg, np.zeros(0, dtype=np.int32))
        live_chunks += len(data.chunks)
        entries.append(entry)
    groups = copy_manifest(articles, copies, order)
    manifest = {"model": embedder.model_id, "dim": embedder.dim, "settings": settings,
                "source": str(src), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "counts": {"articles": len(articles), "chunks": live_chunks},
                "segments": entries,
                "copy_files": copy_files_for(out, old.manifest if old else None,
                                             groups["copy_groups"], groups["copy_similarity"]),
                "last_merge": old.manifest.get("last_merge") if old else None}
    return publish_version(out, manifest, deleted), live_chunks


def _languages_meanwhile(articles: Sequence) -> Callable[[], dict[str, str]]:
    """Detect the language of each of ``articles`` in a thread while they are embedded
    (the model runs outside the GIL; about 1 ms an article, and the detector's first
    load ~0.7 s, hidden that way); the returned function waits and gives {id: code}."""
    from ..ingest.language import detect

    found: dict[str, str] = {}

    def run() -> None:
        try:
            for a in articles:
                found[a.id] = detect(a.text)
        except Exception:  # noqa: BLE001 - the segment writer detects what is missing
            pass

    worker = threading.Thread(target=run, name="rag-languages", daemon=True)
    worker.start()

    def result() -> dict[str, str]:
        worker.join()
        return found
    return result


# -- stages: one index (build above) and a sharded one (rag.index.shards) both run them --

def check_source(src: Path) -> Path:
    """``src``, or :class:`BuildError` when it is not a folder."""
    if not src.is_dir():
        raise BuildError(f"source folder not found: {src}" if not src.exists()
                         else f"source is not a folder: {src}")
    return src


SOURCE_CACHE = ".sources.sqlite"


def read_stage(src: Path, cfg: Config, progress: bool, step, indexed: Indexed,
               cache_dir: Path | None = None,
               changed: Sequence[str | Path] | None = None) -> Loaded:
    """Read every article of ``src`` (PDF and DOCX in a limited worker, with the cache of
    parsed texts pruned to the files present), preferring ``indexed``'s claimant of a
    contested id; :class:`BuildError` naming the first skip reasons when none is
    readable. With ``cache_dir`` (the index folder), files unchanged since the last
    build are not read again (:class:`~rag.ingest.loaders.SourceCache`); with it and
    ``changed``, only the paths changed are looked at (``load_sources``)."""
    from ..ingest.loaders import SourceCache

    step("reading", 0, 0)
    cache = SourceCache(cache_dir / SOURCE_CACHE) if cache_dir is not None else None
    try:
        with reading(reader_for(cfg)) as reader:
            loaded = load_sources(src, max_file_bytes=cfg.max_file_bytes, progress=progress,
                                  max_pdf_pages=cfg.max_pdf_pages, indexed=indexed,
                                  cache=cache, changed=changed)
            reader.prune()  # the cached texts of documents gone from the folder
    finally:
        if cache is not None:
            cache.close()
    step("reading", len(loaded.articles), len(loaded.articles))
    if not loaded.articles:
        why = "; ".join(f"{s.path}: {s.reason}" for s in loaded.skipped[:5])
        raise BuildError(f"no readable article in {src}" + (f" ({why})" if why else ""))
    return loaded


def recorded_settings(cfg: Config) -> dict:
    """The settings a manifest records (a different value means a rebuild)."""
    return {**cfg.index_settings(), "separators": list(SEPARATORS),
            "sentences": sentence_splitter(), "terms": KEYWORD_TERMS}


def copies_stage(articles: Sequence, cfg: Config, previous: Sequence[tuple[Path, Layout]] = (),
                 fresh_ids: set[str] | None = None,
                 prior: dict[str, tuple[str, float]] | None = None,
                 full=lambda article: article, *,
                 order: Mapping[str, object] | None = None,
                 lookup: Callable[[str], object] | None = None, complete: bool = False
                 ) -> tuple[dict[str, tuple[str, float]], dict[str, np.ndarray]]:
    """Syndicated copies over all ``articles`` (corpus order): (id -> (representative id,
    similarity), the MinHash of each article computed here, by id). Incremental: the
    live version's copies (``prior``) stand unless an end of them changed; the new and
    changed articles (``fresh_ids``; default all) and the copies whose representative
    went are folded against the representatives, whose signatures come from their
    segments (``previous``: each index folder and its layout); ``full(article)`` gives
    an article with its text (:meth:`rag.ingest.loaders.Loaded.full`: only the articles
    compared are read). None when ``cfg.fold_copies`` is off.

    A watched build passes what its load keeps (:class:`~rag.ingest.loaders.Loaded`):
    ``order`` (id -> corpus-order key, default the place in ``articles``), ``lookup``
    (id -> article) and ``complete`` (every article but ``fresh_ids`` is live in
    ``previous``, as :func:`compare` makes it): then nothing here is a pass over the
    whole corpus."""
    if not cfg.fold_copies:
        return {}, {}
    from .copies import band_keys, fold, minhash, proposer, shingles

    position: Mapping[str, object]
    if order is None or lookup is None:
        position = dict(zip(map(_ID, articles), itertools.count()))

        def lookup(aid: str):
            return articles[position[aid]]
    else:
        position = order
    fresh = set(position) if fresh_ids is None else set(fresh_ids)
    kept, orphans = {}, []
    for member, (rep, sim) in (prior or {}).items():
        if member not in position or member in fresh:
            continue
        if rep in position and rep not in fresh:
            kept[member] = (rep, sim)
        else:
            orphans.append(member)
    moving = fresh | set(orphans)
    sets: dict[str, np.ndarray] = {}
    computed: dict[str, np.ndarray] = {}

    def set_of(aid: str) -> np.ndarray:
        if aid not in sets:
            sets[aid] = shingles(full(lookup(aid)).text)
        return sets[aid]

    def signature_of(aid: str) -> np.ndarray:
        if aid not in computed:
            computed[aid] = minhash(set_of(aid))
        return computed[aid]

    def is_rep(aid: str) -> bool:
        return aid in position and aid not in moving and aid not in kept

    stored, others = _stored_proposers(previous, is_rep)
    if not complete:
        # and the representatives no layout holds (C-level set operations): those and
        # the ones whose segment has no signatures are scanned by signatures made here
        located = {aid for _, layout in previous for aid in layout.live()}
        others += sorted((position.keys() - located) - moving - kept.keys(),
                         key=position.__getitem__)
    if others:
        stored.append(proposer(others, band_keys(np.array([signature_of(a)
                                                             for a in others]))))

    def propose(keys: np.ndarray) -> list[str]:
        return [aid for p in stored for aid in p(keys)]

    new = fold(position, [aid for aid in moving if aid in position], propose,
               signature_of, set_of)
    return {**kept, **new}, {aid: computed[aid] for aid in computed if aid in fresh}


def _stored_proposers(previous: Sequence[tuple[Path, Layout]], is_rep
                      ) -> tuple[list, list[str]]:
    """(proposers, uncovered): per segment of the ``previous`` layouts with stored
    signatures, a proposer over its live representatives (``is_rep(id)``) by their band
    keys (computed once per process, :func:`~rag.index.segments.stored_band_keys`;
    a proposed id is checked live by :meth:`Layout.locate`); the live representatives
    of the segments without."""
    from .copies import proposer
    from .segments import segment_ids, stored_band_index, stored_band_keys

    out: list = []
    uncovered: list[str] = []
    for folder, layout in previous:
        for p, seg in enumerate(layout.segments):
            ids = segment_ids(seg)
            path = Path(folder) / "segments" / seg["segment"]
            keys = stored_band_keys(path)
            if keys is None or len(keys) != len(ids):
                live = layout.live()
                uncovered += [aid for row, aid in enumerate(ids)
                              if live.get(aid) == (p, row) and is_rep(aid)]
            else:
                out.append(proposer(ids, keys, lambda row, aid, p=p, layout=layout:
                                    layout.locate(aid) == (p, row) and is_rep(aid),
                                    stored_band_index(path, build=False)))
    return out, uncovered


def prior_copies(manifest: dict, index_dir: Path | None = None
                 ) -> dict[str, tuple[str, float]]:
    """The copies a version (of ``index_dir``) or cluster manifest records: member ->
    (representative, similarity)."""
    groups, sims = read_copies(Path(index_dir or "."), manifest)
    return {m: (g[0], float(sims.get(m, 1.0))) for g in groups for m in g[1:]}


def copy_manifest(articles: Sequence, copies: dict[str, tuple[str, float]],
                  order: Mapping[str, object] | None = None) -> dict:
    """The copy groups (each in corpus order, representative first: ``order`` gives
    each id's sort key, default its place in ``articles``) and similarities a manifest
    records."""
    groups: dict[str, list[str]] = {}
    for aid, (target, _sim) in copies.items():
        groups.setdefault(target, [target]).append(aid)
    if order is None:
        order = dict(zip(map(_ID, articles), itertools.count())) if groups else {}
    return {"copy_groups": [sorted(g, key=order.__getitem__) for g in groups.values()],
            "copy_similarity": {aid: round(sim, 6) for aid, (_, sim) in copies.items()}}


def folded_of(copies: dict[str, tuple[str, float]]) -> tuple[Folded, ...]:
    return tuple(Folded(aid, target, round(sim, 4)) for aid, (target, sim) in copies.items())


def segment_manifest(embedder: Embedder, settings: dict, src: Path, files: dict[str, str],
                     data: IndexData, **extra) -> dict:
    """What a new segment's manifest records besides its counts, passages per article
    and files: the model, settings, source and the files its articles came from."""
    return {"model": embedder.model_id, "dim": embedder.dim, "settings": settings,
            "source": str(src), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "origins": {a.id: files[a.id] for a in data.articles if a.id in files}, **extra}


def compare(articles, old_hash: dict[str, str]) -> tuple[list, list, list, list]:
    """Article ids (added, updated, unchanged, removed) against the content hashes of
    the previous version (``old_hash``: id -> hash); removed ones sorted."""
    # C-level maps and filters over the ids: set operations on (id, hash) pairs cost
    # 0.13 s of a one-article build at 100k articles, a loop per article 0.1 s; the
    # lists keep corpus order
    ids = list(map(_ID, articles))
    moved = list(itertools.compress(ids, map(operator.ne, map(old_hash.get, ids),
                                             map(operator.attrgetter("content_hash"),
                                                 articles))))
    added = [aid for aid in moved if aid not in old_hash]
    updated = [aid for aid in moved if aid in old_hash]
    unchanged = list(itertools.filterfalse(set(moved).__contains__, ids)) if moved else ids
    # every old id still here is unchanged or updated: none removed when they add up
    removed = [] if len(old_hash) == len(ids) - len(added) else \
        sorted(old_hash.keys() - set(ids))
    return added, updated, unchanged, removed


def compare_loaded(loaded: Loaded, old: Layout | None) -> tuple[list, list, list, list]:
    """:func:`compare` of a load against the live version ``old``: from the load's
    ``delta`` alone when it is what changed since ``old`` was published from this
    process's previous load (a watched build: ~1 ms, not a pass over 100k hashes),
    else every article against every hash."""
    articles = loaded.articles
    if old is None or loaded.delta is None or loaded.base is None or \
            loaded.base != old.manifest.get("version"):
        return compare(articles, old.hashes() if old else {})
    now = {aid: loaded.article(aid).content_hash for aid in loaded.delta
           if aid in loaded.files}
    was = {aid: old.hash_of(aid) for aid in loaded.delta}
    moved = sorted((aid for aid, h in now.items() if was[aid] != h),
                   key=loaded.order.__getitem__)  # (a delta comes with its order)
    added = [aid for aid in moved if was[aid] is None]
    updated = [aid for aid in moved if was[aid] is not None]
    removed = sorted(aid for aid, h in was.items() if h is not None and aid not in now)
    if old.n_live != len(articles) - len(added) + len(removed):  # not what was published
        return compare(articles, old.hashes())
    return added, updated, loaded.ids_but(moved), removed


def _fetch(src: Path, urls: Sequence[str], feeds: Sequence[str], poll: bool, policy,
           cfg: Config, say) -> list[Fetched]:
    """Fetch ``urls`` and ``feeds`` into ``src`` and, with ``poll``, poll the remembered
    feeds; nothing when there is nothing to fetch. ``policy`` defaults to the config's."""
    from ..ingest import web
    from ..ingest.fetch import policy_for

    if not (urls or feeds or (poll and (src / web.FEEDS_FILE).exists())):
        return []
    policy = policy or policy_for(cfg)
    fetched: list[Fetched] = []
    if urls:
        say(f"fetching {len(urls)} page(s)")
        fetched += web.add_urls(src, list(urls), policy)
    if feeds:
        say(f"fetching {len(feeds)} feed(s)")
        fetched += web.add_feeds(src, list(feeds), policy)
    if poll:
        known = {f["url"] for f in web.list_feeds(src)} - set(feeds)
        if known:
            say(f"polling {len(known)} remembered feed(s)")
            fetched += web.poll_feeds(src, policy, only=sorted(known))
    return fetched


def live_layout(out: Path) -> Layout | None:
    """The live version's layout, None without a readable one (none yet, or one to
    rebuild); unverified: for preferences, not for answers."""
    try:
        return read_layout(out)
    except (RagError, OSError, KeyError, TypeError, ValueError):
        return None


def indexed_in(out: Path) -> Indexed:
    """The live version's ids -> files and content hashes (empty without a readable
    version): only a preference for contested ids, so the checksums are not verified.
    Looked up id by id (the duplicate rules ask about a few), not copied."""
    layout = live_layout(out)
    if layout is None:
        return Indexed()
    return Indexed(files=Lookup(layout.origin_of, layout.origins),
                   hashes=Lookup(layout.hash_of, layout.hashes),
                   version=layout.manifest.get("version"))


def previous_layout(out: Path, embedder: Embedder, settings: dict, say) -> Layout | None:
    """The live version's layout when a build can add to it; None (a full rebuild)
    when there is none, or it was built with another model, settings or schema."""
    try:
        layout = read_layout(out)
        check_compatible(layout.manifest, embedder.model_id, settings)
        return layout
    except IndexMissing:
        return None
    except (IndexMismatch, KeyError, TypeError, ValueError) as exc:
        say(f"full rebuild: {str(exc).split(';')[0]}")
        return None


# (articles, embedder, config, progress bar, on_progress) -> (parts, passages embedded)
EmbedFn = Callable[..., tuple[dict, int]]


def embed_articles(articles: Sequence, embedder: Embedder, cfg: Config,
                   progress: bool = False, step=lambda phase, done, total: None):
    """Chunk, sentence-split and embed ``articles``. Identical passages (same text and
    sentence spans) are embedded once. Returns ({id: (chunks, sentences, cvec, svec)},
    number of passages embedded). Only ``id`` and ``text`` of each article are read. A
    passage's vectors depend on its text alone, so any grouping of the articles over
    calls, processes or machines gives the same parts.

    Chunking runs in a thread that hands over groups of :data:`EMBED_GROUP` new passages;
    this thread embeds each group as it comes (the model releases the GIL), so splitting
    hides behind embedding instead of running before it."""
    from ..ingest.progress import progress_bar

    splitter = OffsetTextSplitter(length_function=embedder.count_tokens,
                                  # a model that reads less than the setting: its limit
                                  chunk_size=min(cfg.chunk_tokens, embedder.max_tokens),
                                  chunk_overlap=cfg.chunk_overlap)
    plans: list = [None] * len(articles)  # per article: list of (start, end, spans, passage)
    unique: dict[tuple, int] = {}
    texts, spans = [], []
    handoff: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()

    def chunk_all() -> None:
        try:
            sent = 0
            for i, a in enumerate(articles):
                if stop.is_set():
                    return
                sents = split_sentences(a.text)
                plan = []
                for s, e in splitter.split_spans(a.text):
                    inside = sentences_in(sents, s, e) or [(s, e)]
                    key = (a.text[s:e], tuple((x - s, y - s) for x, y in inside))
                    if key not in unique:
                        unique[key] = len(texts)
                        spans.append(list(key[1]))
                        texts.append(key[0])
                    plan.append((s, e, inside, unique[key]))
                plans[i] = plan
                if len(texts) - sent >= EMBED_GROUP:
                    sent = len(texts)
                    handoff.put(sent)
            handoff.put(len(texts))
            handoff.put(None)
        except BaseException as exc:  # handed to the embedding thread, which raises it
            handoff.put(exc)

    worker = threading.Thread(target=chunk_all, name="rag-chunking", daemon=True)
    worker.start()
    cparts, sparts, done = [], [], 0
    embedded = [0]  # passages embedded so far, for on_progress
    try:
        with progress_bar(total=0, desc="embedding", unit="chunk", enabled=progress) as bar:
            while (item := handoff.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                if item > done:
                    bar.total = item

                    def advance(n: int, total: int = item) -> None:
                        bar.update(n)  # (a disabled bar counts nothing: count here)
                        embedded[0] += n
                        step("embedding", embedded[0], total)

                    step("embedding", embedded[0], item)
                    cv, sv = embedder.embed_passages(texts[done:item], spans[done:item],
                                                     progress=advance)
                    cparts.append(cv)
                    sparts.extend(sv)
                    done = item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                handoff.get(timeout=0.1)
            except queue.Empty:
                pass
    cvec = np.concatenate(cparts) if cparts else np.zeros((0, embedder.dim), np.float32)
    svecs = sparts
    parts = {}
    for a, plan in zip(articles, plans):
        chunks = [(s, e) for s, e, _, _ in plan]
        sentences = [span for _, _, inside, _ in plan for span in inside]
        cv = cvec[[u for *_, u in plan]] if plan else np.zeros((0, embedder.dim), np.float32)
        sv = np.concatenate([svecs[u] for *_, u in plan]) if plan else \
            np.zeros((0, embedder.dim), np.float32)
        counts = [len(inside) for _, _, inside, _ in plan]
        parts[a.id] = (chunks, counts, sentences, cv, sv)
    return parts, len(texts)


def _assemble(articles, new_parts, dim) -> IndexData:
    """One segment's data: the embedded parts of ``articles``, in their order, rows and
    sentences numbered from 0."""
    chunk_rows, sent_rows, cvecs, svecs = [], [], [], []
    n_sent = 0
    for row, a in enumerate(articles):
        chunks, counts, sentences, cv, sv = new_parts[a.id]
        bounds = np.cumsum([0, *counts]) + n_sent
        ch = np.array([(row, s, e, bounds[i], bounds[i + 1]) for i, (s, e) in enumerate(chunks)],
                      dtype=np.int64).reshape(-1, 5)
        chunk_rows.append(ch)
        sent_rows.append(np.array(sentences, dtype=np.int64).reshape(-1, 2))
        cvecs.append(cv)
        svecs.append(sv.astype(np.float16))
        n_sent += len(sentences)
    return IndexData(
        articles=list(articles),
        chunks=np.concatenate(chunk_rows).astype(np.int32),
        sentences=np.concatenate(sent_rows).astype(np.int32),
        chunk_vectors=np.ascontiguousarray(np.concatenate(cvecs), dtype=np.float32),
        sentence_vectors=np.ascontiguousarray(np.concatenate(svecs), dtype=np.float16))


@contextlib.contextmanager
def collector_paused():
    """Pause Python's cyclic garbage collector for a build (``gc.disable``; enabled again
    on leaving only if it was enabled on entering). A build makes a few long-lived
    objects per article (claims, articles, maps): with the collector on, the
    collections it triggers walk every object made so far, again and again, as the heap
    grows (1,983 collections, 1.1-1.6 s of a 3.4-3.7 s one-article command-line build
    at 100k articles; 2.1 s without). A build makes no garbage cycles worth collecting
    meanwhile: its objects are freed by reference counting. Process-wide, so answering
    threads meanwhile run without cyclic collection too, for the build's seconds."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


LOCK_NAME = ".build.lock"
# what a build leaves in an index folder besides the index itself: removed with the
# lock when no index is there (an empty folder's build, a first build that failed)
_SCRATCH = (LOCK_NAME, ".parsed", SOURCE_CACHE)


class _build_lock:
    """The index folder's build lock: ``flock`` on ``<index_dir>/.build.lock`` (the file
    ``filelock.FileLock`` locks too). Makes the folder; waits up to ``timeout`` seconds
    for another build, saying so, then raises :class:`BuildError`.

    On leaving, a folder that holds no index (nothing but the lock file, the reader's
    cache and unfinished ``.tmp-*`` versions) is cleared, and removed when this build
    made it: a build that indexed nothing leaves nothing. A build waiting meanwhile
    locks the file it finds at the path afterwards (it checks that the file it locked
    is still the one there, not a removed one), so two builds never overlap."""

    def __init__(self, index_dir: Path, timeout: float, say) -> None:
        self._dir, self._timeout, self._say = Path(index_dir), timeout, say
        self._path = self._dir / LOCK_NAME
        self._fd: int | None = None
        self._made = False  # this build made the folder

    def __enter__(self):
        deadline, told = time.monotonic() + self._timeout, False
        while True:
            if not self._dir.is_dir():
                self._dir.mkdir(parents=True, exist_ok=True)
                self._made = True
            state = self._try_lock()
            if state == "locked":
                return self
            if state == "gone":  # the holder removed the folder or the lock: again now
                continue
            if not told:
                self._say(f"another build is writing {self._dir}; waiting for it to finish")
                told = True
            if time.monotonic() >= deadline:
                raise BuildError(f"another build is still writing {self._dir} after "
                                 f"{self._timeout:.0f} s; try again when it has finished")
            time.sleep(0.05)

    def _try_lock(self) -> str:
        """"locked" (``self._fd`` holds it), "busy" (another build holds it) or "gone"
        (the folder or the file was removed under us)."""
        import fcntl
        import os

        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            return "gone"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return "busy"
        try:
            here = os.stat(self._path)
            mine = os.fstat(fd)
            same = (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)  # closing releases the flock
            return "gone"
        self._fd = fd
        return "locked"

    def __exit__(self, *exc):
        import os

        try:
            _clear_if_no_index(self._dir, remove_folder=self._made)
        finally:  # the lock goes last: a waiter then finds the path as it is now
            os.close(self._fd)
            self._fd = None
        return False


def _clear_if_no_index(folder: Path, remove_folder: bool) -> None:
    """Remove the lock, the cache and ``.tmp-*`` from ``folder`` when that is all it
    holds, and then ``folder`` itself when ``remove_folder``. Call holding the lock."""
    import shutil

    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return
    if any(n not in _SCRATCH and not n.startswith(".tmp-") for n in names):
        return  # an index (or something else that is not ours): keep all of it
    for name in names:
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if remove_folder:
        try:
            folder.rmdir()
        except OSError:  # something arrived meanwhile, or a mount point: leave it
            pass
