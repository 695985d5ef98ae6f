"""The public question set through the real service: answers, evidence and refusals."""

import httpx
import pytest

from medrag.evaluation import evaluate, format_table, load_questions

from .conftest import DATA

pytestmark = pytest.mark.slow


def test_public_questions_reach_the_bar(server, capsys):
    items = load_questions(DATA / "qa_public.jsonl")

    def ask(question):
        return httpx.post(f"{server.url}/ask", json={"question": question}, timeout=60).json()

    def search(question, k):
        return httpx.get(f"{server.url}/search", params={"q": question, "k": k}, timeout=60).json()["hits"]

    report = evaluate(items, ask, search)
    summary = report.summary()
    with capsys.disabled():  # the figures belong in the CI log, pass or fail
        print("\n" + format_table({"hybrid": summary}))
        for item in report.items:
            if not item.correct:
                print(f"missed {item.id}: {item.question} -> {item.answer}")
    assert summary["answer_accuracy"] >= 0.9
    assert summary["cited_evidence"] >= 0.9
    assert summary["evidence_hit@5"] >= 0.9
    assert summary["refusal_accuracy"] >= 0.9
