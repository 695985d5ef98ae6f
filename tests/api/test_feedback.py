"""POST /feedback: validated, appended to the operators' JSONL file, never rewritten."""

import json
import threading

import pytest
from fastapi.testclient import TestClient

from medrag.api.app import create_app
from medrag.settings import Settings

GOOD = {
    "rating": "up",
    "question": "MedGPT有多少参数？",
    "answer": "参数规模：1000亿参数。[1]",
    "found": True,
    "chunk_ids": ["report-190f4f39:0001"],
}


def client_for(tmp_path, feedback_path=None) -> TestClient:
    # No lifespan: feedback needs no index or model.
    settings = Settings(index_dir=tmp_path / "index", feedback_path=feedback_path or tmp_path / "fb" / "feedback.jsonl")
    return TestClient(create_app(settings))


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_feedback_is_appended(tmp_path):
    client = client_for(tmp_path)
    path = tmp_path / "fb" / "feedback.jsonl"
    first = client.post("/feedback", json=GOOD)
    assert first.status_code == 201 and first.json()["stored"] is True
    before = path.read_bytes()
    second = client.post("/feedback", json={**GOOD, "rating": "down", "comment": " 不够详细 "})
    assert second.status_code == 201
    assert path.read_bytes().startswith(before)
    records = lines(path)
    assert [r["rating"] for r in records] == ["up", "down"]
    assert records[0]["id"] == first.json()["id"] and records[1]["id"] == second.json()["id"]
    assert records[0]["question"] == GOOD["question"] and records[0]["chunk_ids"] == GOOD["chunk_ids"]
    assert records[1]["comment"] == "不够详细"
    assert records[0]["time"].endswith("+00:00")


@pytest.mark.parametrize(
    "change",
    [
        {"rating": "meh"},
        {"rating": None},
        {"question": "   "},
        {"answer": ""},
        {"answer": "x" * 20001},
        {"chunk_ids": ["c"] * 51},
        {"chunk_ids": "not-a-list"},
        {"comment": "x" * 2001},
        {"unexpected": "field"},
    ],
)
def test_bad_feedback_is_refused_and_nothing_is_written(tmp_path, change):
    client = client_for(tmp_path)
    response = client.post("/feedback", json={**GOOD, **change})
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert not (tmp_path / "fb").exists()


def test_not_json_is_refused(tmp_path):
    response = client_for(tmp_path).post(
        "/feedback", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["code"] == "validation_error"


def test_an_unwritable_path_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    client = client_for(tmp_path, feedback_path=tmp_path / "a-file" / "feedback.jsonl")
    response = client.post("/feedback", json=GOOD)
    assert response.status_code == 500
    # A disk that refuses a write is a storage failure, not a configuration error (issue 10).
    assert response.json()["code"] == "storage_failed"
    assert "MEDRAG_FEEDBACK_PATH" in response.json()["detail"]


def test_concurrent_feedback_keeps_every_line_whole(tmp_path):
    client = client_for(tmp_path)
    answers = [f"回答{i}" * 200 for i in range(24)]
    threads = [
        threading.Thread(target=client.post, args=("/feedback",), kwargs={"json": {**GOOD, "answer": a}})
        for a in answers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r["answer"] for r in lines(tmp_path / "fb" / "feedback.jsonl")) == sorted(answers)
