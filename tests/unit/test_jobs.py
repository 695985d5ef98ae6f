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


def test_jobs_are_kept_in_a_folder_and_interrupted_ones_say_so_after_a_restart(tmp_path):
    gate = threading.Event()

    def held(job):
        assert gate.wait(5)
        job.progress(1, 1)  # a cancelled job stops here
        return Change("v-2", {"x": "added"})

    runner = JobRunner(folder=tmp_path / "jobs")
    first = runner.submit("add", lambda job: Change("v-1", {"a": "added"}))
    wait(runner, first.job_id)
    running = runner.submit("add", held)
    queued = runner.submit("add", lambda job: Change("v-3", {}))
    kept = runner.submit("add", lambda job: Change("v-4", {}), inputs={"reindex": True})
    deadline = time.monotonic() + 5
    while running.state != "running":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(list((tmp_path / "jobs").glob("*.json"))) == 4

    restarted = JobRunner(folder=tmp_path / "jobs")
    assert (restarted.get(first.job_id).state, restarted.get(first.job_id).outcomes) == ("done", {"a": "added"})
    for job_id in (running.job_id, queued.job_id):
        job = restarted.get(job_id)
        assert (job.state, job.error["code"], job.finished.is_set()) == ("failed", "interrupted", True)
    # A queued job kept with its inputs waits for its owner to queue it again.
    assert [job.job_id for job in restarted.resumable] == [kept.job_id]
    restarted.resume(restarted.resumable[0], lambda job: Change("v-5", {"k": "added"}))
    wait(restarted, kept.job_id)
    assert (restarted.get(kept.job_id).state, restarted.get(kept.job_id).version) == ("done", "v-5")
    restarted.stop()

    assert runner.cancel(queued.job_id).state == "cancelled"
    runner.cancel(kept.job_id)
    assert runner.cancel(running.job_id).state == "running"
    gate.set()
    wait(runner, running.job_id)
    runner.stop()
    assert (running.state, running.version, queued.started_at) == ("cancelled", None, None)
    assert JobRunner(folder=tmp_path / "jobs").get(queued.job_id).state == "cancelled"
