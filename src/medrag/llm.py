"""A client for any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp, cloud APIs).

Only the protocol lives here: messages in, text out, streaming or not. Requests that fail with
429, a 5xx status or a refused connection are retried with exponential backoff; a read timeout is
not retried, so one slow server costs at most `timeout` seconds per call. Every failure, including
a reply that does not follow the protocol, is raised as a `GeneratorError` with a readable reason.
"""

import json
import logging
import time
from collections.abc import Iterator

import httpx

from .errors import GeneratorError

log = logging.getLogger("medrag.llm")
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# Longest wait honoured from a Retry-After header; a longer one is a failure, not a wait.
MAX_RETRY_AFTER = 10.0


def json_lines(items: list[dict]) -> str:
    """A JSON array with one item a line, for quoting data in a prompt: compact, and no text escapes its quotes."""
    return "[\n" + ",\n".join(json.dumps(item, ensure_ascii=False) for item in items) + "\n]"


class ChatClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: int = 2,
        backoff: float = 0.5,
        max_tokens: int = 800,
        temperature: float = 0.0,
    ):
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_tokens = max_tokens
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    def close(self) -> None:
        self.http.close()

    def chat(self, messages: list[dict], *, stream: bool = False) -> Iterator[str]:
        """The reply's text in pieces as they arrive (one piece when not streaming)."""
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stream": stream,
        }
        deadline = time.monotonic() + self.timeout
        try:
            response = self._open(body)
            try:
                if not stream:
                    response.read()
                    yield self._content(response)
                    return
                for piece in self._pieces(response):
                    if time.monotonic() > deadline:
                        raise GeneratorError(f"the LLM took longer than {self.timeout:g}s")
                    handed = time.monotonic()
                    yield piece
                    # The deadline is the LLM's: time the caller spends on a piece (checking it) does not count.
                    deadline += time.monotonic() - handed
            finally:
                response.close()
        except httpx.TimeoutException as error:
            raise GeneratorError(f"the LLM did not answer within {self.timeout:g}s ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise GeneratorError(f"the LLM connection failed: {error!r}") from error

    def _open(self, body: dict):
        """The response of the first attempt that is not a retryable failure, opened as a stream."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                request = self.http.build_request("POST", "chat/completions", json=body)
                response = self.http.send(request, stream=True)
            except (httpx.ConnectError, httpx.RemoteProtocolError) as error:
                if last:
                    raise
                log.warning("LLM connection failed (%r); retrying", error)
                time.sleep(self.backoff * 2**attempt)
                continue
            if response.status_code == 200:
                return response
            response.read()
            response.close()
            detail = response.text[:300]
            if response.status_code not in RETRY_STATUS or last:
                raise GeneratorError(
                    f"the LLM answered HTTP {response.status_code} after {attempt + 1} attempt(s): {detail}"
                )
            wait = self._retry_after(response)
            wait = self.backoff * 2**attempt if wait is None else wait
            if wait > MAX_RETRY_AFTER:
                raise GeneratorError(f"the LLM answered HTTP {response.status_code} and asks for a wait of {wait:g}s")
            log.warning("LLM answered HTTP %s; retrying in %.2fs", response.status_code, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        try:
            return max(0.0, float(response.headers["retry-after"]))
        except (KeyError, ValueError):
            return None  # absent, or an HTTP date: use our own backoff

    @staticmethod
    def _content(response: httpx.Response) -> str:
        try:
            payload = response.json()
        except ValueError as error:
            raise GeneratorError(f"the LLM returned malformed JSON: {response.text[:200]!r}") from error
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as error:
            raise GeneratorError(f"the LLM reply has no choices[0].message.content: {response.text[:200]!r}") from error
        if not isinstance(content, str):
            raise GeneratorError(f"the LLM reply's content is not text: {content!r}"[:300])
        return content

    @staticmethod
    def _pieces(response: httpx.Response) -> Iterator[str]:
        """Content deltas of a server-sent-events stream of chat.completion.chunk objects."""
        finished = False
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, comments, `event:` lines
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                return
            try:
                chunk = json.loads(data)
            except ValueError as error:
                raise GeneratorError(f"the LLM stream sent malformed JSON: {data[:200]!r}") from error
            if not isinstance(chunk, dict):
                raise GeneratorError(f"the LLM stream sent {data[:200]!r} instead of a chunk object")
            if "error" in chunk:
                raise GeneratorError(f"the LLM stream reported an error: {json.dumps(chunk['error'])[:200]}")
            choices = chunk.get("choices")
            if not isinstance(choices, list) or (choices and not isinstance(choices[0], dict)):
                raise GeneratorError(f"the LLM stream sent a chunk without choices: {data[:200]!r}")
            if not choices:
                continue  # a usage-only chunk
            finished = finished or bool(choices[0].get("finish_reason"))
            delta = choices[0].get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                yield content
        if not finished:  # neither [DONE] nor a finish_reason: the connection dropped mid-answer
            raise GeneratorError("the LLM stream broke off before the answer was finished")
