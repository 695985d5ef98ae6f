"""The question encoder's handles: waiting questions share one call, each gets its own vector.

Fake handles make the line form on purpose (a handle held until the test lets it go); the real
engine's vectors under concurrent questions are checked in test_embedding.py.
"""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from medrag.embedding import Handles


class GatedHandle:
    """Encodes a text as [len, first code point]; the first call waits until `gate` opens."""

    def __init__(self, fail_on: str | None = None):
        self.gate = threading.Event()
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def query(self, texts: list[str]) -> np.ndarray:
        if not self.calls:
            self.gate.wait(10)
        self.calls.append(list(texts))
        if self.fail_on in texts:
            raise RuntimeError("engine failed")
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def line_of(handles: Handles, length: int) -> None:
    deadline = time.monotonic() + 10
    while len(handles._line) < length:
        assert time.monotonic() < deadline, "the callers never queued"
        time.sleep(0.001)


def test_questions_waiting_for_a_busy_handle_are_encoded_in_one_call_and_each_gets_its_own_vector():
    handle = GatedHandle()
    handles = Handles([handle], batch_size=16)
    with ThreadPoolExecutor(4) as callers:
        first = callers.submit(handles.question, "a")
        time.sleep(0.05)  # "a" holds the handle
        rest = [callers.submit(handles.question, text) for text in ("bb", "ccc", "dddd")]
        line_of(handles, 3)
        handle.gate.set()
        vectors = [first.result(), *(future.result() for future in rest)]
    assert handle.calls == [["a"], ["bb", "ccc", "dddd"]]
    assert [v.tolist() for v in vectors] == [[1, 97], [2, 98], [3, 99], [4, 100]]


def test_the_line_is_shared_between_the_handles():
    one, two = GatedHandle(), GatedHandle()
    handles = Handles([one, two], batch_size=16)
    with ThreadPoolExecutor(6) as callers:
        busy = [callers.submit(handles.question, "x"), callers.submit(handles.question, "y")]
        deadline = time.monotonic() + 10
        while handles._free:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        waiting = [callers.submit(handles.question, text) for text in "bcde"]
        line_of(handles, 4)
        one.gate.set()
        two.gate.set()
        results = [f.result().tolist() for f in busy + waiting]
    # The first handle freed takes its share of the four waiting (two), not all of them, so the other
    # handle, freed next, still has questions to encode.
    assert sorted(one.calls[1:] + two.calls[1:]) == [["b", "c"], ["d"], ["e"]]
    assert results == [[1, ord(t)] for t in "xybcde"]


def test_a_caller_wanting_a_handle_of_its_own_keeps_its_place_and_is_not_batched():
    handle = GatedHandle()
    handles = Handles([handle], batch_size=16)
    with ThreadPoolExecutor(4) as callers:
        first = callers.submit(handles.question, "a")
        time.sleep(0.05)
        second = callers.submit(handles.question, "b")
        line_of(handles, 1)
        own = callers.submit(handles.take)
        line_of(handles, 2)
        third = callers.submit(handles.question, "c")
        line_of(handles, 3)
        handle.gate.set()
        assert own.result(10) is handle
        handles.give_back(handle)
        assert [f.result().tolist() for f in (first, second, third)] == [[1, 97], [1, 98], [1, 99]]
    assert handle.calls == [["a"], ["b"], ["c"]]


def test_an_engine_error_reaches_every_question_of_the_batch():
    handle = GatedHandle(fail_on="boom")
    handles = Handles([handle], batch_size=16)
    with ThreadPoolExecutor(3) as callers:
        first = callers.submit(handles.question, "a")
        time.sleep(0.05)
        rest = [callers.submit(handles.question, text) for text in ("boom", "c")]
        line_of(handles, 2)
        handle.gate.set()
        assert first.result().tolist() == [1, 97]
        for future in rest:
            with pytest.raises(RuntimeError, match="engine failed"):
                future.result()
    assert handles.question("z").tolist() == [1, 122]  # the handle came back
