"""Document writes run one at a time on a background thread; clients follow each one as a job.

With a folder, each job is kept there as a small JSON file, replaced atomically at every change of
state (not at every progress report), so `GET /jobs/{id}` finds it after a restart. A job that was
running when the service stopped is reported `failed` with the code `interrupted` (the index is never
left half-written); a queued one whose inputs were kept with it (`inputs`) is queued again by the
owner of the runner (`resumable`, then `resume`), one without is `interrupted` too.
"""

import json
import logging
import os
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from .errors import CancelledError, ConflictError, MedragError
from .indexing import Change

log = logging.getLogger("medrag.jobs")
# Finished jobs kept for GET /jobs/{id}; the oldest are forgotten first.
KEEP_FINISHED = 1000

State = Literal["queued", "running", "done", "failed", "cancelled"]
STATES = ("queued", "running", "done", "failed", "cancelled")


@dataclass
class Job:
    """One queued write; `done`/`total` count chunks embedded, `pages_done`/`pages_total` pages parsed."""

    job_id: str
    kind: str
    state: State = "queued"
    done: int = 0
    total: int = 0
    pages_done: int = 0
    pages_total: int = 0
    waiting: bool = False
    error: dict | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    # What the job was asked to do, as JSON, so a queued job can run after a restart (Service knows how).
    inputs: dict | None = None

    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    # Set by `JobRunner.cancel` while the job runs; the work sees it at its next progress report.
    cancel_requested: bool = field(default=False, repr=False, compare=False)

    def progress(self, done: int, total: int) -> None:
        """Chunks embedded so far; raises `CancelledError` once the job is cancelled (nothing is written then)."""
        self.check_cancelled()
        self.waiting = False
        self.done, self.total = done, total

    def pages(self, done: int, total: int) -> None:
        """Pages of the file being parsed read so far (each file counts from 0); the parse runs to its end."""
        self.pages_done, self.pages_total = done, total

    def check_cancelled(self) -> None:
        if self.cancel_requested:
            raise CancelledError("the job was cancelled")

    def mark_waiting(self) -> None:
        """Another writer (the CLI, another process) holds the index lock; this job waits for it."""
        self.waiting = True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (done or failed); False if `timeout` ran out first."""
        return self.finished.wait(timeout)


Work = Callable[[Job], Change]
# The fields of a job written to its file.
KEPT = [f.name for f in fields(Job) if f.name not in ("finished", "cancel_requested")]


class JobRunner:
    """A single writer thread working through queued jobs in order."""

    def __init__(
        self,
        on_change: Callable[[Change], None] = lambda change: None,
        on_finish: Callable[[Job], None] = lambda job: None,
        folder: Path | None = None,
    ):
        self.on_change = on_change
        self.on_finish = on_finish
        self.folder = folder
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[tuple[Job, Work] | None] = queue.Queue()
        self._lock = threading.Lock()
        # Jobs a previous run left queued, with their inputs: the owner queues them again with `resume`.
        self.resumable: list[Job] = []
        for job in self._restore():
            self._jobs[job.job_id] = job
            if not job.finished.is_set():
                self.resumable.append(job)
        self._thread = threading.Thread(target=self._run, name="medrag-writer", daemon=True)
        self._thread.start()

    def submit(self, kind: str, work: Work, inputs: dict | None = None) -> Job:
        job = Job(job_id=secrets.token_urlsafe(12), kind=kind, inputs=inputs)
        with self._lock:
            self._jobs[job.job_id] = job
            finished = [j for j in self._jobs.values() if j.finished_at is not None]
            for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[old.job_id]
                if self.folder is not None:
                    (self.folder / f"{old.job_id}.json").unlink(missing_ok=True)
        self._save(job)
        self._queue.put((job, work))
        return job

    def resume(self, job: Job, work: Work | None, error: dict | None = None) -> None:
        """Queue a job of `resumable` again with its work, or fail it with `error` when there is none."""
        if work is not None:
            self._queue.put((job, work))
            return
        job.state, job.error, job.finished_at = "failed", error, time.time()
        self._finish(job)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a job: a queued one never runs, a running one stops at its next progress report; None if unknown."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            if job.state == "queued":
                job.state = "cancelled"
                job.error = {"detail": "the job was cancelled before it ran", "code": "cancelled"}
                job.finished_at = time.time()
            elif job.state == "running":
                job.cancel_requested = True
                return job
            else:
                raise ConflictError(f"job {job_id} has finished ({job.state}); there is nothing to cancel")
        self._finish(job)
        return job

    def jobs(self) -> list[Job]:
        """Every job held, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def states(self) -> dict[str, int]:
        """How many of the jobs kept are in each state."""
        with self._lock:
            jobs = list(self._jobs.values())
        return {state: sum(job.state == state for job in jobs) for state in STATES}

    def stop(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            job, work = item
            with self._lock:
                if job.state == "cancelled":
                    continue
                job.state = "running"
                job.started_at = time.time()
            self._save(job)
            try:
                job.check_cancelled()
                change = work(job)
            except MedragError as error:
                job.error = {"detail": str(error), "code": error.code}
            except Exception:
                log.exception("job %s (%s) failed", job.job_id, job.kind)
                job.error = {"detail": "internal error; the server log has the details", "code": "internal_error"}
            else:
                job.outcomes = {**job.outcomes, **change.outcomes}  # failures to load were recorded already
                job.version = change.version
                try:
                    self.on_change(change)
                except Exception as error:  # the write stands; queries will report why it does not load
                    log.warning("new index version not loaded: %s", error)
            job.finished_at = time.time()
            if job.error is None:
                job.state = "done"
            else:
                job.state = "cancelled" if job.error["code"] == "cancelled" else "failed"
            self._finish(job)

    def _finish(self, job: Job) -> None:
        self._save(job)
        job.finished.set()
        try:
            self.on_finish(job)
        except Exception:  # counting a job must never stop the writer
            log.exception("job %s: the finish hook failed", job.job_id)

    def _save(self, job: Job) -> None:
        """Write the job's file atomically (a reader sees the old state or the new, never half of one)."""
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = self.folder / f".{job.job_id}.tmp"
            temporary.write_text(json.dumps({name: getattr(job, name) for name in KEPT}), encoding="utf-8")
            os.replace(temporary, self.folder / f"{job.job_id}.json")
        except OSError as error:  # the job itself goes on; only its record after a restart is lost
            log.warning("job %s: its state could not be saved: %s", job.job_id, error)

    def _restore(self) -> list[Job]:
        """The jobs of earlier runs, oldest first: running ones (and queued ones without inputs) now interrupted."""
        if self.folder is None or not self.folder.is_dir():
            return []
        jobs = []
        for path in self.folder.glob("*.json"):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                job = Job(**{name: record[name] for name in KEPT if name in record})
            except (OSError, ValueError, TypeError) as error:
                log.warning("%s: not a job record, ignored: %s", path, error)
                continue
            if job.state == "queued" and job.inputs is not None:
                jobs.append(job)  # resumable
                continue
            if job.state in ("queued", "running"):
                job.error = {
                    "detail": f"the service stopped while the job was {job.state}; nothing of it was written, "
                    "send it again",
                    "code": "interrupted",
                }
                job.state = "failed"
                job.finished_at = time.time()
                # Not written back: another process (`medrag add` beside the server) may own a running
                # job, and its own writes will say how it ended.
            job.finished.set()
            jobs.append(job)
        jobs.sort(key=lambda job: job.created_at)
        for old in jobs[:-KEEP_FINISHED]:
            (self.folder / f"{old.job_id}.json").unlink(missing_ok=True)
        return jobs[-KEEP_FINISHED:]
