"""PDF and DOCX reading in a child process under a memory and a time limit, cached by
content.

Why (issue 22): a FlateDecode stream of spaces packs about 1,000:1, so a 2 MB PDF made
PDFium peak at 3.1 GB, and a 1.9 MB DOCX within the zip checks of
:mod:`rag.ingest.documents` took 1.3 GB and 43 s; every build read them again. In this
process nothing bounds what PDFium allocates, so the readers of
:mod:`rag.ingest.documents` run in a worker process (``python -m rag.ingest.sandbox``)
whose address space is capped (``RLIMIT_AS``, ``Config.parse_memory_mb``) and whose CPU
time per document is capped (``RLIMIT_CPU``, ``Config.parse_seconds``, whole seconds).

Contract of :meth:`DocumentReader.read`: the :class:`~rag.ingest.documents.Document`
that ``read_pdf`` / ``read_docx`` give in-process, or :class:`Unreadable` with their
reason, or with one of

* "the document needs more than N MB of memory to read (RAG_PARSE_MEMORY_MB)": the
  worker ran out of its address space (a MemoryError; PDFium's abort when an allocation
  fails: a 256 MB stream under a 200 MB cap ends in SIGABRT; or 2 s at the cap without
  a reply, see :class:`_Watch`);
* "the document takes more than N s to read (RAG_PARSE_SECONDS)": the worker used its
  CPU time (SIGXCPU), or did not answer within ``3 * N + 2`` seconds of wall-clock time
  (then the parent kills it: a starved or stopped worker);
* "the reader crashed on it (SIGSEGV; ...)": any other end of the worker.

One worker serves the documents of one reader (one build, one upload) in turn, and is
replaced after a limit or a crash. The pipe carries JSON and raw bytes, no pickle: a
request is a JSON line ``{"suffix", "size", "max_pages"}`` and ``size`` bytes; the reply
one JSON line, ``{"document": {...}}``, ``{"unreadable": reason}`` or ``{"memory": 1}``.

Cache (with ``cache_dir``, a build's is ``<index>/.parsed``): one JSON file per outcome,
``<sha256 of the bytes>-<variant>.json`` where the variant hashes this reader's code, the
PDFium version, the suffix and (PDF) the page limit, so a new reader never serves an old
reader's text. A document or a refusal is kept for good; a memory or CPU-time outcome
only answers while the limit is not higher than the one that was hit (raise the limit to
read it again); a wall-clock kill is not kept (the machine, not the document). Entries
are written to a temporary file and renamed into place, so a reader sees a whole entry or
none; one that does not parse is read again. :meth:`DocumentReader.prune` removes the
entries one full build did not use.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .documents import MAX_PDF_PAGES, Document, Unreadable

if TYPE_CHECKING:
    from ..config import Config

PARSED_DIR = ".parsed"  # the cache folder inside an index folder
_FORMAT = 2  # of the cache entries and the pipe's messages (2: file_date, not published)
_MEMORY_EXIT = 86  # the worker's exit status after a MemoryError it could not report
_TMP_MAX_AGE = 3600.0  # seconds; older temporary cache files are a killed writer's
_WATCH_EVERY = 0.1  # seconds between two looks at a reading worker
# "at the cap": within 4 MB of it (Python takes memory in 1 MB arenas, glibc in 128 KB
# steps, so a worker that cannot allocate any more sits within about 1 MB)
_AT_CAP_MARGIN = 4 << 20
_AT_CAP_GRACE = 2.0  # seconds at the cap without a reply: out of memory
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# signals that mean the capped address space ran out: PDFium aborts when an allocation
# fails (measured: SIGABRT); SIGKILL not sent by us is the kernel's OOM killer
_OUT_OF_MEMORY = (signal.SIGABRT, signal.SIGKILL)


@dataclass(frozen=True)
class ParseLimits:
    """What one document may take to read: address space of the worker (MB, its own
    ~30 MB included) and CPU seconds (whole seconds: the kernel checks once a second)."""

    memory_mb: int = 1024
    seconds: float = 60.0

    @classmethod
    def of(cls, cfg: Config) -> "ParseLimits":
        return cls(cfg.parse_memory_mb, cfg.parse_seconds)

    @property
    def wall_seconds(self) -> float:
        """When the parent stops waiting: room for a loaded machine (2 cores shared with
        other work ran CPU-bound reading at under half speed)."""
        return 3 * self.seconds + 2


# -------------------------------------------------------------------------- the parent


class DocumentReader:
    """Reads PDF and DOCX bytes in a limited worker process (see the module docstring).
    Use as a context manager, or call :meth:`close`. Thread-safe (one document at a
    time)."""

    def __init__(self, limits: ParseLimits = ParseLimits(),
                 cache_dir: str | Path | None = None) -> None:
        self.limits = limits
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._used: set[str] = set()  # cache entries looked up or written

    def __enter__(self) -> "DocumentReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def worker_pid(self) -> int | None:
        """The running worker's pid, None when none runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def read(self, data: bytes, suffix: str, max_pages: int = MAX_PDF_PAGES) -> Document:
        """The document in ``data`` (``suffix`` ".pdf" or ".docx"), from the cache or the
        worker; raises :class:`Unreadable` with the reason."""
        suffix = suffix.lower()
        if suffix not in (".pdf", ".docx"):
            raise ValueError(f"not a PDF or DOCX suffix: {suffix!r}")
        key = cache_key(data, suffix, max_pages)
        with self._lock:
            self._used.add(key)
            outcome = self._cached(key)
            if outcome is None:
                outcome = self._parse(data, suffix, max_pages)
                if not outcome.get("wall"):
                    self._store(key, outcome)
        return self._result(outcome)

    def close(self) -> None:
        """Stop the worker (it exits when its input ends; killed after 2 s)."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop(proc)

    def prune(self) -> None:
        """Delete the cache entries this reader did not use (call after reading every
        document of the source folder), and temporary files left by killed writers."""
        if self.cache_dir is None or not self.cache_dir.is_dir():
            return
        now = time.time()
        for path in self.cache_dir.iterdir():
            try:
                if path.suffix == ".json" and path.stem not in self._used:
                    path.unlink()
                elif path.name.startswith(".tmp-") and \
                        now - path.stat().st_mtime > _TMP_MAX_AGE:
                    path.unlink()
            except OSError:
                continue

    # -- the worker -----------------------------------------------------------------

    def _parse(self, data: bytes, suffix: str, max_pages: int) -> dict[str, Any]:
        """Ask the worker; the outcome as a plain dict (see :meth:`_result`)."""
        proc = self._worker()
        header = json.dumps({"format": _FORMAT, "suffix": suffix, "size": len(data),
                             "max_pages": max_pages}).encode("ascii") + b"\n"
        with _Watch(proc, self.limits) as watch:
            try:
                proc.stdin.write(header)
                proc.stdin.write(data)
                proc.stdin.flush()
                line = proc.stdout.readline()
            except OSError:  # the worker ended while we wrote (a limit, a crash)
                line = b""
        reply = _parse_reply(line)
        if reply is not None and "memory" not in reply:
            if watch.stopped:  # stopped just after it replied
                self._proc = None
                _stop(proc)
            return reply
        self._proc = None
        _stop(proc)
        code = proc.returncode
        if watch.stopped == "time":
            return {"limit": "time", "seconds": self.limits.seconds, "wall": True}
        if reply is not None or watch.stopped == "memory" or code == _MEMORY_EXIT \
                or -code in _OUT_OF_MEMORY or code < 0 and watch.at_cap:
            return {"limit": "memory", "memory_mb": self.limits.memory_mb}
        if code == -signal.SIGXCPU:
            return {"limit": "time", "seconds": self.limits.seconds}
        return {"crash": _describe_end(code), "memory_mb": self.limits.memory_mb}

    def _worker(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = _start_worker(self.limits)
            weakref.finalize(self, _stop, self._proc)
        return self._proc

    # -- outcomes and the cache -----------------------------------------------------

    def _result(self, outcome: dict[str, Any]) -> Document:
        if "document" in outcome:
            return _document(outcome["document"])
        if "unreadable" in outcome:
            raise Unreadable(outcome["unreadable"])
        mb, seconds = self.limits.memory_mb, self.limits.seconds
        if outcome.get("limit") == "memory":
            raise Unreadable(f"the document needs more than {mb} MB of memory to read "
                             "(RAG_PARSE_MEMORY_MB)")
        if outcome.get("limit") == "time":
            raise Unreadable(f"the document takes more than {seconds:g} s to read "
                             "(RAG_PARSE_SECONDS)")
        raise Unreadable(f"the reader crashed on it ({outcome.get('crash')}; it may need "
                         f"more than {mb} MB of memory: RAG_PARSE_MEMORY_MB)")

    def _cached(self, key: str) -> dict[str, Any] | None:
        """The cached outcome, if there is a whole one that holds under these limits."""
        if self.cache_dir is None:
            return None
        try:
            outcome = json.loads((self.cache_dir / f"{key}.json").read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(outcome, dict) or outcome.get("format") != _FORMAT:
            return None
        if "document" in outcome:
            return outcome if _valid_document(outcome["document"]) else None
        if isinstance(outcome.get("unreadable"), str):
            return outcome
        hit = outcome.get("seconds") if outcome.get("limit") == "time" \
            else outcome.get("memory_mb")
        mine = self.limits.seconds if outcome.get("limit") == "time" \
            else self.limits.memory_mb
        if isinstance(hit, (int, float)) and mine <= hit and \
                (outcome.get("limit") in ("memory", "time") or "crash" in outcome):
            return outcome  # a higher limit than the one hit: read it again
        return None

    def _store(self, key: str, outcome: dict[str, Any]) -> None:
        """Write the entry whole (temporary file, then rename); a failure only costs a
        read next time."""
        if self.cache_dir is None:
            return
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=self.cache_dir, prefix=".tmp-",
                                             suffix=".json", delete=False) as fh:
                fh.write(_dumps({"format": _FORMAT, **outcome}))
            os.replace(fh.name, self.cache_dir / f"{key}.json")
        except OSError:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(fh.name)


class _Watch:
    """Watches the worker while it reads one document, from a thread of the parent:
    kills it at the wall-clock deadline (``stopped = "time"``), or when its address
    space has stayed at the cap for :data:`_AT_CAP_GRACE` seconds without a reply
    (``stopped = "memory"``). Why the second: Python at an exhausted address space does
    not always fail fast; a DOCX of 512 Ki nested paragraphs under a 96 MB cap sometimes
    spun in failing allocations (glibc retrying a new arena with mmap, ~35,000 times a
    second) until the CPU limit, 60 s later. ``at_cap``: whether it was seen there."""

    def __init__(self, proc: subprocess.Popen, limits: ParseLimits) -> None:
        self.proc, self.limits = proc, limits
        self.stopped: str | None = None
        self.at_cap = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rag-parse-watch",
                                        daemon=True)

    def __enter__(self) -> "_Watch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        deadline = time.monotonic() + self.limits.wall_seconds
        cap = self.limits.memory_mb << 20
        near_since = None
        while not self._done.wait(_WATCH_EVERY):
            now = time.monotonic()
            size = _address_space(self.proc.pid)
            if size is not None and size >= cap - _AT_CAP_MARGIN:
                self.at_cap = True
                near_since = near_since or now
            else:
                near_since = None
            if now > deadline:
                self._stop("time")
            elif near_since is not None and now - near_since > _AT_CAP_GRACE:
                self._stop("memory")
            else:
                continue
            return

    def _stop(self, why: str) -> None:
        self.stopped = why
        with contextlib.suppress(OSError):
            self.proc.kill()


def _address_space(pid: int) -> int | None:
    """The address space of process ``pid`` in bytes (what RLIMIT_AS caps), None when
    it cannot be read (it ended; not Linux)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[0]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def cache_key(data: bytes, suffix: str, max_pages: int) -> str:
    """``<sha256 of data>-<variant>``: the variant changes with the reader's code, the
    PDFium version, the suffix and, for a PDF, the page limit."""
    pages = max_pages if suffix == ".pdf" else 0
    variant = hashlib.sha256(f"{_reader_version()}|{suffix}|{pages}".encode()).hexdigest()
    return f"{hashlib.sha256(data).hexdigest()}-{variant[:16]}"


