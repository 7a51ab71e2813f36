"""Helpers of the API tests: an embedded app on a scripted market, and waiting with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

import httpx
from fastapi import FastAPI

from trader_api.api.app import create_app
from trader_api.config import Settings
from trader_api.domain import Interval, Kline, Tick
from trader_api.marketdata import KlineAggregator, MarketFeed
from trader_api.services.engine import KlineBuilder
from trader_api.services.runtime import MarketFactory, Runtime

T = TypeVar("T")

# Generated per run, as the operator generates a bot's key: no literal secret to leak or reuse.
API_KEY = secrets.token_urlsafe(32)
PRICES = {"BTCUSDT": Decimal(50000), "ETHUSDT": Decimal(3000)}
# The metric families the seed's operations guide names, as the parser reports them.
SEED_METRIC_FAMILIES = (
    "http_requests",
    "http_request_duration_seconds",
    "websocket_connections",
    "orders",
    "signals",
    "risk_rejections",
    "fills",
    "circuit_breaker_state",
    "leader",
)


class ScriptedFeed:
    """A ``MarketFeed`` that plays a fixed list of events, then stays quiet (a still market)."""

    def __init__(self, events: Sequence[Tick | Kline]) -> None:
        self._events = events

    async def __aiter__(self) -> AsyncIterator[Tick | Kline]:
        for event in self._events:
            yield event
        await asyncio.Event().wait()


def scripted_market(events: Sequence[Tick | Kline] | None = None) -> MarketFactory:
    now = datetime.now(UTC)
    script = (
        list(events)
        if events is not None
        else [Tick(symbol, price, Decimal(1), now) for symbol, price in PRICES.items()]
    )

    def factory(
        _: Settings,
    ) -> tuple[Callable[[], MarketFeed[Tick | Kline]], Callable[[], KlineBuilder]]:
        return (lambda: ScriptedFeed(script)), lambda: KlineAggregator([Interval.M1])

    return factory


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool],
    timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for polling, not a cancel scope
) -> T:
    """Poll ``probe`` until ``until(result)`` holds; fail with the last result at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {result!r}")
        await asyncio.sleep(0.02)


async def _noop() -> None:
    return None


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, *, market: MarketFactory | None = None
) -> AsyncIterator[FastAPI]:
    """Run the app ``settings`` describe (its lifespan) once its engine trades with every mark."""
    runtime = await Runtime.from_settings(settings, market=market or scripted_market())
    application = create_app(runtime)
    async with application.router.lifespan_context(application):
        await eventually(
            _noop, until=lambda _: runtime.engine.running and len(runtime.marks) == len(PRICES)
        )
        yield application


@contextlib.asynccontextmanager
async def api_client(app: FastAPI, *, client_ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """Yield an HTTP client calling ``app`` in process, as a client at ``client_ip``."""
    transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://trader-api") as http:
        yield http
