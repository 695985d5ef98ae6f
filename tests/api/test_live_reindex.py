"""Re-indexing while a real `medrag serve` answers: no restart, no failed query, no broken version."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from medrag.stores import faiss as store
from tests import http_jobs

from ..conftest import Server

pytestmark = pytest.mark.slow

TOKEN = "live-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTIONS = [
    "MedGPT有多少参数？",
    "MMed-Llama 3在MMedBench上的准确率是多少？",
    "MedLM是哪两家机构合作的？",
    "What is MedGPT's diagnostic agreement with attending physicians?",
    "今天天气怎么样？",
]


@pytest.fixture(scope="module")
def live(real_index, tmp_path_factory):
    """A server of its own (the tests change its index), with document writes enabled."""
    index_dir = tmp_path_factory.mktemp("live") / "index"
    shutil.copytree(real_index, index_dir)
    server = Server(index_dir, env={"MEDRAG_ADMIN_TOKEN": TOKEN}).wait()
    # Generous timeouts: the machine is shared, and a slow answer is not what these tests measure.
    server.http = httpx.Client(base_url=server.url, timeout=60)
    server.index_dir = index_dir
    yield server
    server.http.close()
    server.stop()


def finish(http: httpx.Client, response: httpx.Response) -> dict:
    return http_jobs.finish(http, response, AUTH)


def live_version(http: httpx.Client) -> dict:
    return http.get("/healthz").json()["index"]


def reindex(index_dir, env: dict | None = None, **options) -> subprocess.Popen:
    environment = {**os.environ, "MEDRAG_INDEX_DIR": str(index_dir), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "medrag.cli", "reindex"], env=environment, **options)


def test_a_document_added_over_http_is_answerable_at_once_and_gone_after_delete(live):
    question = "雪豹康复机器人由哪家医院研制？"
    before = live.http.post("/ask", json={"question": question}).json()
    assert not before["found"]

    text = "# 雪豹康复机器人\n\n雪豹康复机器人由西岭康复医院研制，用于中风患者的上肢康复训练。"
    job = finish(live.http, live.http.post("/documents", json={"title": "雪豹", "text": text}, headers=AUTH))
    assert job["state"] == "done", job
    (doc_id,) = job["outcomes"]
    answer = live.http.post("/ask", json={"question": question}).json()
    assert answer["found"] and "西岭康复医院" in answer["answer"]
    assert answer["citations"][0]["doc_id"] == doc_id

    job = finish(live.http, live.http.delete(f"/documents/{doc_id}", headers=AUTH))
    assert job["state"] == "done" and job["outcomes"] == {doc_id: "removed"}
    answer = live.http.post("/ask", json={"question": question}).json()
    assert not answer["found"] and all(c["doc_id"] != doc_id for c in answer["citations"])
    for mode in ("hybrid", "dense", "bm25"):
        hits = live.http.get("/search", params={"q": text, "k": 20, "mode": mode}).json()["hits"]
        assert all(h["doc_id"] != doc_id for h in hits)
    assert live.process.poll() is None  # the same process all along: no restart


def test_200_queries_during_a_reindex_all_succeed(live):
    before = live_version(live.http)
    results: list[tuple[float, int, str]] = []  # (start time, status, answer or error)
    writer = reindex(live.index_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished_at: list[float] = []
    threading.Thread(target=lambda: (writer.wait(), finished_at.append(time.monotonic())), daemon=True).start()

    def one(i: int) -> tuple[float, int, str]:
        started = time.monotonic()
        try:
            response = live.http.post("/ask", json={"question": QUESTIONS[i % len(QUESTIONS)]})
            return started, response.status_code, response.json()["answer"]
        except Exception as error:  # any failure is a result to report, not a crash of the test
            return started, 0, repr(error)

    began = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        sent = 0
        # At least 200 queries, and keep asking until the re-index has switched versions (a guard
        # against a hang, not a timing: answering embeds only the question, so a count of queries
        # says nothing about how long the re-index ran).
        while sent < 200 or not finished_at:
            results += pool.map(one, range(sent, sent + 20))
            sent += 20
            assert time.monotonic() - began < 600, "the re-index did not finish"
    assert writer.returncode == 0
    failures = [r for r in results if r[1] != 200 or not r[2]]
    assert not failures, failures[:5]
    assert any(start < finished_at[0] for start, _, _ in results)  # queries ran while it re-indexed
    after = live_version(live.http)
    assert after["version"] != before["version"] and after["chunks"] == before["chunks"]


def test_sigkill_mid_reindex_leaves_the_previous_version_live(live):
    before = live_version(live.http)
    # Smaller chunks, so there are several batches to embed and the kill lands well before the end.
    writer = reindex(
        live.index_dir,
        env={"MEDRAG_CHUNK_SIZE": "80", "MEDRAG_CHUNK_OVERLAP": "10"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    progress = re.compile(rb"(\d+)/(\d+) \[")
    seen = b""
    while True:  # read the progress bar until some chunks, not all, are embedded
        piece = os.read(writer.stderr.fileno(), 4096)
        assert piece, f"reindex ended before it could be killed: {seen[-500:]!r}"
        seen += piece
        counts = [(int(a), int(b)) for a, b in progress.findall(seen)]
        if counts and 0 < counts[-1][0] <= counts[-1][1] - 32:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    index = store.load(live.index_dir)
    assert index.version == before["version"]
    assert index.vectors.ntotal == len(index.chunks) == index.manifest.chunks == before["chunks"]
    assert len(index.documents) == index.manifest.documents == before["documents"]
    assert live_version(live.http)["version"] == before["version"]
    answer = live.http.post("/ask", json={"question": "MedGPT有多少参数？"}).json()
    assert answer["found"] and "1000亿" in answer["answer"]

    # The killed writer's lock died with it: the next re-index runs and the service picks it up.
    assert reindex(live.index_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait(120) == 0
    after = live_version(live.http)
    assert after["version"] != before["version"] and after["chunks"] == before["chunks"]