@lru_cache(maxsize=1)
def _reader_version() -> str:
    """A hash of the reading code (documents.py, this file) and the PDFium package."""
    from importlib import metadata

    try:
        pdfium = metadata.version("pypdfium2")
    except metadata.PackageNotFoundError:
        pdfium = ""
    digest = hashlib.sha256(f"{_FORMAT}|{pdfium}".encode())
    for name in ("documents.py", "sandbox.py"):
        digest.update(Path(__file__).with_name(name).read_bytes())
    return digest.hexdigest()


def _start_worker(limits: ParseLimits) -> subprocess.Popen:
    """``python -P -m rag.ingest.sandbox MB SECONDS`` with pipes on stdin and stdout.
    The package is found where this process found it: ``-P`` keeps the working folder
    out of ``sys.path`` (a ``rag`` folder there was imported instead: found by the
    benchmark, run from an old checkout)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (root, env.get("PYTHONPATH"))))
    return subprocess.Popen(
        [sys.executable, "-P", "-m", "rag.ingest.sandbox", str(limits.memory_mb),
         repr(float(limits.seconds))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)


def _stop(proc: subprocess.Popen) -> None:
    """End a worker: close its input (it exits), kill it after 2 s; reap it."""
    with contextlib.suppress(OSError):
        proc.stdin.close()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with contextlib.suppress(OSError):
        proc.stdout.close()


def _describe_end(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def _parse_reply(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n"):
        return None
    try:
        reply = json.loads(line.decode("utf-8", "surrogatepass"))
    except ValueError:
        return None
    if not isinstance(reply, dict):
        return None
    if "document" in reply and _valid_document(reply["document"]):
        return {"document": reply["document"]}
    if isinstance(reply.get("unreadable"), str):
        return {"unreadable": reply["unreadable"]}
    return {"memory": 1} if reply.get("memory") else None


def _valid_document(doc: Any) -> bool:
    return (isinstance(doc, dict) and all(isinstance(doc.get(k), str)
                                          for k in ("title", "author", "text"))
            and (doc.get("file_date") is None or isinstance(doc["file_date"], str))
            and isinstance(doc.get("pages"), list)
            and all(isinstance(p, int) for p in doc["pages"]))


def _document(doc: dict[str, Any]) -> Document:
    return Document(title=doc["title"], author=doc["author"], file_date=doc.get("file_date"),
                    text=doc["text"], pages=tuple(doc["pages"]))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass")


# --------------------------------------------------------------- the active reader

_ACTIVE: contextvars.ContextVar[DocumentReader | None] = contextvars.ContextVar(
    "rag_document_reader", default=None)


@contextlib.contextmanager
def reading(reader: DocumentReader) -> Iterator[DocumentReader]:
    """Make ``reader`` the one :func:`read_document` uses in this context (the loaders
    of one build or one upload check), and close it at the end."""
    token = _ACTIVE.set(reader)
    try:
        with reader:
            yield reader
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def document_reader() -> Iterator[DocumentReader]:
    """The active reader; without one, a reader of default limits and no cache, active
    for the block (its worker starts with the first PDF or DOCX: nothing for a folder
    without any). Loading a folder this way costs one worker, not one per document
    (measured: 0.14 s more per document)."""
    reader = _ACTIVE.get()
    if reader is not None:
        yield reader
        return
    with reading(DocumentReader()) as reader:
        yield reader


def reader_for(cfg: Config) -> DocumentReader:
    """A reader with ``cfg``'s limits, caching in ``<cfg.index_dir>/.parsed``."""
    return DocumentReader(ParseLimits.of(cfg), Path(cfg.index_dir) / PARSED_DIR)


