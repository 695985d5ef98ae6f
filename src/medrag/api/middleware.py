"""What every request passes through: its request id, the per-client rate limit, metrics and the access log.

One pure ASGI middleware (not `BaseHTTPMiddleware`, which would buffer the Server-Sent Events), added
inside CORS so that what it answers itself (429, 500) carries the CORS headers too.
"""

import hashlib
import ipaddress
import logging
import math
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence

from fastapi import FastAPI, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..settings import Settings
from . import metrics as prometheus
from .errors import error

access = logging.getLogger("medrag.access")
log = logging.getLogger("medrag.api")

# An id a client or proxy sent is kept when it is short and plain, so it can be logged as it is.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
LIMITED = frozenset({"/ask", "/ask/stream", "/search", "/feedback"})
# Clients remembered by the rate limiter; past this the least recently seen is forgotten (its bucket refills).
MAX_CLIENTS = 50_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TokenBucket:
    """Per key, `burst` requests at once, refilled at `per_minute` a minute."""

    def __init__(self, per_minute: int, burst: int, clock=time.monotonic):
        self.rate = per_minute / 60
        self.burst = burst
        self.clock = clock
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, when)

    def take(self, key: str) -> float:
        """0 when a request may go ahead (and takes a token), else the seconds until it may."""
        now = self.clock()
        tokens, then = self.buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self.buckets[key] = (tokens, now)
        if len(self.buckets) > MAX_CLIENTS:
            self.buckets.popitem(last=False)
        return wait


def client_address(scope: Scope, headers: Headers, trusted: Sequence[Network]) -> str:
    """The peer's address, or the client X-Forwarded-For names when the peer is a trusted proxy."""
    peer = scope["client"][0] if scope.get("client") else "unknown"
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [hop.strip() for value in headers.getlist("x-forwarded-for") for hop in value.split(",") if hop.strip()]
    # From the right: each trusted proxy appended the address it received the request from.
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_key(headers: Headers, address: str) -> str:
    """The rate limit's key: the bearer token sent (hashed, never kept as it is), else the address."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
    return "address:" + address


def route_of(scope: Scope) -> str:
    """The route template (`/documents/{doc_id}`), so metrics have one series per route, not per URL."""
    route = scope.get("route")
    if route is not None and hasattr(route, "path"):
        return route.path
    # Not routed (answered here, a 429): the limited routes have no parameters, so a known path is its template.
    app = scope.get("app")
    if isinstance(app, FastAPI) and scope["path"] in app.openapi().get("paths", {}):
        return scope["path"]
    return "unmatched"


class Operations:
    def __init__(self, app: ASGIApp, settings: Settings, metrics: prometheus.Metrics):
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.limiter = TokenBucket(settings.rate_limit, settings.rate_limit_burst) if settings.rate_limit else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        address = client_address(scope, headers, self.settings.trusted_proxies)
        status = 500
        responded = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            wait = self.limiter.take(client_key(headers, address)) if self._limited(scope) else 0.0
            if wait:
                retry = max(1, math.ceil(wait))
                response = error(429, f"too many requests: try again in {retry} s", "rate_limited")
                response.headers["Retry-After"] = str(retry)
                await response(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if responded:  # the status line is sent: nothing but closing the connection is left
                raise
            # The app's own handler of last resort, so the body has the one error shape and the CORS
            # headers (it would otherwise run outside every middleware).
            handler = scope["app"].exception_handlers.get(Exception) if "app" in scope else None
            if handler is None:
                raise
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            self.metrics.observe_request(route_of(scope), scope["method"], status, seconds)
            path = scope["path"]
            if self.settings.log_questions and scope.get("query_string"):
                path += "?" + scope["query_string"].decode("latin-1")
            access.info(
                '%s "%s %s" %d %.1fms request_id=%s', address, scope["method"], path, status, seconds * 1000, request_id
            )

    def _limited(self, scope: Scope) -> bool:
        path = scope["path"]
        return (
            self.limiter is not None and scope["method"] != "OPTIONS" and (path in LIMITED or path.startswith("/v1/"))
        )


def install(app: FastAPI, settings: Settings) -> None:
    """Request ids, rate limits, the access log and `/metrics`; add it before CORS, which must wrap it."""
    metrics = prometheus.Metrics()
    app.state.metrics = metrics
    prometheus.install(app, metrics)
    app.add_middleware(Operations, settings=settings, metrics=metrics)
    # uvicorn's own access line carries the query string, a /search question with it; ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True
