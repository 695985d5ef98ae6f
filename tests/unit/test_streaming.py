"""Answer pieces and the SSE framing, including a failure in the middle of a stream."""

import json

from hypothesis import given
from hypothesis import strategies as st

from medrag.answering import pieces
from medrag.api.streaming import answer_events
from medrag.errors import GeneratorError
from medrag.types import Answer, Reply


def parse(chunks: list[str]) -> list[tuple[str, dict]]:
    result = []
    for block in "".join(chunks).split("\n\n")[:-1]:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        result.append((name[7:], json.loads(data[6:])))
    return result


def test_pieces_end_at_markers():
    assert pieces("参数规模：1000亿参数。[1]发布于2023年。[2]") == ["参数规模：1000亿参数。[1]", "发布于2023年。[2]"]
    assert pieces("no markers") == ["no markers"]
    assert pieces("") == []


@given(st.text(alphabet="ab[]0123456789。\n", max_size=60))
def test_pieces_join_back_to_the_text(text):
    assert "".join(pieces(text)) == text


def test_events_are_deltas_then_done():
    answer = Answer(text="第一句。[1]第二句\n换行。", found=False)
    received = parse(list(answer_events(iter(["第一句。[1]", "第二句\n换行。", Reply(answer, {})]))))
    assert received[:2] == [("delta", {"text": "第一句。[1]"}), ("delta", {"text": "第二句\n换行。"})]
    assert received[2][0] == "done"
    assert received[2][1]["answer"] == answer.text and received[2][1]["found"] is False


def test_a_failure_mid_stream_becomes_an_error_event():
    def failing():
        yield "部分回答"
        raise GeneratorError("the language model stopped answering")

    received = parse(list(answer_events(failing())))
    assert received == [
        ("delta", {"text": "部分回答"}),
        ("error", {"detail": "the language model stopped answering", "code": "generator_failed"}),
    ]


def test_an_unexpected_failure_hides_its_details():
    def failing():
        raise KeyError("secret internals")
        yield

    [(name, data)] = parse(list(answer_events(failing())))
    assert name == "error" and data["code"] == "internal_error" and "secret" not in data["detail"]
