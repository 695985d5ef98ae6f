"""The chat-completions client against a scripted OpenAI-compatible server on loopback."""

import time

import pytest

from medrag.errors import GeneratorError
from medrag.llm import ChatClient

from ..conftest import free_port
from ..fakellm import Cut, Raw, Reply, Slow, Status

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def llm(fake):
    fake.reset()
    client = ChatClient(fake.url, "fake-model", "secret-key", timeout=1.0, retries=2, backoff=0.01)
    yield client
    client.close()


@pytest.mark.parametrize("stream", [False, True])
def test_reply_text_and_request(llm, fake, stream):
    fake.then(Reply("MedGPT由医联发布[1]。", piece=3))
    pieces = list(llm.chat(MESSAGES, stream=stream))
    assert "".join(pieces) == "MedGPT由医联发布[1]。"
    assert len(pieces) == (5 if stream else 1)
    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer secret-key"
    assert request["body"]["model"] == "fake-model"
    assert request["body"]["stream"] is stream
    assert request["body"]["messages"] == MESSAGES


@pytest.mark.parametrize("stream", [False, True])
def test_429_then_success_is_retried(llm, fake, stream):
    fake.then(Status(429, retry_after="0"), Status(503), Reply("ok"))
    assert "".join(llm.chat(MESSAGES, stream=stream)) == "ok"
    assert len(fake.requests) == 3


def test_lasting_500_gives_up_after_the_retries(llm, fake):
    fake.then(*[Status(500)] * 5)
    with pytest.raises(GeneratorError, match=r"HTTP 500 after 3 attempt\(s\)"):
        list(llm.chat(MESSAGES))
    assert len(fake.requests) == 3


def test_client_errors_are_not_retried(llm, fake):
    fake.then(Status(401), Reply("never"))
    with pytest.raises(GeneratorError, match=r"HTTP 401 after 1 attempt"):
        list(llm.chat(MESSAGES))
    assert len(fake.requests) == 1


def test_a_long_retry_after_is_a_failure_not_a_wait(llm, fake):
    fake.then(Status(429, retry_after="3600"))
    with pytest.raises(GeneratorError, match="asks for a wait of 3600s"):
        list(llm.chat(MESSAGES))


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_json_is_an_error(llm, fake, stream):
    fake.then(Raw('{"choices": [{"message": '))
    with pytest.raises(GeneratorError, match="malformed JSON"):
        list(llm.chat(MESSAGES, stream=stream))


def test_a_reply_without_content_is_an_error(llm, fake):
    fake.then(Raw('{"choices": []}'))
    with pytest.raises(GeneratorError, match=r"no choices\[0\].message.content"):
        list(llm.chat(MESSAGES))


def test_a_slow_server_times_out_without_retrying(llm, fake):
    fake.then(Slow(3, Reply("late")))
    started = time.monotonic()
    with pytest.raises(GeneratorError, match="did not answer within 1s"):
        list(llm.chat(MESSAGES))
    assert time.monotonic() - started < 2.5
    assert len(fake.requests) == 1


def test_time_the_caller_spends_on_the_pieces_does_not_count_against_the_llm(llm, fake):
    # The LLM streams at once; the caller checks each piece for 0.3s, 1.5s in all (the timeout is 1s).
    fake.then(Reply("医联发布了MedGPT", piece=2))
    pieces = []
    for piece in llm.chat(MESSAGES, stream=True):
        time.sleep(0.3)
        pieces.append(piece)
    assert "".join(pieces) == "医联发布了MedGPT"


def test_a_stream_that_breaks_off_is_an_error(llm, fake):
    fake.then(Cut("MedGPT由医联"))
    pieces = []
    with pytest.raises(GeneratorError, match="broke off"):
        for piece in llm.chat(MESSAGES, stream=True):
            pieces.append(piece)
    assert "".join(pieces) == "MedGPT由医联"


def test_a_refused_connection_is_retried_then_reported():
    client = ChatClient(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=1.0, retries=1, backoff=0.01)
    with pytest.raises(GeneratorError, match="connection failed"):
        list(client.chat(MESSAGES))
