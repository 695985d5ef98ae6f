"""The documents API in-process (real model, real index): auth, uploads, URLs, jobs, limits, deletes."""

import ipaddress
import time

import pytest
from fastapi.testclient import TestClient

from medrag.api.app import create_app
from medrag.settings import Settings
from medrag.stores import faiss as store

pytestmark = pytest.mark.slow

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WHALE = "# 蓝鲸医疗模型\n\n蓝鲸医疗模型由北极星医院于2031年发布，参数规模为42亿，主要用于内科问诊。"
FALCON = "猎鹰诊断助手由南湖大学研发，用于自动生成影像报告，已在五家医院试用。"
ARTICLE = """<html><head><title>苍鹭问诊系统上线</title><meta property="og:site_name" content="东山日报">
<meta name="date" content="2024-05-06"></head><body><article><h1>苍鹭问诊系统上线</h1>
<p>苍鹭问诊系统由东山医院上线，每天服务三千名门诊患者，平均候诊时间缩短了四十分钟。</p></article></body></html>"""


def make_client(tmp_path, **overrides) -> TestClient:
    options = dict(
        index_dir=tmp_path / "index",
        admin_token=TOKEN,
        fetch_allow="127.0.0.1/32",
        max_upload_bytes=200_000,
        max_upload_files=3,
    )
    return TestClient(create_app(Settings(**{**options, **overrides})))


@pytest.fixture
def client(tmp_path):
    with make_client(tmp_path) as client:
        yield client


def finish(client: TestClient, response) -> dict:
    """Wait for the job a 202 response names, and return its final state."""
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    assert location == f"/jobs/{response.json()['job_id']}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(location, headers=AUTH).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job still {job['state']} after 60 s")


def ask(client: TestClient, question: str) -> dict:
    response = client.post("/ask", json={"question": question})
    assert response.status_code == 200, response.text
    return response.json()


