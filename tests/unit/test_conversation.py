"""Follow-up questions without an LLM: what the heuristic carries over from the previous question."""

import pytest

from medrag.conversation import heuristic_query
from medrag.query import entities, points_back
from medrag.types import Turn


@pytest.mark.parametrize(
    "question, names",
    [
        ("MedGPT是哪家公司发布的？", ["MedGPT"]),
        ("哪家医院与Google Cloud合作引入了MedLM？", ["Google Cloud", "MedLM"]),
        ("MMed-Llama 3在MMedBench上的准确率是多少？", ["MMed-Llama 3", "MMedBench"]),
        ("What accuracy did GPT-4 reach on MMedBench?", ["GPT-4", "MMedBench"]),
        ("上海交通大学团队开发了什么模型？", ["上海交通大学"]),
        ("How many parameters does it have?", []),
        ("它的参数量呢？", []),
    ],
)
def test_entities(question, names):
    assert entities(question) == names


@pytest.mark.parametrize(
    "question, expected",
    [
        ("它的参数量呢？", True),
        ("其准确率是多少？", True),
        ("What is its accuracy?", True),
        ("MedGPT的参数量是多少？", False),
        ("其他模型呢？", False),
    ],
)
def test_points_back(question, expected):
    assert points_back(question) is expected


def user(*questions: str) -> list[Turn]:
    turns = []
    for question in questions:
        turns += [Turn("user", question), Turn("assistant", "（回答）[1]")]
    return turns


@pytest.mark.parametrize(
    "history, question, query",
    [
        # A pronoun or no name of its own: the previous question's names come along.
        (user("MedGPT是哪家公司发布的？"), "它的参数量呢？", "MedGPT 它的参数量呢？"),
        (user("MedGPT是哪家公司发布的？"), "什么时候发布的？", "MedGPT 什么时候发布的？"),
        (user("Who released MedGPT?"), "How many parameters does it have?", "MedGPT How many parameters does it have?"),
        (user("哪家医院与Google Cloud合作引入了MedLM？"), "它基于哪个模型？", "Google Cloud MedLM 它基于哪个模型？"),
        # A pronoun beside a new name: both.
        (user("MedGPT是哪家公司发布的？"), "它和MMed-Llama 3哪个参数多？", "MedGPT 它和MMed-Llama 3哪个参数多？"),
        # Only a new name: the previous question's topic comes along.
        (user("MMed-Llama 3在MMedBench上的准确率是多少？"), "那GPT-4呢？", "那GPT-4呢？ 准确率"),
        (user("MedGPT覆盖多少病种？"), "What about MedLM?", "What about MedLM? 覆盖 病种"),
        # A chain: the name stays through follow-ups that have none.
        (user("MedGPT是哪家公司发布的？", "它的参数量呢？"), "什么时候发布的？", "MedGPT 什么时候发布的？"),
        # A question that stands on its own is left alone.
        (user("MedGPT是哪家公司发布的？"), "MedLM是基于哪个模型构建的？", "MedLM是基于哪个模型构建的？"),
        ([], "它的参数量呢？", "它的参数量呢？"),
        # Only the user's questions set the subject, not the assistant's answers.
        ([Turn("assistant", "MedGPT由医联发布[1]")], "它的参数量呢？", "它的参数量呢？"),
    ],
)
def test_heuristic_query(history, question, query):
    assert heuristic_query(question, history) == query
