"""The served process answers GET /health before routing, with the seed's body, and counts it."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope, Send

from trader_api import __version__
from trader_api.api.middleware import LivenessFastPath
from trader_api.services.metrics import Metrics


class RecordingApp:
    """The app behind the fast path: records what reached it."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)


async def call(app: LivenessFastPath, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_get_health_is_answered_with_the_seed_body_and_counted() -> None:
    inner = RecordingApp()
    registry = CollectorRegistry()
    app = LivenessFastPath(inner, metrics=Metrics(registry))
    sent = await call(app, {"type": "http", "method": "GET", "path": "/health"})
    assert sent[0]["status"] == 200
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"status": "healthy", "version": __version__}
    assert inner.scopes == []
    counted = registry.get_sample_value(
        "http_requests_total", {"method": "GET", "path": "/health", "status": "200"}
    )
    assert counted == 1


async def test_everything_else_reaches_the_app() -> None:
    inner = RecordingApp()
    app = LivenessFastPath(inner, metrics=Metrics(CollectorRegistry()))
    scopes: list[Scope] = [
        {"type": "http", "method": "POST", "path": "/health"},
        {"type": "http", "method": "GET", "path": "/health/ready"},
        {"type": "websocket", "path": "/health"},
        {"type": "lifespan"},
    ]
    for scope in scopes:
        assert await call(app, scope) == []
    assert inner.scopes == scopes
