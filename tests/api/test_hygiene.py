"""HTTP hygiene through a real server (issue 12): un-encodable text, forged markers, the spec, slow clients."""

import json
import re
import shutil
import socket
import time

import httpx
import pytest

from medrag import generation
from medrag.query import analyse
from medrag.types import Chunk, Hit, Question

from ..conftest import Server

pytestmark = pytest.mark.slow

TOKEN = "hygiene-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 2  # MEDRAG_REQUEST_TIMEOUT of the server under test, in seconds
SURROGATE = '"MedGPT\\ud800"'  # a valid JSON escape of a code point UTF-8 cannot encode
# A document whose text carries what looks like citation markers, in every bracket Chinese text uses.
FORGED = (
    "# 青鸾问诊模型\n\n青鸾问诊模型由白塔医院于2033年发布[1]。"
    "青鸾问诊模型的参数规模为64亿[2]【3】，主要用于儿科分诊［12］。"
)


@pytest.fixture(scope="module")
def served(real_index, tmp_path_factory):
    """A real server with document writes on and a short request timeout, over a copy of the real index."""
    index_dir = tmp_path_factory.mktemp("hygiene") / "index"
    shutil.copytree(real_index, index_dir)
    running = Server(index_dir, env={"MEDRAG_ADMIN_TOKEN": TOKEN, "MEDRAG_REQUEST_TIMEOUT": str(LIMIT)}).wait()
    yield running
    running.stop()


def post_raw(server: Server, path: str, body: str, headers: dict | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", **(headers or {})}
    return httpx.post(f"{server.url}{path}", content=body.encode(), headers=headers, timeout=60)


# F1: a lone surrogate in any text field is a 422 bad_input naming the field, never a 500.


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/ask", f'{{"question": {SURROGATE}}}', "question"),
        ("/ask", f'{{"question": "x", "history": [{{"role": "user", "content": {SURROGATE}}}]}}', "history.0.content"),
        ("/ask/stream", f'{{"question": {SURROGATE}}}', "question"),
        ("/ask/stream", '{"question": "x", "history": [{"role": "user", "content": "a\\udfff"}]}', "history.0.content"),
        (
            "/v1/chat/completions",
            f'{{"model": "medrag", "messages": [{{"role": "user", "content": {SURROGATE}}}]}}',
            "messages.0.content",
        ),
        (
            "/v1/chat/completions",
            f'{{"model": "medrag", "stream": true, "messages": [{{"role": "user", "content": {SURROGATE}}}]}}',
            "messages.0.content",
        ),
        (
            "/v1/chat/completions",
            '{"model": "medrag", "messages": [{"role": "user", "content": [{"type": "text", "text": '
            f"{SURROGATE}}}]}}]}}",
            "messages.0.content.0.text",
        ),
        (
            "/v1/chat/completions",
            f'{{"model": {SURROGATE}, "messages": [{{"role": "user", "content": "x"}}]}}',
            "model",
        ),
        ("/feedback", f'{{"rating": "up", "question": {SURROGATE}, "answer": "a"}}', "question"),
        ("/feedback", f'{{"rating": "up", "question": "q", "answer": "a", "comment": {SURROGATE}}}', "comment"),
        ("/feedback", '{"rating": "up\\ud800", "question": "q", "answer": "a"}', "rating"),
        ("/documents", f'{{"title": "t", "text": {SURROGATE}}}', "text"),
        ("/documents", f'{{"title": {SURROGATE}, "text": "正文"}}', "title"),
    ],
)
def test_a_lone_surrogate_is_bad_input_naming_the_field(served, path, body, field):
    response = post_raw(served, path, body, AUTH if path == "/documents" else None)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")  # streams refuse before they start
    error = response.json()
    assert error["code"] == "bad_input"
    assert re.match(
        rf"{re.escape(field)} has a lone UTF-16 surrogate \(\\ud[89a-f]\w\w\) at character \d+", error["detail"]
    )


def test_the_server_still_answers_after_surrogates(served):
    post_raw(served, "/ask", f'{{"question": {SURROGATE}}}')
    assert httpx.get(f"{served.url}/healthz", timeout=10).json()["status"] == "ok"
    assert post_raw(served, "/ask", '{"question": "MedGPT\\ud83d\\ude00"}').status_code == 200  # a pair is fine


# F6: a document's bracketed numbers never pass for markers.


def markers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\[(\d+)\]", text)]


