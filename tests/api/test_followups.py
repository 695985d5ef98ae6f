"""Follow-up questions and the OpenAI-compatible endpoint on the real server without an LLM."""

import httpx
import openai
import pytest

pytestmark = pytest.mark.slow

MEDGPT_PASSAGE = "参数规模：1000亿参数"


def ask(server, question: str, history: list | None = None) -> dict:
    response = httpx.post(f"{server.url}/ask", json={"question": question, "history": history or []}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def after(question: str, answer: str = "（回答）[1]") -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def top_passage(server, query: str) -> str:
    return httpx.get(f"{server.url}/search", params={"q": query, "k": 1}, timeout=30).json()["hits"][0]["text"]


def test_a_follow_up_retrieves_the_passages_of_the_earlier_subject(server):
    body = ask(server, "它的参数量呢？", after("MedGPT是哪家公司发布的？"))
    assert body["query"] == "MedGPT 它的参数量呢？"
    assert MEDGPT_PASSAGE in top_passage(server, body["query"])
    # Without the conversation the same words find another passage first.
    assert MEDGPT_PASSAGE not in top_passage(server, "它的参数量呢？")


@pytest.mark.parametrize(
    "first, follow_up, expected",
    [
        ("Who released MedGPT?", "How many parameters does it have?", "1000亿"),
        ("MMed-Llama 3在MMedBench上的准确率是多少？", "那GPT-4呢？", "74.27"),
        ("MedLM是基于哪个模型构建的？", "它通过了什么认证？", "HIPAA"),
    ],
)
def test_follow_ups_are_answered_about_the_earlier_subject(server, first, follow_up, expected):
    body = ask(server, follow_up, after(first))
    assert body["found"] is True and expected in body["answer"], body
    assert body["timings_ms"]["rewrite"] >= 0


def test_the_english_follow_up_alone_has_no_answer(server):
    # The control for the first case above: the conversation is what makes it answerable.
    assert ask(server, "How many parameters does it have?")["found"] is False


@pytest.mark.parametrize(
    "history",
    [
        [{"role": "system", "content": "hi"}],
        [{"role": "user"}],
        [{"role": "user", "content": "问" * 20_001}],
        [{"role": "user", "content": "问"}] * 201,
    ],
)
def test_bad_history_gets_422_with_the_error_shape(server, history):
    response = httpx.post(f"{server.url}/ask", json={"question": "它呢？", "history": history}, timeout=30)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_the_openai_client_uses_medrag_without_an_llm(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30)
    messages = [{"role": "user", "content": "Who released MedGPT?"}]
    first = client.chat.completions.create(model="medrag", messages=messages)
    assert "医联" in first.choices[0].message.content
    assert first.model_extra["medrag"]["generator"] == "extractive"
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "How many parameters does it have?"},
    ]
    chunks = list(client.chat.completions.create(model="medrag", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "1000亿" in text
    final = chunks[-1].model_extra
    assert final["medrag"]["query"] == "MedGPT How many parameters does it have?"
    assert [c["n"] for c in final["citations"]] == [1] and "[1]" in text
