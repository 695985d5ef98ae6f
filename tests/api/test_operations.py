"""Operations through a real server: bounded cost per request, /metrics, rate limits, request ids, CORS, feedback."""

import ipaddress
import shutil
import threading
import time
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.datastructures import Headers

from medrag.api.app import create_app
from medrag.api.middleware import TokenBucket, client_address, client_key
from medrag.settings import Settings

from ..conftest import Server

pytestmark = pytest.mark.slow

ORIGIN = "http://widget.example"
BURST = 3


@pytest.fixture(scope="module")
def ops(real_index, tmp_path_factory):
    """A server with a low rate limit (3 at once, then one each 10 s), CORS for one origin, a small feedback cap."""
    index_dir = tmp_path_factory.mktemp("operations") / "index"
    shutil.copytree(real_index, index_dir)
    env = {
        "MEDRAG_RATE_LIMIT": "6",
        "MEDRAG_RATE_LIMIT_BURST": str(BURST),
        "MEDRAG_CORS_ORIGINS": ORIGIN,
        "MEDRAG_FEEDBACK_MAX_BYTES": "2048",
    }
    running = Server(index_dir, env=env).wait()
    running.log_path = index_dir.parent / f"server-{running.port}.log"
    yield running
    running.stop()


def client() -> dict:
    """Headers of a client of its own: the rate limit keys on the bearer token."""
    return {"Authorization": f"Bearer client-{uuid.uuid4().hex}"}


def metrics(server) -> dict:
    """Every sample of /metrics by (name, sorted labels)."""
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


# Bounded cost per request (F4).


def test_a_huge_history_is_refused_fast_and_health_stays_responsive(ops):
    history = [{"role": ("user", "assistant")[i % 2], "content": "它的参数量是多少？" * 2222} for i in range(200)]
    health: list[float] = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            started = time.perf_counter()
            assert httpx.get(f"{ops.url}/healthz", timeout=5).status_code == 200
            health.append(time.perf_counter() - started)
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        for path in ("/ask", "/ask/stream"):
            started = time.perf_counter()
            response = httpx.post(
                f"{ops.url}{path}", json={"question": "它呢？", "history": history}, headers=client(), timeout=30
            )
            assert time.perf_counter() - started < 1
            assert response.status_code == 422 and response.json()["code"] == "bad_input"
            assert "200 messages; the limit is 50" in response.json()["detail"]
        messages = [{"role": "user", "content": "参" * 1_000_000}] * 3 + [{"role": "user", "content": "MedGPT呢？"}]
        started = time.perf_counter()
        response = httpx.post(
            f"{ops.url}/v1/chat/completions",
            json={"model": "medrag", "messages": messages},
            headers=client(),
            timeout=30,
        )
        assert time.perf_counter() - started < 1
        assert response.status_code == 422 and response.json()["code"] == "bad_input"
        assert "the limit is 20000" in response.json()["detail"]
    finally:
        stop.set()
        poller.join()
    assert health and max(health) < 0.5


def test_the_character_cap_counts_question_and_history_together(ops):
    history = [{"role": "user", "content": "问" * 10_000}, {"role": "assistant", "content": "答" * 9_990}]
    response = httpx.post(
        f"{ops.url}/ask", json={"question": "MedGPT有多少参数？", "history": history}, headers=client(), timeout=30
    )
    assert response.status_code == 422 and response.json()["code"] == "bad_input"
    assert "20002 characters" in response.json()["detail"]


def test_fifty_turns_within_the_limits_are_answered_quickly(ops):
    history = [
        {"role": "user", "content": "MedGPT是什么？它由哪家公司发布？" * 10}
        if i % 2 == 0
        else {"role": "assistant", "content": "MedGPT是医联发布的医疗大模型。" * 10}
        for i in range(50)
    ]
    assert sum(len(turn["content"]) for turn in history) < 20_000
    started = time.perf_counter()
    response = httpx.post(
        f"{ops.url}/ask", json={"question": "它有多少参数？", "history": history}, headers=client(), timeout=30
    )
    assert response.status_code == 200, response.text
    assert time.perf_counter() - started < 5
    assert "MedGPT" in response.json()["query"]
    too_many = history + [{"role": "assistant", "content": "好的。"}]
    response = httpx.post(f"{ops.url}/ask", json={"question": "它呢？", "history": too_many}, headers=client())
    assert response.status_code == 422 and "51 messages; the limit is 50" in response.json()["detail"]


# /metrics