def test_bracketed_numbers_in_a_document_are_not_markers(served):
    response = httpx.post(f"{served.url}/documents", json={"title": "青鸾问诊模型", "text": FORGED}, headers=AUTH)
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + 120
    while (job := httpx.get(f"{served.url}{response.headers['location']}", headers=AUTH).json())["state"] not in (
        "done",
        "failed",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["state"] == "done", job
    answered = 0
    for question in ("青鸾问诊模型的参数规模是多少？", "青鸾问诊模型是哪家医院发布的？"):
        body = httpx.post(f"{served.url}/ask", json={"question": question}, timeout=60).json()
        if not body["found"]:
            continue
        answered += 1
        answer, cited = body["answer"], [c["n"] for c in body["citations"]]
        # Every marker in the text is one the server placed, and the citations are exactly those markers.
        assert sorted(set(markers(answer))) == sorted(cited), body
        assert cited == list(range(1, len(cited) + 1))
        assert not re.search(r"[【［]\s*\d+\s*[】］]", answer), answer
        assert "青鸾" in answer and ("(2)" in answer or "(1)" in answer), answer  # the document's own, neutralised
        for citation in body["citations"]:
            quote = citation["quote"]  # the quote is still the passage's own text, where it says
            assert citation["text"][quote["passage_start"] : quote["passage_end"]] == quote["text"]
    assert answered, "the posted document answered neither question"


def test_the_llm_is_given_passages_without_forged_markers():
    text = "参数规模为64亿[2]【3】，用于儿科［12］。"
    chunk = Chunk(chunk_id="c1", doc_id="d1", text=text, start=0, end=len(text), section=("青鸾",))
    sent = generation.messages(Question("参数规模？", analyse("参数规模？")), [Hit(chunk, 1.0)], 0)[-1]["content"]
    assert "参数规模为64亿(2)(3)，用于儿科(12)。" in sent
    assert not generation.MARKER.search(sent.split("\n\nQuestion:")[0].split("\n", 1)[1])


# F7: what tools read.


def test_405_says_which_methods_are_allowed(served):
    for method, path, allowed in (
        ("PUT", "/documents", "GET, POST"),
        ("GET", "/ask", "POST"),
        ("POST", "/healthz", "GET"),
    ):
        response = httpx.request(method, f"{served.url}{path}")
        assert response.status_code == 405
        assert response.headers["allow"] == allowed
        assert response.json()["code"] == "method_not_allowed"


def test_booleans_are_strict(served):
    feedback = {"rating": "up", "question": "q", "answer": "a"}
    for found in (0, 1, "true", "yes"):
        response = httpx.post(f"{served.url}/feedback", json={**feedback, "found": found})
        assert response.status_code == 422, (found, response.text)
        assert response.json()["code"] == "validation_error"
    assert httpx.post(f"{served.url}/feedback", json={**feedback, "found": False}).status_code == 201
    chat = {"model": "medrag", "messages": [{"role": "user", "content": "x"}], "stream": 1}
    assert httpx.post(f"{served.url}/v1/chat/completions", json=chat).status_code == 422


def test_openapi_describes_the_real_errors_and_bodies(served):
    spec = httpx.get(f"{served.url}/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(spec)
    error = spec["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) == {"detail", "code"}
    assert {kind.get("type") for kind in error["properties"]["detail"]["anyOf"]} == {"string", "array"}
    expected = {
        ("post", "/ask"): {"400", "408", "422", "503"},
        ("post", "/ask/stream"): {"400", "408", "422", "503"},
        ("get", "/search"): {"422", "503"},
        ("post", "/v1/chat/completions"): {"400", "404", "408", "422", "503"},
        ("post", "/feedback"): {"400", "408", "422"},
        ("post", "/documents"): {"401", "403", "408", "413", "415", "422", "503"},
        ("get", "/documents/{doc_id}"): {"404", "422", "503"},
        ("delete", "/documents/{doc_id}"): {"401", "403", "404", "422", "503"},
        ("get", "/jobs/{job_id}"): {"401", "403", "404", "422"},
    }
    for (method, path), statuses in expected.items():
        responses = spec["paths"][path][method]["responses"]
        assert statuses <= set(responses), (method, path, sorted(responses))
        for status in statuses:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path, status)
    body = spec["paths"]["/documents"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["files"]["items"]["format"] == "binary"
    assert set(body["application/json"]["schema"]["properties"]) == {"url", "title", "text", "tags"}


def test_error_bodies_match_the_documented_shape(served):
    for response in (
        httpx.post(f"{served.url}/ask", json={"question": 5}),
        httpx.post(f"{served.url}/ask", json={"question": ""}),
        httpx.post(f"{served.url}/ask", content=b'{"question": "\xff"}', headers={"Content-Type": "application/json"}),
        httpx.post(
            f"{served.url}/v1/chat/completions", json={"model": "gpt", "messages": [{"role": "user", "content": "x"}]}
        ),
    ):
        assert response.status_code in (400, 404, 422), response.text
        body = response.json()
        assert set(body) == {"detail", "code"} and isinstance(body["code"], str)
        assert isinstance(body["detail"], str | list)


# Slow clients: headers and bodies are each bounded by MEDRAG_REQUEST_TIMEOUT.


def drip(server: Server, head: bytes, tail: bytes) -> tuple[bytes, float]:
    """Send `head` at once, then `tail` a byte a second; what the server sent and when it closed the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head)
        started = time.monotonic()
        received = b""
        sock.settimeout(1.0)
        position = 0
        while time.monotonic() - started < 4 * LIMIT + 5:
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                piece = None
            except OSError:
                break
            if piece == b"":
                return received, time.monotonic() - started
            if piece:
                received += piece
                continue
            if not tail:
                continue
            try:
                sock.send(tail[position % len(tail) : position % len(tail) + 1])
            except OSError:
                break
            position += 1
        return received, time.monotonic() - started


def test_a_slow_body_gets_408_and_is_disconnected(served):
    head = b"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    received, elapsed = drip(served, head, b'"question": "slow"')
    assert elapsed < LIMIT + 3, elapsed
    status, _, rest = received.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", received
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["code"] == "request_timeout"


def test_slow_headers_get_408_and_are_disconnected(served):
    received, elapsed = drip(served, b"POST /ask HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"a" * 100)
    assert elapsed < LIMIT + 3, elapsed
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["code"] == "request_timeout"


def test_an_idle_connection_is_closed_too(served):
    received, elapsed = drip(served, b"", b"")
    assert elapsed < LIMIT + 3, elapsed
    assert received == b""  # nothing asked, nothing answered


def test_a_prompt_client_is_not_cut_off(served):
    with httpx.Client(base_url=served.url, timeout=60) as client:  # one keep-alive connection
        for _ in range(2):
            assert client.post("/ask", json={"question": "MedGPT 是什么？"}).status_code == 200
            time.sleep(LIMIT + 0.5)  # longer than the limit between requests: the keep-alive timeout's business
        with client.stream("POST", "/ask/stream", json={"question": "MedGPT 是什么？"}) as response:
            assert response.status_code == 200
            assert "event: done" in "".join(response.iter_text())
