"""The widget's files, the demo page and CORS for pages on other origins."""

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from medrag.api.app import create_app
from medrag.settings import Settings

PAGE = "https://clinic.example.org"


def client_for(tmp_path, **settings) -> TestClient:
    return TestClient(
        create_app(Settings(index_dir=tmp_path / "index", feedback_path=tmp_path / "fb.jsonl", **settings))
    )


def test_widget_script_and_demo_page_are_served(tmp_path):
    client = client_for(tmp_path)
    script = client.get("/widget.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "attachShadow" in script.text
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/widget.js"' in page.text


def test_a_missing_widget_folder_is_a_clear_error(tmp_path):
    response = client_for(tmp_path, widget_dir=tmp_path / "nowhere").get("/widget.js")
    assert response.status_code == 500
    assert response.json()["code"] == "config_error" and "MEDRAG_WIDGET_DIR" in response.json()["detail"]


def preflight(client: TestClient, origin: str):
    return client.options(
        "/ask/stream",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_listed_origins_may_call_the_api(tmp_path):
    client = client_for(tmp_path, cors_origins=[PAGE])
    response = preflight(client, PAGE)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == PAGE
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in response.headers
    posted = client.post("/feedback", json={"rating": "up", "question": "q", "answer": "a"}, headers={"Origin": PAGE})
    assert posted.status_code == 201 and posted.headers["access-control-allow-origin"] == PAGE


def test_other_origins_get_no_cors_headers(tmp_path):
    client = client_for(tmp_path, cors_origins=[PAGE])
    assert "access-control-allow-origin" not in preflight(client, "https://evil.example.com").headers
    assert "access-control-allow-origin" not in preflight(client_for(tmp_path), PAGE).headers


def test_star_allows_any_origin(tmp_path):
    response = preflight(client_for(tmp_path, cors_origins=["*"]), "http://127.0.0.1:5173")
    assert response.headers["access-control-allow-origin"] == "*"


def test_origins_are_read_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("MEDRAG_CORS_ORIGINS", " https://a.example.org/, http://127.0.0.1:8080 ,")
    assert Settings().cors_origins == ["https://a.example.org", "http://127.0.0.1:8080"]


@pytest.mark.parametrize("bad", ["a.example.org", "https://a.example.org/widget", "ftp://a.example.org"])
def test_a_bad_origin_is_refused_with_its_name(monkeypatch, bad):
    monkeypatch.setenv("MEDRAG_CORS_ORIGINS", bad)
    with pytest.raises(ValidationError, match=f"MEDRAG_CORS_ORIGINS: '{bad}' is not an origin"):
        Settings()
