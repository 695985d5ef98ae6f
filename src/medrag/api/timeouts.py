"""Bounds on how long a client may take to send a request: its headers, then its body.

A client sending a byte a second would otherwise hold a connection (and, mid-body, a request) open
for ever: uvicorn's keep-alive timeout only covers the pause between requests. The headers are
bounded in the HTTP protocol (`HeaderTimeoutProtocol`, which `medrag serve` hands to uvicorn by its
import string), since no request reaches the app before its headers are whole; the body by an ASGI
middleware (`BodyTimeout`), which answers with the usual error shape. Each gets
`MEDRAG_REQUEST_TIMEOUT` seconds; a late client gets 408 and the connection is closed.
"""

import asyncio
import json
from functools import cache

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.auto import AutoHTTPProtocol
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..settings import Settings
from .errors import error


class BodyTimeout:
    """ASGI middleware: a request body that has not all arrived `seconds` after the headers gets 408."""

    def __init__(self, app: ASGIApp, seconds: float):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        received = started = timed_out = False

        async def bounded_receive() -> Message:
            nonlocal received, timed_out
            if timed_out:
                return {"type": "http.disconnect"}
            if received:  # waiting for a disconnect while streaming a response is not bounded
                return await receive()
            try:
                async with asyncio.timeout(deadline - loop.time()):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                if not started:
                    response = error(
                        408,
                        f"the request body did not arrive within {self.seconds:g} s (MEDRAG_REQUEST_TIMEOUT)",
                        "request_timeout",
                    )
                    response.headers["Connection"] = "close"  # uvicorn closes the connection after it
                    await response(scope, receive, send)
                return {"type": "http.disconnect"}  # the app stops reading; what it answers is dropped
            if message["type"] != "http.request" or not message.get("more_body", False):
                received = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, bounded_receive, guarded_send)


@cache
def request_timeout() -> float:
    """The limit, read once from the same MEDRAG_* environment the app reads."""
    return Settings().request_timeout


def timeout_response(seconds: float) -> bytes:
    body = json.dumps(
        {
            "detail": f"the request headers did not arrive within {seconds:g} s (MEDRAG_REQUEST_TIMEOUT)",
            "code": "request_timeout",
        }
    ).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class HeaderTimeoutProtocol(AutoHTTPProtocol):
    """uvicorn's HTTP protocol (httptools or h11), with a deadline on each request's headers.

    The clock starts when the connection opens and when a later request's first byte arrives
    (the keep-alive timeout covers the wait in between), and stops when the headers are whole.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timer: asyncio.TimerHandle | None = None
        self.awaiting_headers = True  # httptools' state; h11 keeps its own
        self.idle = True  # no byte has arrived on this connection yet

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.header_timer = self.loop.call_later(request_timeout(), self.headers_too_slow)

    def connection_lost(self, exc) -> None:
        self.stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.idle = False
        super().data_received(data)
        if not self.in_headers():
            self.stop_header_timer()
        elif self.header_timer is None and not self.transport.is_closing():
            self.header_timer = self.loop.call_later(request_timeout(), self.headers_too_slow)

    # httptools' parser callbacks (h11's protocol has none of these, and its state says the same).
    def on_message_begin(self) -> None:
        self.awaiting_headers = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.awaiting_headers = False
        super().on_headers_complete()

    def in_headers(self) -> bool:
        if isinstance(self, H11Protocol):
            return self.conn.their_state is h11.IDLE
        return self.awaiting_headers

    def stop_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def headers_too_slow(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or not self.in_headers():
            return
        # Nothing asked, nothing to answer; and a response still going out (pipelining) must not be
        # interleaved with the 408.
        if not self.idle and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(timeout_response(request_timeout()))
        self.transport.close()
