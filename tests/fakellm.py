"""A scripted OpenAI-compatible chat-completions server on loopback, standing in for an LLM in tests.

Each request takes the next step of the script; with the script empty it answers sensibly: a
question rewrite echoes the latest question, an answer request quotes the passage sentence that
shares most characters with the question, followed by that passage's marker. Every request is
recorded, so tests can check what medrag sent and how often.
"""

import contextlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from medrag.conversation import REWRITE_INSTRUCTIONS


@dataclass
class Reply:
    """A well-formed answer, streamed in pieces of `piece` characters when the request asks for a stream."""

    text: str
    piece: int = 4


@dataclass
class Written:
    """A reply written from the numbered passages of the request (`write(passages)`), for replies that
    must cite the passage saying something, whatever number retrieval gave it."""

    write: Callable[[list[dict]], str]
    piece: int = 4


@dataclass
class Status:
    """An HTTP error status (429, 500 …) with an OpenAI-style error body."""

    code: int
    retry_after: str | None = None


@dataclass
class Raw:
    """A 200 whose body is `body` as is: malformed JSON, say (sent as one stream event when streaming)."""

    body: str


@dataclass
class Slow:
    """Wait `seconds`, then do `then`."""

    seconds: float
    then: object


@dataclass
class Cut:
    """Stream `text` and close the connection without finishing the stream."""

    text: str


class FakeLLM:
    def __init__(self):
        self.script: deque = deque()
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    step = fake.script.popleft() if fake.script else None
                # The client may give up first (a timeout test): nothing left to tell it then.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fake.respond(self, body, step if step is not None else fake.default(body))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "FakeLLM":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def then(self, *steps) -> "FakeLLM":
        """Queue the steps for the next requests, in order."""
        with self._lock:
            self.script.extend(steps)
        return self

    def reset(self) -> None:
        with self._lock:
            self.script.clear()
            self.requests.clear()

    @staticmethod
    def default(body: dict) -> Reply:
        system, request = body["messages"][0]["content"], body["messages"][-1]["content"]
        if system == REWRITE_INSTRUCTIONS:
            return Reply(request.rsplit("Latest question:", 1)[1].strip())
        passages = passages_of(body)
        question = set(request.rsplit("\n\nQuestion:", 1)[1])
        best = max(
            (
                (len(question & set(sentence)), passage["n"], sentence.strip())
                for passage in passages
                for sentence in re.split(r"(?<=[。！？.!?])", passage["text"])
                if sentence.strip()
            ),
            key=lambda row: (row[0], -row[1]),
        )
        return Reply(f"{best[2]}[{best[1]}]")

    @staticmethod
    def respond(handler: BaseHTTPRequestHandler, body: dict, step) -> None:
        stream = bool(body.get("stream"))
        if isinstance(step, Slow):
            time.sleep(step.seconds)
            step = step.then
        if isinstance(step, Written):
            step = Reply(step.write(passages_of(body)), step.piece)
        if isinstance(step, Status):
            payload = json.dumps({"error": {"message": f"scripted {step.code}", "type": "server_error"}}).encode()
            handler.send_response(step.code)
            if step.retry_after is not None:
                handler.send_header("Retry-After", step.retry_after)
            send(handler, payload, "application/json")
        elif isinstance(step, Raw):
            send(
                handler,
                (f"data: {step.body}\n\n" if stream else step.body).encode(),
                "text/event-stream" if stream else "application/json",
                status=200,
            )
        elif isinstance(step, (Reply, Cut)) and stream:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Connection", "close")
            handler.end_headers()
            head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
            text = step.text
            size = step.piece if isinstance(step, Reply) else 4
            for start in range(0, len(text), size):
                chunk = {
                    **head,
                    "choices": [{"index": 0, "delta": {"content": text[start : start + size]}, "finish_reason": None}],
                }
                handler.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                handler.wfile.flush()
            if isinstance(step, Reply):
                last = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                handler.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
            handler.wfile.flush()
            handler.close_connection = True
        elif isinstance(step, Reply):
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": step.text}, "finish_reason": "stop"}
                ],
            }
            send(handler, json.dumps(payload, ensure_ascii=False).encode(), "application/json", status=200)
        else:
            raise AssertionError(f"a Cut step needs a streaming request: {step}")


def passages_of(body: dict) -> list[dict]:
    """The numbered passages of an answer request, as the LLM received them."""
    request = body["messages"][-1]["content"]
    return json.loads(request.split("\n", 1)[1].rsplit("\n\nQuestion:", 1)[0])


def send(handler: BaseHTTPRequestHandler, payload: bytes, content_type: str, status: int | None = None) -> None:
    if status is not None:
        handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(payload)
    handler.close_connection = True
