"""Background builds for the API: ``POST /api/builds`` starts one, ``GET
/api/builds/{id}`` reads its progress.

One build runs at a time per :class:`BuildJobs` (a second start returns the running
job). Progress comes from :func:`rag.build`'s ``on_progress``: the phase (``queued``,
``fetching``, ``reading``, ``embedding``, ``writing``, ``done``) and, while embedding,
passages done of the total. The last :data:`KEEP` jobs are remembered. Thread-safe.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, replace

from ..types import BuildReport, RagError

KEEP = 20


@dataclass(frozen=True)
class BuildJob:
    """A build started through the API. ``state``: ``running``, ``done`` or ``failed``
    (``error`` says why; the live index is then unchanged). ``done``/``total``: passages
    embedded so far and to embed (0/0 outside the embedding phase)."""

    id: str
    state: str
    phase: str
    done: int = 0
    total: int = 0
    started: str = ""
    finished: str | None = None
    seconds: float = 0.0
    rebuild: bool = False
    error: str = ""
    report: BuildReport | None = None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class BuildJobs:
    """Runs builds of ``library`` (a :class:`rag.app.library.Library`) in threads."""

    def __init__(self, library) -> None:
        self.library = library
        self._jobs: dict[str, BuildJob] = {}
        self._lock = threading.Lock()
        self._running: str | None = None

    def start(self, rebuild: bool = False) -> tuple[BuildJob, bool]:
        """(the job, True) for a new build, or (the running job, False)."""
        with self._lock:
            if self._running is not None:
                return self._jobs[self._running], False
            job = BuildJob(id=uuid.uuid4().hex[:12], state="running", phase="queued",
                           started=_now(), rebuild=rebuild)
            self._jobs[job.id] = job
            self._running = job.id
            while len(self._jobs) > KEEP:
                self._jobs.pop(next(iter(self._jobs)))
        threading.Thread(target=self._run, args=(job.id, rebuild), daemon=True,
                         name=f"rag-build-{job.id}").start()
        return job, True

    def get(self, job_id: str) -> BuildJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def latest(self) -> BuildJob | None:
        with self._lock:
            return next(reversed(self._jobs.values()), None)

    def wait(self, job_id: str, timeout: float = 600.0) -> BuildJob | None:
        """The job once it has finished (or as it is after ``timeout`` seconds)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            job = self.get(job_id)
            if job is None or job.state != "running":
                return job
            time.sleep(0.05)
        return self.get(job_id)

    def _set(self, job_id: str, **changes) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._jobs[job_id] = replace(self._jobs[job_id], **changes)

    def _run(self, job_id: str, rebuild: bool) -> None:
        t0 = time.perf_counter()

        def progress(phase: str, done: int, total: int) -> None:
            self._set(job_id, phase=phase, done=done, total=total,
                      seconds=round(time.perf_counter() - t0, 2))

        try:
            report = self.library.update(rebuild=rebuild, on_progress=progress)
            self._set(job_id, state="done", phase="done", report=report)
        except (RagError, OSError) as exc:
            self._set(job_id, state="failed", error=f"{exc}; the live index is unchanged")
        except Exception as exc:  # noqa: BLE001 - reported on the job, never lost
            self._set(job_id, state="failed",
                      error=f"unexpected {type(exc).__name__}: {exc}; the live index is "
                            "unchanged")
        finally:
            self._set(job_id, finished=_now(), seconds=round(time.perf_counter() - t0, 2))
            with self._lock:
                self._running = None
