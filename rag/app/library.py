"""Article management for the web front end: list, add (upload) and remove articles.

Glue over :mod:`rag.ingest.loaders` and :func:`rag.build`; nothing here answers questions.

Contracts:

- An upload is checked before anything is written: supported suffix, at most
  ``Config.max_upload_bytes``, it must yield at least one article, and none of its
  article ids may be one the live index already holds (another file's article). Its file name is
  sanitised (the base name only, ``[A-Za-z0-9._-]``, no leading dot, no overwrite of an
  existing file: ``name-2.txt`` ...), so it always lands directly inside ``Config.source``.
- After saving, an incremental build runs. If the build fails, the saved files are
  deleted again; since builds publish atomically, the index is as it was.
- Removal deletes one file of ``Config.source`` (only a file the folder listing holds,
  resolved inside the folder) and rebuilds; if the build fails, the file is restored.
- One change at a time per :class:`Library` (a lock); asking questions meanwhile is safe
  (``rag.ask`` switches to the new index version when it is published).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import Config
from ..ingest.loaders import iter_source_files, load_file
from ..ingest.sandbox import reader_for, reading
from ..types import BuildReport, RagError

UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".json", ".jsonl", ".pdf", ".docx")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def sanitize_filename(name: str, max_len: int = 100) -> str:
    """A safe base name for an uploaded file: no folders, no leading dots, only
    ``[A-Za-z0-9._-]`` (other characters become ``_``), the suffix lower-cased, at most
    ``max_len`` characters. Never empty ("upload" + suffix)."""
    base = str(name).replace("\\", "/").split("/")[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = _UNSAFE.sub("_", stem).strip("._-") or "upload"
    suffix = _UNSAFE.sub("", suffix).lower()
    ext = f".{suffix}" if suffix else ""
    return stem[: max(1, max_len - len(ext))] + ext


@dataclass(frozen=True)
class ChangeResult:
    """What an upload or removal did: ``ok``, a message for a person, the build report."""

    ok: bool
    message: str
    report: BuildReport | None = None
    saved: tuple[str, ...] = ()


class Library:
    """The articles of ``cfg.source`` and their index. Thread-safe."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()

    # -- reading --------------------------------------------------------------

    def articles(self) -> list[dict[str, Any]]:
        """Rows of the live index (id, title, source, url, published, chunks).
        Raises IndexMissing / IndexMismatch."""
        from ..index.live import load_index

        return load_index(Path(self.cfg.index_dir), self.cfg).list_articles()

    def article(self, article_id: str):
        """The indexed :class:`~rag.types.Article` with this id, or None (one index or a
        sharded one)."""
        from ..answer.pipeline import get_article
        from ..types import ArticleNotFound

        try:
            return get_article(article_id, config=self.cfg)
        except ArticleNotFound:
            return None

    def files(self) -> list[str]:
        """Relative paths (POSIX) of the article files in the source folder."""
        src = Path(self.cfg.source)
        if not src.is_dir():
            return []
        return [p.relative_to(src).as_posix() for p in iter_source_files(src)]

    # -- changing -------------------------------------------------------------

    def add(self, uploads: list[tuple[str, str]], log: Callable[[str], None] | None = None,
            progress: bool = False) -> ChangeResult:
        """Save ``uploads`` ([(path of the uploaded bytes, original file name)]) into the
        source folder and update the index. Nothing is saved unless every file passes."""
        if not uploads:
            return ChangeResult(False, "Choose a file to upload.")
        src = Path(self.cfg.source)
        if not src.is_dir():
            return ChangeResult(False, f"The articles folder {src} does not exist.")
        with self._lock:
            # staged in a hidden folder inside the source (ingest skips hidden folders),
            # so the final move is a rename on the same file system
            stage = Path(tempfile.mkdtemp(prefix=".upload-", dir=src))
            saved: list[Path] = []
            try:
                problems, checked = [], []
                for path, original in uploads:
                    why = self._check(Path(path), original, stage, checked)
                    if why:
                        problems.append(f"{original}: {why}")
                problems += self._taken_ids(checked)
                if problems:
                    return ChangeResult(False, "Nothing was added. " + " ".join(problems))
                try:
                    for staged, _ in checked:
                        target = _free_name(src, staged.name)
                        os.replace(staged, target)
                        saved.append(target)
                    report = self._build(log, progress)
                except (RagError, OSError) as exc:
                    for p in saved:
                        p.unlink(missing_ok=True)
                    return ChangeResult(False, "The upload failed and was undone; the index "
                                               f"is unchanged. ({exc})")
            finally:
                shutil.rmtree(stage, ignore_errors=True)
        n = sum(len(ids) for _, ids in checked)
        names = tuple(p.name for p in saved)
        return ChangeResult(True, f"Added {', '.join(names)} ({_n(n, 'article')}). "
                                  + _after(report), report, names)

    def _check(self, path: Path, original: str, stage: Path, checked: list) -> str:
        """Copy one upload into ``stage`` under its sanitised name and read it; returns
        why it is refused ("" when it is fine, then appended to ``checked``)."""
        name = sanitize_filename(original)
        if Path(name).suffix not in UPLOAD_SUFFIXES:
            return f"only {', '.join(UPLOAD_SUFFIXES)} files can be added"
        size = os.path.getsize(path)
        if size > self.cfg.max_upload_bytes:
            return f"{size:,} bytes is over the limit of {self.cfg.max_upload_bytes:,} bytes"
        # staged under the name it will have in the folder: a file's id is that name
        taken = {p.name for p in stage.iterdir()}
        staged = stage / _free_name(Path(self.cfg.source), name, taken).name
        shutil.copyfile(path, staged)
        try:  # a PDF or DOCX: read by a limited worker and cached, so the build reuses it
            with reading(reader_for(self.cfg)):
                found, skipped = load_file(staged, staged.name,
                                           max_file_bytes=self.cfg.max_upload_bytes,
                                           max_pdf_pages=self.cfg.max_pdf_pages)
        except (OSError, RagError, ValueError) as exc:
            found, skipped = [], [exc]
        if not found:
            why = "; ".join(getattr(s, "reason", str(s)) for s in skipped) or "no text"
            return f"no article could be read from it ({why})"
        checked.append((staged, tuple(a.id for a in found)))
        return ""

    def _taken_ids(self, checked: list[tuple[Path, tuple[str, ...]]]) -> list[str]:
        """Why uploads are refused for their ids: an id the live index already holds
        (it belongs to another file: an upload must not replace or hide it, issue 22), or
        one an earlier file of the same upload declares. Uploads always get a new file
        name, so any such id is another file's."""
        try:
            taken = {row["id"] for row in self.articles()}
        except RagError:  # no index yet (or an unreadable one): nothing to take over
            taken = set()
        problems = []
        for staged, ids in checked:
            clash = sorted({i for i in ids if i in taken})
            if clash:
                shown = ", ".join(repr(i) for i in clash[:5]) + (" ..." if len(clash) > 5
                                                                  else "")
                problems.append(f"{staged.name}: the articles folder already has an article "
                                f"with the id {shown}; give the record another id.")
            taken.update(ids)
        return problems

    def remove(self, rel: str, log: Callable[[str], None] | None = None,
               progress: bool = False) -> ChangeResult:
        """Delete the source file ``rel`` (a path :meth:`files` lists) and update the index."""
        src = Path(self.cfg.source)
        with self._lock:
            if rel not in self.files():
                return ChangeResult(False, f"{rel!r} is not an article file of {src}.")
            target = (src / rel).resolve()
            if src.resolve() not in target.parents or not target.is_file():
                return ChangeResult(False, f"{rel!r} is not inside the articles folder.")
            data = target.read_bytes()
            target.unlink()
            try:
                report = self._build(log, progress)
            except (RagError, OSError) as exc:
                target.write_bytes(data)
                hint = (" (an index needs at least one article)"
                        if "no readable article" in str(exc) else "")
                return ChangeResult(False, f"{rel} was not removed{hint}: {exc}")
        return ChangeResult(True, f"Removed {rel}. " + _after(report), report)

    def add_web(self, urls: list[str] = (), feeds: list[str] = (),
                log: Callable[[str], None] | None = None, progress: bool = False,
                policy=None) -> ChangeResult:
        """Fetch web pages (``urls``) and subscribe to feeds (``feeds``), then update the
        index (:func:`rag.build` with ``urls``/``feeds``). Pages that cannot be fetched
        are reported with their reason; the rest is added. ``ok`` is False only when
        nothing could be added and something was asked for."""
        urls = [u.strip() for u in urls if u and u.strip()]
        feeds = [u.strip() for u in feeds if u and u.strip()]
        if not urls and not feeds:
            return ChangeResult(False, "Enter the address of a web page or a feed.")
        if not Path(self.cfg.source).is_dir():
            return ChangeResult(False, f"The articles folder {self.cfg.source} does not exist.")
        with self._lock:
            try:
                report = self._build(log, progress, urls=urls, feeds=feeds, poll=False,
                                     fetch_policy=policy)
            except (RagError, OSError) as exc:
                return ChangeResult(False, f"The index was not updated: {exc}")
        done = [f for f in report.fetched if f.action != "skipped"]
        skipped = [f for f in report.fetched if f.action == "skipped"]
        parts = []
        counts: dict[str, int] = {}
        for f in done:
            counts[f.action] = counts.get(f.action, 0) + 1
        if counts:
            parts.append("Fetched: " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
                         + ".")
        for f in [f for f in done if f.reason][:5]:  # e.g. kept from the feed's text only
            parts.append(f"{f.action.capitalize()} {f.item}: {f.reason}.")
        for f in skipped[:5]:
            parts.append(f"Skipped {f.item}: {f.reason}.")
        if len(skipped) > 5:
            parts.append(f"... and {len(skipped) - 5} more skipped.")
        ok = bool(done) or not skipped
        return ChangeResult(ok, " ".join(parts + [_after(report)]), report)

    def remove_feed(self, url: str, delete_items: bool = False,
                    log: Callable[[str], None] | None = None,
                    progress: bool = False) -> ChangeResult:
        """Unsubscribe from the remembered feed ``url`` (builds and ``--poll`` no longer
        poll it); with ``delete_items`` also delete its articles' files (not those another
        feed lists) and update the index, else its articles stay."""
        from ..ingest.web import remove_feed

        src = Path(self.cfg.source)
        with self._lock:
            feed = next((f for f in self.feeds() if f["url"] == url), None)
            if feed is None:
                return ChangeResult(False, f"{url!r} is not a remembered feed.")
            name = feed.get("title") or url
            deleted = remove_feed(src, url, delete_items=delete_items)
            if not deleted:
                stay = ("it had no articles of its own to remove" if delete_items
                        else "its articles stay in the index")
                return ChangeResult(True, f"Unsubscribed from {name}; {stay}.")
            try:
                report = self._build(log, progress)
            except (RagError, OSError) as exc:
                return ChangeResult(False, f"Unsubscribed from {name} and deleted "
                                           f"{_n(len(deleted), 'article')}, but the index was "
                                           f"not updated: {exc}")
        return ChangeResult(True, f"Unsubscribed from {name} and removed "
                                  f"{_n(len(deleted), 'article')}. " + _after(report), report)

    def update(self, rebuild: bool = False, on_progress=None,
               log: Callable[[str], None] | None = None) -> BuildReport:
        """An incremental build of the source folder (``rebuild``: re-embed everything),
        one change at a time with uploads and removals. Raises RagError / OSError."""
        with self._lock:
            return self._build(log, False, rebuild=rebuild, on_progress=on_progress)

    def file_of(self, article_id: str) -> tuple[str | None, str]:
        """(relative path of the one file that holds only this article, "") or (None,
        why it cannot be removed alone): an article that is one record of a JSON Lines
        file with others is not removable by itself. Ids are matched, never opened as
        paths."""
        files = self.files()
        if article_id in files:
            return article_id, ""
        src = Path(self.cfg.source)
        for rel in files:
            if not rel.endswith((".json", ".jsonl")):
                continue
            try:
                arts, _ = load_file(src / rel, rel, max_file_bytes=self.cfg.max_file_bytes)
            except (OSError, ValueError):
                continue
            if any(a.id == article_id for a in arts):
                if len(arts) == 1:
                    return rel, ""
                return None, (f"{article_id!r} is one of {len(arts)} records of {rel}; edit "
                              "that file to remove it")
        return None, f"no article file of {src} holds {article_id!r}"

    def feeds(self) -> list[dict[str, Any]]:
        """The remembered feeds of the source folder (see :func:`rag.ingest.web.list_feeds`)."""
        from ..ingest.web import list_feeds

        src = Path(self.cfg.source)
        return list_feeds(src) if src.is_dir() else []

    def _build(self, log, progress: bool, **kwargs) -> BuildReport:
        from ..index.build import build

        kwargs.setdefault("poll", False)  # feeds are polled by builds and the schedule
        return build(config=self.cfg, log=log, progress=progress, **kwargs)


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'s' * (count != 1)}"


def _after(r: BuildReport) -> str:
    return (f"The index now holds {_n(r.articles, 'article')} ({_n(r.chunks, 'passage')}); "
            f"{_n(r.embedded_chunks, 'passage')} embedded in {r.seconds:.1f} s.")


def _free_name(folder: Path, name: str, taken: set[str] = frozenset()) -> Path:
    """``folder / name``, or ``name-2``, ``name-3``... : the first that does not exist
    and is not in ``taken``."""
    target = folder / name
    stem, suffix = target.stem, target.suffix
    i = 2
    while target.exists() or target.name in taken:
        target = folder / f"{stem}-{i}{suffix}"
        i += 1
    return target

