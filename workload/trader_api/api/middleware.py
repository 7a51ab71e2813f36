"""The one ASGI middleware around the app: drain gate, rate limit, HTTP metrics.

NB: written as plain ASGI, not ``BaseHTTPMiddleware``: it runs on every
request including the probes, and the ``/health`` benchmark holds it to
within 0.7x of a bare uvicorn app.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trader_api import __version__
from trader_api.api.lifecycle import Lifecycle
from trader_api.services.metrics import Metrics

logger = logging.getLogger(__name__)

UNMATCHED: Final = "<unmatched>"
"""``path`` label of requests no route matches: raw URLs would explode cardinality."""

PROBE_PATHS: Final = frozenset({"/health", "/health/ready", "/metrics"})
# NB: the kill switch is an SRE's emergency brake: it is never throttled, since
# behind a proxy every client shares one IP's bucket and a flood of other
# requests must not keep trading from being halted. It still needs the API key.
UNTHROTTLED_PATHS: Final = PROBE_PATHS | {"/api/v1/risk/kill-switch"}
"""Never throttled: a kubelet or Prometheus must not be rate limited out of its job."""

LIVENESS_PATH: Final = "/health"
LIVENESS_PAYLOAD: Final = json.dumps({"status": "healthy", "version": __version__}).encode()
_LIVENESS_START: Final[Message] = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(LIVENESS_PAYLOAD)).encode()),
    ],
}
_LIVENESS_BODY: Final[Message] = {"type": "http.response.body", "body": LIVENESS_PAYLOAD}

RateLimit = Callable[[str], Awaitable[float]]
"""Take one token for a client key; return 0 when allowed, else seconds until allowed."""


class ServiceMiddleware:
    """Refuse requests while draining, throttle per client IP, and count every request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifecycle: Lifecycle,
        metrics: Metrics,
        rate_limit: RateLimit,
        routes: Sequence[BaseRoute],
    ) -> None:
        self.app = app
        self.routes = routes
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.rate_limit = rate_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        status = 500
        lifecycle = self.lifecycle

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        lifecycle.request_started()
        try:
            if lifecycle.draining and path not in PROBE_PATHS:
                await _send_json(
                    send_recording_status,
                    status=503,
                    body={"detail": "server is shutting down"},
                    headers=[(b"connection", b"close"), (b"retry-after", b"1")],
                )
                return
            if path not in UNTHROTTLED_PATHS:
                client_ip = _client_ip(scope)
                retry_after = await self.rate_limit(client_ip)
                if retry_after > 0:
                    logger.warning(
                        "Rate limit exceeded",
                        extra={"client_ip": client_ip, "path": path, "retry_after": retry_after},
                    )
                    await _send_json(
                        send_recording_status,
                        status=429,
                        body={"detail": f"Rate limit exceeded, retry in {retry_after:.2f}s"},
                        headers=[(b"retry-after", str(max(1, math.ceil(retry_after))).encode())],
                    )
                    return
            await self.app(scope, receive, send_recording_status)
        finally:
            lifecycle.request_finished()
            template = self._route_template(scope)
            method: str = scope["method"]
            self.metrics.http_requests.labels(method, template, str(status)).inc()
            self.metrics.http_duration.labels(method, template).observe(
                time.perf_counter() - started
            )

    def _route_template(self, scope: Scope) -> str:
        """Return the matched route's template (``/api/v1/orders/{order_id}``), never the URL."""
        route = scope.get("route")
        template = getattr(route, "path", None)
        # NB: FastAPI routes of a router included without a prefix keep their full path.
        if isinstance(template, str):
            return template
        # Refused before routing (429, 503): find the route the request was for.
        for candidate in self.routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                return str(getattr(candidate, "path", UNMATCHED))
        return UNMATCHED


class LivenessFastPath:
    """Answer ``GET /health`` before the framework; hand everything else to ``app``.

    NB: the kubelet calls the liveness probe for ever, and the ``/health``
    benchmark holds it to 0.7x of a bare uvicorn app; routing it through
    FastAPI's stack costs a third of that. It is counted in
    ``http_requests_total`` like any request, but not timed: its latency is
    that of the server itself. The FastAPI route serves the same body (tests,
    OpenAPI).
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self._count = metrics.http_requests.labels("GET", LIVENESS_PATH, "200")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == LIVENESS_PATH and scope["method"] == "GET":
            await send(_LIVENESS_START)
            await send(_LIVENESS_BODY)
            self._count.inc()
            return
        await self.app(scope, receive, send)


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _send_json(
    send: Send, *, status: int, body: dict[str, str], headers: list[tuple[bytes, bytes]]
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
