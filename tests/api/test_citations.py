"""Citations people can check: the quoted sentence, its offsets in the passage and the document, and a deep link."""

import json
import time
from urllib.parse import unquote

import httpx
import pytest
from fastapi.testclient import TestClient

from medrag import corpus
from medrag.api.app import create_app
from medrag.chunking import clean
from medrag.settings import Settings

from ..conftest import CORPUS

pytestmark = pytest.mark.slow

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EGRET_URL = "https://example.org/devices/egret-2?lang=zh#specs"
EGRET = (
    "# 白鹭检测仪\n\n"
    "**白鹭-2型**检测仪由[东湖医院](https://example.org/donghu)研制，一次采血可同时检测HIV & HBV。"
    "它于2031年在三家医院投入使用。\n"
)
QUESTION = "白鹭-2型检测仪一次采血可以同时检测什么？"
SENTENCE = "白鹭-2型检测仪由东湖医院研制，一次采血可同时检测HIV & HBV。"
# The directive's text, encoded by hand: `-` `,` `&` and spaces percent-encoded, the rest as UTF-8 escapes.
ENCODED = (
    "%E7%99%BD%E9%B9%AD%2D2%E5%9E%8B%E6%A3%80%E6%B5%8B%E4%BB%AA%E7%94%B1%E4%B8%9C%E6%B9%96%E5%8C%BB%E9%99%A2"
    "%E7%A0%94%E5%88%B6%EF%BC%8C%E4%B8%80%E6%AC%A1%E9%87%87%E8%A1%80%E5%8F%AF%E5%90%8C%E6%97%B6%E6%A3%80%E6%B5%8B"
    "HIV%20%26%20HBV%E3%80%82"
)


def check_quote(citation: dict, document_text: str) -> dict:
    """The quote is where it says it is, in the passage and in the document's raw text; returns it."""
    quote = citation["quote"]
    assert set(quote) == {"text", "passage_start", "passage_end", "document_start", "document_end"}
    assert quote["text"] and citation["text"][quote["passage_start"] : quote["passage_end"]] == quote["text"]
    assert clean(document_text[quote["document_start"] : quote["document_end"]]) == quote["text"]
    return quote


def test_an_answer_quotes_its_sentence_in_the_passage_and_in_the_report(server):
    body = httpx.post(f"{server.url}/ask", json={"question": "MedGPT有多少参数？"}, timeout=30).json()
    [report] = [d for d in corpus.load_paths([CORPUS]) if d.doc_id == body["citations"][0]["doc_id"]]
    for citation in body["citations"]:
        quote = check_quote(citation, report.text)
        assert quote["text"] in body["answer"]  # an extractive answer is made of its quotes
        assert citation["deep_link"] is None  # the report is a local file: no URL to link into
    hits = httpx.get(f"{server.url}/search", params={"q": "MedGPT 参数", "k": 2}, timeout=30).json()["hits"]
    assert all(h["quote"] is None and h["deep_link"] is None for h in hits)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    index_dir = tmp_path_factory.mktemp("citations") / "index"
    with TestClient(create_app(Settings(index_dir=index_dir, admin_token=TOKEN))) as client:
        response = client.post(
            "/documents", json={"title": "白鹭检测仪", "text": EGRET, "url": EGRET_URL}, headers=AUTH
        )
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 60
        while (job := client.get(response.headers["location"], headers=AUTH).json())["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["state"] == "done", job
        yield client


def test_a_document_with_a_url_gets_a_deep_link_to_the_quote(client):
    body = client.post("/ask", json={"question": QUESTION}).json()
    assert body["found"], body
    [citation] = body["citations"]
    quote = check_quote(citation, EGRET)
    assert quote["text"] == SENTENCE
    # The document's span holds the markup the passage drops: the emphasis and the whole link.
    assert EGRET[quote["document_start"] : quote["document_end"]] == (
        "白鹭-2型**检测仪由[东湖医院](https://example.org/donghu)研制，一次采血可同时检测HIV & HBV。"
    )
    assert citation["url"] == EGRET_URL
    # The URL's own fragment stays before the directive (`#specs:~:text=`).
    assert citation["deep_link"] == f"{EGRET_URL}:~:text={ENCODED}"
    assert unquote(ENCODED) == SENTENCE


def test_chat_completions_citations_carry_the_same_quote_and_deep_link(client):
    asked = client.post("/ask", json={"question": QUESTION}).json()["citations"]
    request = {"model": "medrag", "messages": [{"role": "user", "content": QUESTION}]}
    completion = client.post("/v1/chat/completions", json=request).json()
    assert [(c["quote"], c["deep_link"]) for c in completion["citations"]] == [
        (c["quote"], c["deep_link"]) for c in asked
    ]
    with client.stream("POST", "/v1/chat/completions", json={**request, "stream": True}) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    assert events[-1]["citations"][0]["deep_link"] == asked[0]["deep_link"]