def test_metrics_count_requests_answers_and_describe_the_live_version(ops):
    before = metrics(ops)
    found = ("medrag_answers_total", (("outcome", "found"),))
    refused = ("medrag_answers_total", (("outcome", "refused"),))
    asked = ("medrag_http_requests_total", (("method", "POST"), ("route", "/ask"), ("status", "200")))
    latency = ("medrag_http_request_duration_seconds_count", asked[1])
    headers = client()
    assert httpx.post(f"{ops.url}/ask", json={"question": "MedGPT有多少参数？"}, headers=headers, timeout=30).json()[
        "found"
    ]
    unanswerable = {"question": "What is the boiling point of water on Mount Everest?"}
    assert not httpx.post(f"{ops.url}/ask", json=unanswerable, headers=headers, timeout=30).json()["found"]
    after = metrics(ops)
    assert after[found] == before.get(found, 0) + 1
    assert after[refused] == before.get(refused, 0) + 1
    assert after[asked] == before.get(asked, 0) + 2
    assert after[latency] == before.get(latency, 0) + 2
    assert after[("medrag_answer_stage_seconds_count", (("stage", "total"),))] >= 2
    health = httpx.get(f"{ops.url}/healthz").json()["index"]
    assert after[("medrag_index_chunks", ())] == health["chunks"]
    version = ("medrag_index_version_info", (("model_id", health["model_id"]), ("version", health["version"])))
    assert after[version] == 1
    assert after[("medrag_index_loaded", ())] == 1
    assert {state for (name, labels), _ in after.items() if name == "medrag_jobs" for _, state in labels} == {
        "queued",
        "running",
        "done",
        "failed",
        "cancelled",
    }
    # A URL with an id in it is counted under its route's template, and unknown paths under one label.
    httpx.get(f"{ops.url}/documents/no-such-document")
    httpx.get(f"{ops.url}/no/such/{uuid.uuid4().hex}")
    after = metrics(ops)
    assert after[
        ("medrag_http_requests_total", (("method", "GET"), ("route", "/documents/{doc_id}"), ("status", "404")))
    ]
    assert after[("medrag_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))]


# Rate limits


def test_a_burst_from_one_client_is_limited_while_another_is_served(ops):
    greedy, patient = client(), client()
    statuses = [httpx.get(f"{ops.url}/v1/models", headers=greedy).status_code for _ in range(BURST + 2)]
    assert statuses[:BURST] == [200] * BURST and statuses[BURST:] == [429, 429]
    refused = httpx.get(f"{ops.url}/search", params={"q": "MedGPT"}, headers={**greedy, "Origin": ORIGIN})
    assert refused.status_code == 429
    assert refused.json() == {"detail": refused.json()["detail"], "code": "rate_limited"}
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert refused.headers["x-request-id"]
    assert httpx.get(f"{ops.url}/search", params={"q": "MedGPT"}, headers=patient, timeout=30).status_code == 200
    assert httpx.get(f"{ops.url}/healthz", headers=greedy).status_code == 200  # not a limited route
    limited = ("medrag_http_requests_total", (("method", "GET"), ("route", "/search"), ("status", "429")))
    assert metrics(ops)[limited] >= 1


def test_an_untrusted_peer_cannot_pick_its_address_with_x_forwarded_for(ops):
    # No bearer token: keyed by address; the loopback peer is no trusted proxy, so its header is ignored.
    statuses = [
        httpx.post(
            f"{ops.url}/feedback",
            json={"rating": "up", "question": "q", "answer": "a"},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        ).status_code
        for n in range(BURST + 1)
    ]
    assert statuses == [201] * BURST + [429]


def test_client_addresses_come_from_trusted_proxies_only():
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    via = Headers({"x-forwarded-for": "198.51.100.7, 10.1.2.3"})
    assert client_address({"client": ("10.0.0.1", 1234)}, via, trusted) == "198.51.100.7"
    assert client_address({"client": ("192.0.2.1", 1234)}, via, trusted) == "192.0.2.1"
    assert client_address({"client": ("10.0.0.1", 1234)}, via, ()) == "10.0.0.1"
    # A client's own entries left of the last untrusted hop are not believed.
    spoofed = Headers({"x-forwarded-for": "1.2.3.4, 198.51.100.7"})
    assert client_address({"client": ("10.0.0.1", 1234)}, spoofed, trusted) == "198.51.100.7"
    assert client_address({"client": ("10.0.0.1", 1234)}, Headers({}), trusted) == "10.0.0.1"
    assert client_key(Headers({"authorization": "Bearer abc"}), "10.0.0.1").startswith("token:")
    assert "abc" not in client_key(Headers({"authorization": "Bearer abc"}), "10.0.0.1")
    assert client_key(Headers({}), "10.0.0.1") == "address:10.0.0.1"


def test_the_token_bucket_refills_at_its_rate():
    now = [0.0]
    bucket = TokenBucket(per_minute=60, burst=2, clock=lambda: now[0])
    assert [bucket.take("a"), bucket.take("a")] == [0, 0]
    assert bucket.take("a") == pytest.approx(1.0)
    assert bucket.take("b") == 0
    now[0] = 0.5
    assert bucket.take("a") == pytest.approx(0.5)
    now[0] = 1.0
    assert bucket.take("a") == 0


# Request ids, the access log, CORS


def test_every_response_carries_a_request_id_kept_from_the_request_when_sane(ops):
    kept = httpx.get(f"{ops.url}/healthz", headers={"X-Request-ID": "trace-42.a:b"})
    assert kept.headers["x-request-id"] == "trace-42.a:b"
    for bad in ("has spaces", "x" * 200, "new\\nline"):
        replaced = httpx.get(f"{ops.url}/healthz", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert replaced != bad and len(replaced) == 32
    for response in (
        httpx.get(f"{ops.url}/no-such-page"),
        httpx.post(f"{ops.url}/ask", json={"question": ""}, headers=client()),
        httpx.get(f"{ops.url}/metrics"),
    ):
        assert len(response.headers["x-request-id"]) == 32
    first, second = (httpx.get(f"{ops.url}/healthz").headers["x-request-id"] for _ in range(2))
    assert first != second


def test_the_access_log_names_the_request_id_but_not_the_question(ops):
    secret = f"QUESTION{uuid.uuid4().hex}"
    response = httpx.get(f"{ops.url}/search", params={"q": secret}, headers=client(), timeout=30)
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while request_id not in ops.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = ops.log_path.read_text()
    line = next(line for line in log.splitlines() if request_id in line)
    assert '"GET /search"' in line and f" {response.status_code} " in line
    assert secret not in log


def test_error_responses_carry_the_cors_headers(ops):
    headers = {**client(), "Origin": ORIGIN}
    response = httpx.post(f"{ops.url}/ask", json={"question": ""}, headers=headers)
    assert response.status_code == 422 and response.json()["code"] == "bad_input"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]
    invalid = httpx.post(f"{ops.url}/ask", json={"question": 42}, headers=headers)
    assert invalid.status_code == 422 and invalid.headers["access-control-allow-origin"] == ORIGIN
    missing = httpx.get(f"{ops.url}/documents/nothing-here", headers={"Origin": ORIGIN})
    assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == ORIGIN


# Feedback rotation


def test_the_feedback_file_is_rotated_before_it_passes_its_cap(ops):
    path = ops.feedback_path
    for n in range(8):
        body = {"rating": "down", "question": f"问题{n}", "answer": "答" * 300}
        assert httpx.post(f"{ops.url}/feedback", json=body, headers=client()).status_code == 201
    rotated = path.with_name(path.name + ".1")
    assert rotated.exists() and path.exists()
    assert path.stat().st_size <= 2048 and rotated.stat().st_size <= 2048
    lines = rotated.read_text(encoding="utf-8").splitlines() + path.read_text(encoding="utf-8").splitlines()
    assert "问题7" in lines[-1]


# In-process: what a real server cannot be made to do on demand (an unexpected error, a write job).


def test_an_unexpected_error_keeps_the_error_shape_request_id_and_cors(tmp_path):
    app = create_app(Settings(index_dir=tmp_path / "index", cors_origins=ORIGIN))

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/boom", headers={"Origin": ORIGIN, "X-Request-ID": "req-500"})
    assert response.status_code == 500 and response.json()["code"] == "internal_error"
    assert response.headers["x-request-id"] == "req-500"
    assert response.headers["access-control-allow-origin"] == ORIGIN


def test_jobs_are_counted_by_state_with_their_durations_in_each_apps_own_registry(tmp_path):
    token = {"Authorization": "Bearer admin-token"}
    apps = [create_app(Settings(index_dir=tmp_path / f"index-{n}", admin_token="admin-token")) for n in range(2)]
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        response = first.post(
            "/documents", json={"title": "蓝鲸", "text": "蓝鲸医疗模型由北极星医院于2031年发布。"}, headers=token
        )
        assert response.status_code == 202, response.text
        job = first.get(response.headers["location"], headers=token).json()
        deadline = time.monotonic() + 60
        while job["state"] not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = first.get(response.headers["location"], headers=token).json()
        assert job["state"] == "done", job
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(first.get("/metrics").text)
            for s in family.samples
        }
        assert samples[("medrag_jobs_finished_total", (("kind", "add"), ("state", "done")))] == 1
        assert samples[("medrag_job_duration_seconds_count", (("kind", "add"), ("state", "done")))] == 1
        assert samples[("medrag_jobs", (("state", "done"),))] == 1
        assert samples[("medrag_index_chunks", ())] >= 1
        others = second.get("/metrics").text
        assert "medrag_jobs_finished_total{" not in others and "medrag_index_loaded 0.0" in others
