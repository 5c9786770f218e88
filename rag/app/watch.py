"""Keep the index current while the app runs: a watched folder and scheduled feed polls.

:class:`Updater` runs one background thread that

- with ``watch``: waits for file changes in the source folder (watchfiles, debounced:
  a burst of saves or a copied folder becomes one change set) and then runs an
  incremental build (:func:`rag.build`): only changed articles are embedded, and the new
  version is published atomically, so questions keep being answered from the previous
  version until the new one is complete (``rag.ask`` switches on its next question);
- with ``poll_seconds``: polls the remembered RSS/Atom feeds every ``poll_seconds``
  (``--poll 30m``) as part of a build.

A build while watching looks only at the paths the watcher reported (issue 26: adding one
file to a folder of 100k does not walk the folder; a feed poll looks at the web folder
it saves pages in too); the first build, one after the watcher failed, one at least
:data:`RESCAN_SECONDS` after the last walk, and every build of a process that polls
without watching walk the whole folder.

Hidden files and folders (names starting with ``.``: upload staging, the feed state),
files the loader does not read, and the index folder itself are ignored. A failed build
never stops the thread: the error is kept in :attr:`Updater.status` and the previous
version stays live. What a build could not index (a damaged PDF, a feed item whose page is
gone) is never silent: each new one is logged as ``rag: <item> skipped: <reason>``, and
:attr:`UpdateStatus.skipped` (``/api/status``, the Articles tab) lists them all until
they are fixed or removed. :meth:`Updater.status` is thread-safe.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..ingest.loaders import SUPPORTED_SUFFIXES
from ..types import BuildReport, Fetched, RagError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT = {"": 60, "s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_POLL_SECONDS = 60.0  # politeness towards the feeds' servers
RESCAN_SECONDS = 3600.0  # a watching process walks the whole folder at least this often


def parse_duration(text: str) -> float:
    """``"30m"``, ``"2h"``, ``"90s"``, ``"1d"`` or a bare number of minutes -> seconds.
    Raises ValueError with a readable message (at least :data:`MIN_POLL_SECONDS`)."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"cannot read the interval {text!r}: use e.g. 30m, 2h or 90s")
    seconds = float(m.group(1)) * _UNIT[m.group(2).lower()]
    if seconds < MIN_POLL_SECONDS:
        raise ValueError(f"the poll interval must be at least {MIN_POLL_SECONDS:.0f} s "
                         f"(got {text!r})")
    return seconds


@dataclass(frozen=True)
class UpdateStatus:
    """What the updater last did. ``last_report`` is the last build's report (None before
    the first); ``error`` the last failure's message ("" when the last build worked)."""

    watching: bool
    poll_seconds: float | None
    last_run: float | None = None  # time.time() of the last finished build
    last_changed: float | None = None  # ... of the last build that changed the index
    last_report: BuildReport | None = None
    last_changes: BuildReport | None = None  # the last report with changes
    error: str = ""
    builds: int = 0
    # (item, reason) not indexed: the files of the last build, and the web pages and
    # feed items of the last build that fetched (one without a poll does not forget them)
    skipped_files: tuple[tuple[str, str], ...] = ()
    skipped_web: tuple[Fetched, ...] = ()

    @property
    def skipped(self) -> tuple[tuple[str, str], ...]:
        return self.skipped_files + tuple((f.item, f.reason) for f in self.skipped_web)


