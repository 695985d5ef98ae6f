"""Write jobs over HTTP (issue 12): uploads parsed in the job within limits, cancelling, jobs after a restart."""

import threading
import time
import zlib

import httpx
import pytest

from medrag.stores import faiss as store

from ..conftest import Server
from .test_documents_api import AUTH, FALCON, TOKEN, WHALE, finish, make_client

pytestmark = pytest.mark.slow


def bomb_pdf(pages: int, repeats: int, text: str = "A" * 100) -> bytes:
    """A PDF of `pages` pages sharing one FlateDecode content stream of `repeats` text operators."""
    content = ("BT /F1 12 Tf 72 720 Td " + f"({text}) Tj " * repeats + "ET").encode("latin-1")
    packed = zlib.compress(content, 9)
    kids = " ".join(f"{4 + i} 0 R" for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream",
        *(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (4 + pages)
            for _ in range(pages)
        ),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def upload(name: str, data: bytes) -> list:
    return [("file", (name, data, "application/pdf"))]


# 3 pages, each inflating to about 32 MB of text operators, from about 100 KB on the wire.
BOMB = bomb_pdf(3, 300_000)


@pytest.mark.parametrize(
    ("limits", "code"),
    [
        ({"max_decompressed_bytes": 1_000_000}, "too_large"),
        # The inflated size is checked for every page before any text is read: the timeout needs room past it.
        ({"parse_timeout": 1.5, "max_decompressed_bytes": 200_000_000}, "parse_timeout"),
    ],
)
def test_a_pdf_that_inflates_is_accepted_then_fails_its_job_in_bounded_time(tmp_path, limits, code):
    assert len(BOMB) < 200_000
    with make_client(tmp_path, **limits) as client:
        finish(client, client.post("/documents", json={"title": "t", "text": FALCON}, headers=AUTH))
        live = store.current_path(client.app.state.settings.index_dir)
        started = time.monotonic()
        response = client.post("/documents", files=upload("bomb.pdf", BOMB), headers=AUTH)
        assert response.status_code == 202 and time.monotonic() - started < 5, response.text
        job = finish(client, response)
        assert time.monotonic() - started < 20
        assert job["state"] == "failed" and job["error"]["code"] == code, job
        assert "bomb.pdf" in job["error"]["detail"]
        assert store.current_path(client.app.state.settings.index_dir) == live
        assert len(client.get("/documents").json()) == 1


def test_a_fetched_pdf_is_parsed_within_the_same_limits(tmp_path, loopback_site):
    site = loopback_site()
    site.routes["/bomb.pdf"] = (200, {"Content-Type": "application/pdf"}, BOMB)
    with make_client(tmp_path, max_decompressed_bytes=1_000_000) as client:
        job = finish(client, client.post("/documents", json={"url": f"{site.url}/bomb.pdf"}, headers=AUTH))
        assert (job["state"], job["error"]["code"]) == ("failed", "too_large"), job
        assert store.current_path(client.app.state.settings.index_dir) is None


def test_pdf_page_and_text_limits_fail_the_job(tmp_path, pdf):
    with make_client(tmp_path, max_pdf_pages=2, max_document_chars=500) as client:
        job = finish(client, client.post("/documents", files=upload("pages.pdf", bomb_pdf(3, 1)), headers=AUTH))
        assert (job["state"], job["error"]["code"]) == ("failed", "too_large")
        assert "MEDRAG_MAX_PDF_PAGES" in job["error"]["detail"]
        job = finish(client, client.post("/documents", files=upload("text.pdf", bomb_pdf(1, 10)), headers=AUTH))
        assert (job["state"], job["error"]["code"]) == ("failed", "too_large")
        assert "MEDRAG_MAX_DOCUMENT_CHARS" in job["error"]["detail"]
        # Within the limits, a PDF is parsed by the job and indexed.
        small = pdf(["The Bluewhale model was released in 2031."], title="Bluewhale")
        job = finish(client, client.post("/documents", files=upload("small.pdf", small), headers=AUTH))
        assert job["state"] == "done" and list(job["outcomes"].values()) == ["added"], job
        # Cheap checks still fail the request: not a PDF by its first bytes, text past the limit.
        response = client.post("/documents", files=upload("fake.pdf", b"MZ\x90\x00"), headers=AUTH)
        assert (response.status_code, response.json()["code"]) == (415, "unsupported_type")
        response = client.post("/documents", json={"title": "t", "text": "蓝" * 501}, headers=AUTH)
        assert (response.status_code, response.json()["code"]) == (413, "too_large")


class Gate:
    """The writer's embedder, held at each call until the test opens the gate."""

    def __init__(self, inner):
        self.inner, self.model_id, self.dim = inner, inner.model_id, inner.dim
        self.entered, self.open = threading.Event(), threading.Event()

    def embed(self, texts, *, query=False):
        self.entered.set()
        assert self.open.wait(30), "the test never opened the gate"
        return self.inner.embed(texts, query=query)


def gated(client) -> Gate:
    service = client.app.state.service
    gate = Gate(service.embedder)
    service._embedders[(service.settings.embed_model, False)] = gate  # the writer's encoder
    return gate


def state(client, job_id: str) -> dict:
    return client.get(f"/jobs/{job_id}", headers=AUTH).json()


def test_cancelling_a_running_and_a_queued_job(tmp_path):
    with make_client(tmp_path) as client:
        index_dir = client.app.state.settings.index_dir
        gate = gated(client)
        running = client.post("/documents", json={"title": "蓝鲸", "text": WHALE}, headers=AUTH).json()
        assert gate.entered.wait(30)
        queued = client.post("/documents", json={"title": "猎鹰", "text": FALCON}, headers=AUTH).json()
        assert state(client, queued["job_id"])["state"] == "queued"

        response = client.delete(f"/jobs/{queued['job_id']}", headers=AUTH)
        assert response.status_code == 202 and response.json()["state"] == "cancelled"
        response = client.delete(f"/jobs/{running['job_id']}", headers=AUTH)
        assert response.status_code == 202 and response.json()["state"] == "running"
        gate.open.set()
        deadline = time.monotonic() + 30
        while state(client, running["job_id"])["state"] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        job = state(client, running["job_id"])
        assert (job["state"], job["error"]["code"], job["version"]) == ("cancelled", "cancelled", None)
        assert state(client, queued["job_id"])["state"] == "cancelled"
        assert store.current_path(index_dir) is None  # nothing of either landed

        response = client.delete(f"/jobs/{running['job_id']}", headers=AUTH)
        assert (response.status_code, response.json()["code"]) == (409, "conflict")
        assert client.delete("/jobs/nope", headers=AUTH).json()["code"] == "not_found"
        # The writer goes on with the next job.
        job = finish(client, client.post("/documents", json={"title": "猎鹰", "text": FALCON}, headers=AUTH))
        assert job["state"] == "done"
        assert [d["title"] for d in client.get("/documents").json()] == ["猎鹰"]


def test_deleting_a_document_already_being_deleted_is_404(tmp_path):
    with make_client(tmp_path) as client:
        job = finish(client, client.post("/documents", json={"title": "猎鹰", "text": FALCON}, headers=AUTH))
        (doc_id,) = job["outcomes"]
        gate = gated(client)
        blocker = client.post("/documents", json={"title": "蓝鲸", "text": WHALE}, headers=AUTH).json()
        assert gate.entered.wait(30)
        first = client.delete(f"/documents/{doc_id}", headers=AUTH)
        assert first.status_code == 202 and first.json()["state"] == "queued"
        again = client.delete(f"/documents/{doc_id}", headers=AUTH)
        assert (again.status_code, again.json()["code"]) == (404, "not_found"), again.text
        # Once the pending removal is cancelled, the document can be deleted again.
        assert client.delete(f"/jobs/{first.json()['job_id']}", headers=AUTH).json()["state"] == "cancelled"
        second = client.delete(f"/documents/{doc_id}", headers=AUTH)
        assert second.status_code == 202
        gate.open.set()
        # A job queued last finishes last: then the blocker and the removal have finished too.
        finish(client, client.post("/documents", json={"title": "t", "text": "x"}, headers=AUTH))
        assert state(client, blocker["job_id"])["state"] == "done"
        assert finish(client, second)["outcomes"] == {doc_id: "removed"}
        gone = client.delete(f"/documents/{doc_id}", headers=AUTH)
        assert (gone.status_code, gone.json()["code"]) == (404, "not_found")


def test_jobs_outlive_a_restart_running_ones_are_interrupted_and_queued_ones_run(tmp_path, pdf):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    (corpus_dir / "falcon.md").write_text(f"# 猎鹰\n\n{FALCON}\n", encoding="utf-8")
    index_dir = tmp_path / "index"
    env = {"MEDRAG_ADMIN_TOKEN": TOKEN}

    def get(server, job_id):
        return httpx.get(f"{server.url}/jobs/{job_id}", headers=AUTH, timeout=10).json()

    server = Server(index_dir, env, corpus_dir).wait()
    try:
        posted = httpx.post(f"{server.url}/documents", json={"title": "蓝鲸", "text": WHALE}, headers=AUTH, timeout=10)
        done = posted.json()["job_id"]
        deadline = time.monotonic() + 60
        while get(server, done)["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # A long job (about 2,000 chunks), killed while it runs, and two queued behind it.
        long_text = "\n\n".join(
            f"第{i}段：北极星医院第{i}次试验记录了蓝鲸模型在内科问诊中的表现。" for i in range(12_000)
        )
        body = {"title": "长文", "text": long_text}
        running = httpx.post(f"{server.url}/documents", json=body, headers=AUTH, timeout=30).json()["job_id"]
        queued = httpx.post(f"{server.url}/documents", json={"title": "蓝鲸", "text": WHALE}, headers=AUTH)
        paper = pdf(["The Bluewhale model was released by Polaris Hospital in 2031."], title="Bluewhale report")
        uploaded = httpx.post(
            f"{server.url}/documents", files=[("file", ("bluewhale.pdf", paper, "application/pdf"))], headers=AUTH
        )
        queued, uploaded = queued.json()["job_id"], uploaded.json()["job_id"]
        while (job := get(server, running))["state"] != "running" or job["progress"]["done"] == 0:
            assert time.monotonic() < deadline + 60, job
            time.sleep(0.05)
        assert get(server, queued)["state"] == get(server, uploaded)["state"] == "queued"
        documents = httpx.get(f"{server.url}/documents", timeout=10).json()
        assert len(documents) == 2
    finally:
        server.process.kill()
        server.stop()

    server = Server(index_dir, env, corpus_dir).wait()
    try:
        assert get(server, done)["state"] == "done"
        job = get(server, running)
        assert (job["state"], job["error"]["code"]) == ("failed", "interrupted"), job
        # The queued ones run after the restart: the same text again (unchanged), and the kept upload.
        deadline = time.monotonic() + 60
        while (job := get(server, uploaded))["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
        assert job["state"] == "done" and list(job["outcomes"].values()) == ["added"], job
        assert list(get(server, queued)["outcomes"].values()) == ["unchanged"]
        titles = sorted(d["title"] for d in httpx.get(f"{server.url}/documents", timeout=10).json())
        assert titles == sorted([d["title"] for d in documents] + ["Bluewhale report"])
        assert not list((index_dir / "jobs" / "uploads").iterdir())  # the kept upload is gone with its job
        assert get(server, "nope")["code"] == "not_found"
    finally:
        server.stop()
