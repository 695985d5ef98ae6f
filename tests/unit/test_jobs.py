"""The writer thread: jobs run one at a time, in order, and a failing job never stops the ones after it."""

import threading
import time

from medrag.errors import BadInputError
from medrag.indexing import Change
from medrag.jobs import JobRunner


def wait(runner: JobRunner, job_id: str) -> None:
    deadline = time.monotonic() + 5
    while runner.get(job_id).finished_at is None:
        assert time.monotonic() < deadline, "job did not finish"
        time.sleep(0.01)


def test_jobs_run_in_order_one_at_a_time_and_survive_failures():
    running, order = [], []
    changes = []

    def work(name: str, error: Exception | None = None):
        def run(job):
            running.append(name)
            assert len(running) == 1, "two jobs ran at once"
            job.progress(1, 2)
            time.sleep(0.05)
            order.append(name)
            running.remove(name)
            if error:
                raise error
            return Change("v-1", {name: "added"})

        return run

    def on_change(change):
        changes.append(threading.current_thread().name)
        raise RuntimeError("the new version does not load")  # logged; the job still succeeded

    runner = JobRunner(on_change=on_change)
    jobs = [
        runner.submit("add", work("a")),
        runner.submit("add", work("b", BadInputError("no such document: b"))),
        runner.submit("add", work("c", RuntimeError("disk full"))),
        runner.submit("add", work("d")),
    ]
    assert jobs[-1].state == "queued"
    for job in jobs:
        wait(runner, job.job_id)
    runner.stop()
    assert order == ["a", "b", "c", "d"]
    a, b, c, d = (runner.get(j.job_id) for j in jobs)
    assert (a.state, a.outcomes, a.version, (a.done, a.total)) == ("done", {"a": "added"}, "v-1", (1, 2))
    assert (b.state, b.error) == ("failed", {"detail": "no such document: b", "code": "bad_input"})
    assert c.state == "failed" and c.error["code"] == "internal_error" and "disk full" not in c.error["detail"]
    assert d.state == "done"
    assert changes == ["medrag-writer", "medrag-writer"]