def read_document(data: bytes, suffix: str, max_pages: int = MAX_PDF_PAGES) -> Document:
    """Read with the active reader (:func:`reading`), else with a worker of default
    limits started for this one document (about 0.1 s more), without a cache."""
    reader = _ACTIVE.get()
    if reader is not None:
        return reader.read(data, suffix, max_pages)
    with DocumentReader() as once:
        return once.read(data, suffix, max_pages)


# -------------------------------------------------------------------------- the worker


def _serve(memory_mb: int, seconds: float) -> int:
    """The worker's loop: limits first, then one request at a time until stdin ends.
    Stdout is the reply pipe only (anything a library prints goes to stderr)."""
    import math
    import resource

    from .documents import read_docx, read_pdf

    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file of a 1 GB process
    cap = memory_mb << 20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap if hard == resource.RLIM_INFINITY
                                            or hard > cap else hard))
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    while header := requests.readline():
        try:
            request = json.loads(header)
            data = requests.read(request["size"])
            used = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
            soft = math.ceil(used + seconds)  # SIGXCPU there (the kernel counts seconds)
            if cpu_hard != resource.RLIM_INFINITY:
                soft = min(soft, cpu_hard)
            resource.setrlimit(resource.RLIMIT_CPU, (soft, cpu_hard))
            try:
                if request["suffix"] == ".pdf":
                    doc = read_pdf(data, max_pages=request["max_pages"])
                else:
                    doc = read_docx(data)
                reply = _dumps({"document": {
                    "title": doc.title, "author": doc.author, "file_date": doc.file_date,
                    "text": doc.text, "pages": list(doc.pages)}})
            except Unreadable as exc:
                reply = _dumps({"unreadable": str(exc)})
            del data
        except MemoryError:
            reply = b'{"memory":1}'
        except RecursionError:
            reply = _dumps({"unreadable": "nesting too deep (more levels than Python's "
                                          "recursion limit allows)"})
        except Exception as exc:  # a reader's bug: that document's reason, not the end
            reply = _dumps({"unreadable": f"could not be read ({type(exc).__name__}: "
                                          f"{str(exc)[:200]})"})
        try:
            replies.write(reply + b"\n")
            replies.flush()
        except MemoryError:
            os._exit(_MEMORY_EXIT)
        if reply == b'{"memory":1}':
            return _MEMORY_EXIT  # the heap may be in pieces: the parent starts a new one
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_serve(int(sys.argv[1]), float(sys.argv[2])))
    except MemoryError:
        os._exit(_MEMORY_EXIT)
