"""Following a write job over HTTP, for tests that drive a real server."""

import time

import httpx


def finish(http: httpx.Client, response: httpx.Response, auth: dict[str, str], timeout: float = 120) -> dict:
    """The job a 202 response queued, once it is done or failed (polled at its Location)."""
    assert response.status_code == 202, response.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(response.headers["location"], headers=auth).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job did not finish in {timeout:g} s")
