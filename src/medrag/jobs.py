"""Document writes run one at a time on a background thread; clients follow each one as a job.

Jobs live in memory: a restart forgets them (the index itself is never left half-written).
"""

import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .errors import MedragError
from .indexing import Change

log = logging.getLogger("medrag.jobs")
# Finished jobs kept for GET /jobs/{id}; the oldest are forgotten first.
KEEP_FINISHED = 1000

State = Literal["queued", "running", "done", "failed"]


@dataclass
class Job:
    """One queued write; `done`/`total` count chunks embedded."""

    job_id: str
    kind: str
    state: State = "queued"
    done: int = 0
    total: int = 0
    waiting: bool = False
    error: dict | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    finished: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def progress(self, done: int, total: int) -> None:
        self.waiting = False
        self.done, self.total = done, total

    def mark_waiting(self) -> None:
        """Another writer (the CLI, another process) holds the index lock; this job waits for it."""
        self.waiting = True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (done or failed); False if `timeout` ran out first."""
        return self.finished.wait(timeout)


Work = Callable[[Job], Change]


class JobRunner:
    """A single writer thread working through queued jobs in order."""

    def __init__(
        self,
        on_change: Callable[[Change], None] = lambda change: None,
        on_finish: Callable[[Job], None] = lambda job: None,
    ):
        self.on_change = on_change
        self.on_finish = on_finish
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[tuple[Job, Work] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="medrag-writer", daemon=True)
        self._thread.start()

    def submit(self, kind: str, work: Work) -> Job:
        job = Job(job_id=secrets.token_urlsafe(12), kind=kind)
        with self._lock:
            self._jobs[job.job_id] = job
            finished = [j for j in self._jobs.values() if j.finished_at is not None]
            for old in finished[: max(0, len(finished) - KEEP_FINISHED)]:
                del self._jobs[old.job_id]
        self._queue.put((job, work))
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def states(self) -> dict[str, int]:
        """How many of the jobs kept are in each state."""
        with self._lock:
            jobs = list(self._jobs.values())
        return {state: sum(job.state == state for job in jobs) for state in ("queued", "running", "done", "failed")}

    def stop(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            job, work = item
            job.state = "running"
            job.started_at = time.time()
            try:
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
            job.state = "failed" if job.error else "done"
            job.finished.set()
            try:
                self.on_finish(job)
            except Exception:  # counting a job must never stop the writer
                log.exception("job %s: the finish hook failed", job.job_id)