def test_writes_are_off_without_a_token(tmp_path):
    with make_client(tmp_path, admin_token=None) as client:
        for response in (
            client.post("/documents", json={"title": "t", "text": WHALE}, headers=AUTH),
            client.delete("/documents/x", headers=AUTH),
            client.get("/jobs/x", headers=AUTH),
        ):
            assert response.status_code == 403
            assert response.json()["code"] == "writes_disabled"
            assert "set MEDRAG_ADMIN_TOKEN" in response.json()["detail"]
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer"])
def test_a_missing_or_wrong_token_is_refused(client, header):
    headers = {"Authorization": header} if header else {}
    response = client.post("/documents", json={"title": "t", "text": WHALE}, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized" and response.headers["www-authenticate"] == "Bearer"
    assert store.current_path(client.app.state.settings.index_dir) is None


def test_uploaded_files_become_answerable_and_deleted_ones_disappear(client, pdf):
    files = [
        ("file", ("whale.md", WHALE.encode(), "text/markdown")),
        ("file", ("falcon.txt", FALCON.encode(), "text/plain")),
        (
            "file",
            (
                "bluewhale.pdf",
                pdf(["The Bluewhale model was released by Polaris Hospital in 2031."], title="Bluewhale report"),
                "application/pdf",
            ),
        ),
    ]
    job = finish(client, client.post("/documents", files=files, headers=AUTH))
    assert job["state"] == "done" and job["error"] is None, job
    assert sorted(job["outcomes"].values()) == ["added"] * 3
    assert job["progress"]["done"] == job["progress"]["total"] > 0

    documents = {d["path"]: d for d in client.get("/documents").json()}
    assert set(documents) == {"whale.md", "falcon.txt", "bluewhale.pdf"}
    assert documents["bluewhale.pdf"]["title"] == "Bluewhale report"
    whale = documents["whale.md"]
    assert client.get(f"/documents/{whale['doc_id']}").json()["chunks"] == whale["chunks"] >= 1

    answer = ask(client, "蓝鲸医疗模型的参数规模是多少？")
    assert answer["found"] and "42亿" in answer["answer"]
    assert answer["citations"][0]["doc_id"] == whale["doc_id"]

    job = finish(client, client.delete(f"/documents/{whale['doc_id']}", headers=AUTH))
    assert job["state"] == "done" and job["outcomes"] == {whale["doc_id"]: "removed"}
    answer = ask(client, "蓝鲸医疗模型的参数规模是多少？")
    assert all(c["doc_id"] != whale["doc_id"] for c in answer["citations"])
    assert "42亿" not in answer["answer"]
    for mode in ("hybrid", "dense", "bm25"):
        hits = client.get("/search", params={"q": WHALE, "k": 10, "mode": mode}).json()["hits"]
        assert all(h["doc_id"] != whale["doc_id"] for h in hits)
    assert client.get(f"/documents/{whale['doc_id']}").status_code == 404
    assert client.delete(f"/documents/{whale['doc_id']}", headers=AUTH).status_code == 404


def test_json_text_is_deduplicated_and_replaced_by_url(client):
    url = "https://news.example/whale"
    first = finish(client, client.post("/documents", json={"title": "蓝鲸", "text": WHALE, "url": url}, headers=AUTH))
    (doc_id,) = first["outcomes"]
    again = finish(client, client.post("/documents", json={"title": "蓝鲸", "text": WHALE, "url": url}, headers=AUTH))
    assert again["outcomes"] == {doc_id: "unchanged"} and again["version"] == first["version"]
    copy = finish(client, client.post("/documents", json={"title": "副本", "text": WHALE}, headers=AUTH))
    assert list(copy["outcomes"].values()) == [f"duplicate of {doc_id}"]

    newer = WHALE.replace("42亿", "96亿")
    replaced = finish(
        client, client.post("/documents", json={"title": "蓝鲸", "text": newer, "url": url}, headers=AUTH)
    )
    assert replaced["outcomes"] == {doc_id: "replaced"}
    answer = ask(client, "蓝鲸医疗模型的参数规模是多少？")
    assert "96亿" in answer["answer"] and "42亿" not in answer["answer"]
    assert answer["citations"][0]["url"] == url
    assert [d["doc_id"] for d in client.get("/documents").json()] == [doc_id]


def test_a_url_is_fetched_extracted_and_cited_by_its_url(client, loopback_site):
    site = loopback_site()
    site.routes["/news/heron"] = (200, {"Content-Type": "text/html; charset=utf-8"}, ARTICLE.encode())
    url = f"{site.url}/news/heron"
    job = finish(client, client.post("/documents", json={"url": url}, headers=AUTH))
    assert job["state"] == "done", job
    (doc_id,) = job["outcomes"]
    document = client.get(f"/documents/{doc_id}").json()
    assert (document["url"], document["title"], document["publisher"], document["date"]) == (
        url,
        "苍鹭问诊系统上线",
        "东山日报",
        "2024-05-06",
    )
    answer = ask(client, "苍鹭问诊系统每天服务多少门诊患者？")
    assert answer["found"] and "三千名" in answer["answer"]
    assert answer["citations"][0]["url"] == url


def test_a_refused_url_fails_its_job_without_any_connection(client, loopback_site):
    hidden = loopback_site("127.0.0.2")  # loopback, and outside the allow-list 127.0.0.1/32
    hidden.routes["/"] = (200, {"Content-Type": "text/html"}, ARTICLE.encode())
    job = finish(client, client.post("/documents", json={"url": f"{hidden.url}/"}, headers=AUTH))
    assert job["state"] == "failed" and job["error"]["code"] == "fetch_refused"
    assert "loopback" in job["error"]["detail"]
    assert hidden.connections == 0
    assert store.current_path(client.app.state.settings.index_dir) is None


def test_unknown_job_and_document_are_404(client):
    assert client.get("/jobs/nope", headers=AUTH).json()["code"] == "not_found"
    finish(client, client.post("/documents", json={"title": "t", "text": WHALE}, headers=AUTH))
    assert client.get("/documents/nope").status_code == 404
    assert client.delete("/documents/nope", headers=AUTH).status_code == 404


def chunked():
    """A body without a Content-Length, sent in pieces."""
    for _ in range(40):
        yield b"x" * 8192


BAD_REQUESTS = {
    "too large": (
        dict(content=b"{" + b" " * 300_000 + b"}", headers={"content-type": "application/json"}),
        413,
        "too_large",
    ),
    "too large without a length": (
        dict(content=chunked, headers={"content-type": "application/json"}),
        413,
        "too_large",
    ),
    "too large upload": (dict(files=[("file", ("big.txt", b"x" * 300_000, "text/plain"))]), 413, "too_large"),
    "too many files": (
        dict(files=[("file", (f"{i}.txt", f"文档{i}".encode(), "text/plain")) for i in range(4)]),
        413,
        "too_large",
    ),
    "unsupported type": (
        dict(files=[("file", ("tool.exe", b"MZ\x90\x00", "application/octet-stream"))]),
        415,
        "unsupported_type",
    ),
    "mismatched type": (dict(files=[("file", ("a.pdf", b"%PDF-1.4", "text/plain"))]), 415, "unsupported_type"),
    "pdf bytes named txt": (dict(files=[("file", ("a.txt", b"%PDF-1.4 ...", "text/plain"))]), 415, "unsupported_type"),
    "unsupported body": (dict(content=WHALE.encode(), headers={"content-type": "text/plain"}), 415, "unsupported_type"),
    "not utf-8": (dict(files=[("file", ("a.txt", "蓝鲸".encode("gb18030"), "text/plain"))]), 422, "bad_input"),
    "empty text": (dict(json={"title": "t", "text": "  "}), 422, "bad_input"),
    "neither url nor text": (dict(json={"title": "t"}), 422, "validation_error"),
    "unknown field": (dict(json={"text": WHALE, "colour": "red"}), 422, "validation_error"),
    "malformed json": (
        dict(content=b'{"text": ', headers={"content-type": "application/json"}),
        422,
        "validation_error",
    ),
    "file scheme": (dict(json={"url": "file:///etc/passwd"}), 422, "fetch_refused"),
    "script link with text": (dict(json={"text": WHALE, "url": "javascript:alert(1)"}), 422, "fetch_refused"),
    "no files": (dict(data={"title": "t"}, files=[]), 422, "bad_input"),
}
# Files that pass the cheap checks but do not parse: since parsing moved into the job (issue 12, F5),
# the request is accepted and the job fails, with nothing indexed.
BAD_FILES = {
    "malformed pdf": ([("file", ("a.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", "application/pdf"))], "bad_input"),
    "empty html": (
        [("file", ("a.html", b"<html><head><script>var a = 1;</script></head><body></body></html>", "text/html"))],
        "bad_input",
    ),
    "one bad file among good ones": (
        [
            ("file", ("whale.md", WHALE.encode(), "text/markdown")),
            ("file", ("a.pdf", b"%PDF-1.4 broken", "application/pdf")),
        ],
        "bad_input",
    ),
}


@pytest.fixture(scope="module")
def indexed_client(tmp_path_factory):
    """A client over an index holding one document, shared by the bad-request cases."""
    with make_client(tmp_path_factory.mktemp("bad")) as client:
        finish(client, client.post("/documents", json={"title": "t", "text": FALCON}, headers=AUTH))
        yield client


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_uploads_are_refused_and_nothing_is_indexed(indexed_client, case):
    client = indexed_client
    request, status, code = BAD_REQUESTS[case]
    index_dir = client.app.state.settings.index_dir
    live = store.current_path(index_dir)
    if case == "no files":  # a multipart body with fields only
        response = client.post("/documents", data=request["data"], files={"note": (None, "x")}, headers=AUTH)
    else:
        body = {k: v() if callable(v) else v for k, v in request.items() if k != "headers"}
        response = client.post("/documents", headers={**AUTH, **request.get("headers", {})}, **body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code and response.json()["detail"]
    time.sleep(0.1)  # a job wrongly queued would have landed by now
    assert store.current_path(index_dir) == live
    assert len(client.get("/documents").json()) == 1


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_files_that_do_not_parse_fail_their_job_and_nothing_is_indexed(indexed_client, case):
    client = indexed_client
    files, code = BAD_FILES[case]
    index_dir = client.app.state.settings.index_dir
    live = store.current_path(index_dir)
    job = finish(client, client.post("/documents", files=files, headers=AUTH))
    assert job["state"] == "failed" and job["error"]["code"] == code and job["error"]["detail"], job
    assert store.current_path(index_dir) == live
    assert len(client.get("/documents").json()) == 1


def test_fetch_allow_setting_is_validated():
    with pytest.raises(ValueError, match="MEDRAG_FETCH_ALLOW: 'intranet' is not an IP address or network"):
        Settings(fetch_allow="127.0.0.1/32, intranet")
    assert Settings(fetch_allow="10.1.0.0/16,::1").fetch_allow == (
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("::1"),
    )
