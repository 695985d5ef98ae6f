"""POST /ask/stream against the real server: deltas that add up to the /ask answer, then `done`."""

import json
import re

import httpx
import pytest

pytestmark = pytest.mark.slow


def events(response: httpx.Response) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a Server-Sent Events body."""
    parsed = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        parsed.append((fields["event"], json.loads(fields["data"])))
    return parsed


def stream(server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/ask/stream", json=body, timeout=60)


def test_stream_adds_up_to_the_ask_answer(server):
    question = {"question": "MedGPT有多少参数？"}
    response = stream(server, question)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    received = events(response)
    names = [name for name, _ in received]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"}
    done = received[-1][1]
    assert "".join(data["text"] for _, data in received[:-1]) == done["answer"]
    assert "1000亿" in done["answer"] and done["found"] is True
    assert done["citations"] and done["citations"][0]["source_urls"]
    assert set(done["timings_ms"]) == {"analyse", "embed", "retrieve", "answer", "total"}
    plain = httpx.post(f"{server.url}/ask", json=question, timeout=60).json()
    for key in ("answer", "found", "evidence", "citations"):
        assert done[key] == plain[key], key


def test_each_cited_sentence_is_its_own_delta(server):
    received = events(stream(server, {"question": "MedGPT是哪家公司发布的？什么时候发布？"}))
    deltas = [data["text"] for name, data in received if name == "delta"]
    done = received[-1][1]
    assert done["found"] is True
    # Every delta but a trailing remainder ends with its [n] marker.
    markers = len(re.findall(r"\[\d+\]", done["answer"]))
    assert len(deltas) == markers
    assert all(delta.rstrip().endswith("]") for delta in deltas)


def test_not_found_is_streamed_as_found_false(server):
    received = events(stream(server, {"question": "火星上有多少座火山？"}))
    name, done = received[-1]
    assert name == "done"
    assert done["found"] is False and done["citations"] == []
    assert "".join(d["text"] for n, d in received if n == "delta") == done["answer"]


@pytest.mark.parametrize(
    "body, code",
    [
        ({"question": "   "}, "bad_input"),
        ({"question": "问" * 501}, "bad_input"),
        ({}, "validation_error"),
        ({"question": "MedGPT", "top_k": 0}, "validation_error"),
    ],
)
def test_bad_input_is_refused_as_json_before_streaming(server, body, code):
    response = stream(server, body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json()["code"] == code
    assert response.json()["detail"]