class Updater:
    """Background updates of ``cfg.index_dir`` from ``cfg.source``; see the module doc.

    ``start()`` / ``stop()`` (idempotent); ``trigger()`` asks for a build now (the feed
    poll included when ``poll=True``). ``debounce_ms`` is how long the folder must be
    quiet before a build starts."""

    def __init__(self, cfg: Config, *, watch: bool = True, poll_seconds: float | None = None,
                 debounce_ms: int = 1500, log=print) -> None:
        self.cfg = cfg
        self.watch = watch
        self.poll_seconds = poll_seconds
        self.debounce_ms = debounce_ms
        self._log = log or (lambda m: None)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._poll_now = False
        self._lock = threading.Lock()
        self._status = UpdateStatus(watching=watch, poll_seconds=poll_seconds)
        self._threads: list[threading.Thread] = []
        self._next_poll = time.monotonic() + poll_seconds if poll_seconds else None
        self._src = Path(cfg.source).resolve()
        self._index = Path(cfg.index_dir).resolve()
        # paths the watcher reported since the last build; None: unknown (walk the folder)
        self._changed: set[str] | None = None
        self._walked_at = float("-inf")
        self._warm: threading.Thread | None = None  # warm_up, at start

    # -- public --------------------------------------------------------------------

    def start(self) -> "Updater":
        if self._threads:
            return self
        self._warm = threading.Thread(target=warm_up, args=(self.cfg,), name="rag-warm-up",
                                      daemon=True)
        self._warm.start()
        worker = threading.Thread(target=self._run, name="rag-updater", daemon=True)
        self._threads.append(worker)
        if self.watch:
            watcher = threading.Thread(target=self._watch, name="rag-watch", daemon=True)
            self._threads.append(watcher)
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def trigger(self, poll: bool = False) -> None:
        with self._lock:
            self._poll_now = self._poll_now or poll
        self._wake.set()

    @property
    def status(self) -> UpdateStatus:
        with self._lock:
            return self._status

    # -- threads -------------------------------------------------------------------

    def _relevant(self, change, path: str) -> bool:
        p = Path(path)
        try:
            real = p.resolve()
            rel = real.relative_to(self._src)
        except (ValueError, OSError):
            return False
        if self._index == real or self._index in real.parents:
            return False
        if any(part.startswith(".") for part in rel.parts):
            return False
        # a deleted or renamed folder reports only its own path: let it through
        return p.suffix.lower() in SUPPORTED_SUFFIXES or not p.suffix

    def _watch(self) -> None:
        import watchfiles

        while not self._stop.is_set():
            try:
                for changes in watchfiles.watch(self._src, watch_filter=self._relevant,
                                                debounce=self.debounce_ms,
                                                stop_event=self._stop, raise_interrupt=False,
                                                ignore_permission_denied=True):
                    if changes:
                        with self._lock:
                            if self._changed is not None:
                                self._changed.update(path for _, path in changes)
                        self._log(f"rag: {len(changes)} change(s) in {self.cfg.source}; "
                                  "updating the index")
                        self._wake.set()
            except Exception as exc:  # the folder vanished, too many watches...
                with self._lock:
                    self._changed = None  # changes may have been missed: walk next time
                self._set(error=f"watching {self.cfg.source} failed: {exc}")
                self._stop.wait(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            timeout = None
            if self._next_poll is not None:
                timeout = max(0.0, self._next_poll - time.monotonic())
            woke = self._wake.wait(timeout)
            if self._stop.is_set():
                return
            self._wake.clear()
            with self._lock:
                poll, self._poll_now = self._poll_now, False
            if self._next_poll is not None and time.monotonic() >= self._next_poll:
                poll = True
                self._next_poll = time.monotonic() + self.poll_seconds
            if woke or poll:
                self._build(poll)

    def _changes(self, poll: bool) -> list[str] | None:
        """The paths to look at in this build, or None to walk the whole folder; from
        now on the watcher collects for the next build."""
        with self._lock:
            changed, self._changed = self._changed, set() if self.watch else None
        # a poll while watching needs no walk either: what it fetches lands in the web
        # folder, which the build looks at again when something was fetched
        if changed is None or time.monotonic() - self._walked_at > RESCAN_SECONDS:
            self._walked_at = time.monotonic()
            return None
        return sorted(changed)

    def _lost_changes(self) -> None:
        """A build failed: the paths it took are not indexed; the next one walks."""
        with self._lock:
            self._changed = None

    def _build(self, poll: bool) -> None:
        from ..index.build import build

        changed = self._changes(poll)
        try:
            report = build(config=self.cfg, poll=poll, progress=False, changed=changed)
        except (RagError, OSError) as exc:
            self._lost_changes()
            self._log(f"rag: the index was not updated: {exc}")
            self._set(error=str(exc), ran=True)
            return
        except Exception as exc:  # never let the thread die; keep the previous index
            self._lost_changes()
            self._log(f"rag: the index was not updated (unexpected error): {exc!r}")
            self._set(error=f"unexpected error: {exc!r}", ran=True)
            return
        if changed is None:
            settle_memory()
        if self.cfg.fold_copies:  # a merge may have made a large segment: index its keys
            from ..index.segments import warm_band_keys

            warm_band_keys(self._index)  # never raises; ~0 s when all are indexed
        if report.changed:
            self._log("rag: index updated\n" + report.summary())
        before = set(self.status.skipped)
        files, web = skips_of(report, self.status.skipped_web)
        for item, reason in files + tuple((f.item, f.reason) for f in web):
            if (item, reason) not in before:  # said once, listed in the status until gone
                self._log(f"rag: {item} skipped: {reason}")
        self._set(report=report, ran=True, skipped=(files, web))

    def _set(self, *, report: BuildReport | None = None, error: str = "",
             ran: bool = False, skipped: tuple[tuple, tuple] | None = None) -> None:
        """A new status; ``skipped``: (files, web items) of a build (:func:`skips_of`)."""
        with self._lock:
            s = self._status
            now = time.time()
            changed = report is not None and report.changed
            self._status = UpdateStatus(
                watching=s.watching, poll_seconds=s.poll_seconds,
                last_run=now if ran else s.last_run,
                last_changed=now if changed else s.last_changed,
                last_report=report if report is not None else s.last_report,
                last_changes=report if changed else s.last_changes,
                error=error, builds=s.builds + (1 if ran else 0),
                skipped_files=s.skipped_files if skipped is None else skipped[0],
                skipped_web=s.skipped_web if skipped is None else skipped[1])


# CPython 3.11 keeps one AST recursion counter per interpreter, so two threads parsing at
# once can fail with "SystemError: AST constructor recursion depth mismatch": numpy reads
# an .npy header with ast.literal_eval (the warm-up loads the detector's arrays and the
# copy signatures) while pydantic reads model docstrings with ast.parse as the app is
# made. Seen once in CI (a browser test's server start); the two take turns on this lock.
PARSING = threading.Lock()


def warm_up(cfg: Config | None = None) -> None:
    """Load what the first change would otherwise wait for: the language detector (~0.7 s
    on its first use; a build detects its new articles' languages) and, with ``cfg``
    folding copies, the band keys of its index's stored copy signatures (~1 s at 100k
    articles; :func:`rag.index.segments.warm_band_keys`). Called off the build thread
    when an :class:`Updater` starts, holding :data:`PARSING`; never raises."""
    with PARSING:
        try:
            from ..ingest.language import detect

            detect("warm up")
        except Exception:  # noqa: BLE001 - a build loads it again, and says what failed
            pass
        if cfg is not None and cfg.fold_copies and cfg.index_dir is not None:
            from ..index.segments import warm_band_keys

            warm_band_keys(Path(cfg.index_dir))  # never raises


def settle_memory() -> None:
    """After a build that walked the folder: ready the loaded state for patching
    (:func:`rag.ingest.loaders.prepare_patches`), collect, then move every object this
    process holds out of the garbage collector's later passes (``gc.freeze``). Such a
    build leaves the folder's loaded state (a few objects per article) for the life of
    the process, and a full collection then walks all of it: ~0.35 s inside some
    later one-article build at 100k articles (measured with ``gc.callbacks``). Objects
    dropped later are still freed (by reference counting; the loaded state holds no
    cycles). Never raises."""
    import gc

    from ..ingest.loaders import prepare_patches

    try:
        prepare_patches()  # (the counts a watched load patches: ~0.1 s at 100k, now)
        gc.collect()
        gc.freeze()
    except Exception:  # noqa: BLE001 - a tuning step, not a correctness one
        pass


def skips_of(report: BuildReport, before: tuple[Fetched, ...] = ()
             ) -> tuple[tuple[tuple[str, str], ...], tuple[Fetched, ...]]:
    """What ``report`` did not index: (path, reason) of its skipped files, and its
    skipped web pages and feed items, with those of ``before`` (earlier polls) that
    still hold: all of them when it fetched nothing, those of the feeds that answered
    "not modified" (their items were not read again) when it did."""
    files = tuple((s.path, s.reason) for s in report.skipped)
    if not report.fetched:
        return files, before
    same = {f.origin for f in report.fetched if f.action == "not modified"}
    web = tuple(f for f in before if f.origin in same) + \
        tuple(f for f in report.fetched if f.action == "skipped")
    return files, web


def index_status(cfg: Config, updater=None) -> dict:
    """The live version (``version``, ``created``, ``articles``) and, with an updater,
    ``watching``, ``poll_seconds``, ``last_run``, ``last_changed`` (ISO times),
    ``last_changes`` (the summary of the last build that changed the index),
    ``update_error`` and ``skipped`` (``[{"item", "reason"}]``: what is not indexed,
    :attr:`UpdateStatus.skipped`). Never raises: a missing or damaged index is
    ``{"error": ...}``."""
    import time as _time
    from pathlib import Path

    from ..index.shards import is_cluster, read_cluster
    from ..index.segments import describe
    from ..index.store import read_manifest

    def iso(t):
        return _time.strftime("%Y-%m-%dT%H:%M:%S%z", _time.localtime(t)) if t else None

    out: dict = {}
    try:
        if is_cluster(Path(cfg.index_dir)):  # a sharded index: its cluster manifest
            _, manifest = read_cluster(Path(cfg.index_dir))
            out.update(version=manifest.get("name"), created=manifest.get("created"),
                       articles=manifest.get("counts", {}).get("articles"),
                       shards=manifest.get("shards"))
        else:
            # the manifest alone: the UI's timer asks every 5 s per open page, and
            # verifying would hash every index file each time
            _, manifest = read_manifest(Path(cfg.index_dir), verify=False)
            out.update(version=manifest.get("version"), created=manifest.get("created"),
                       articles=manifest.get("counts", {}).get("articles"),
                       model=manifest.get("model"), **describe(manifest))
    except RagError as exc:
        out["error"] = str(exc)
    if updater is not None:
        s = updater.status
        out.update(watching=s.watching, poll_seconds=s.poll_seconds, last_run=iso(s.last_run),
                   last_changed=iso(s.last_changed),
                   last_changes=s.last_changes.summary() if s.last_changes else None,
                   update_error=s.error or None,
                   skipped=[{"item": item, "reason": reason} for item, reason in s.skipped])
    return out
