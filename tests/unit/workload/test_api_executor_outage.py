"""An execution the executor had to drop during a storage outage is retried, not forgotten."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic import SecretStr

from trader_api.api.app import create_app
from trader_api.config import Settings
from trader_api.domain import Fill, Interval, Kline, Order, Tick
from trader_api.marketdata import KlineAggregator, MarketFeed
from trader_api.services.engine import KlineBuilder
from trader_api.services.runtime import LEASE_NAME, Runtime
from trader_api.storage import (
    MemoryEventBus,
    MemoryLeaderLease,
    MemoryStore,
    MemoryTokenBucketLimiter,
    RecordedFill,
    StorageUnavailableError,
)
from unit.workload.api_support import API_KEY, eventually

KEY = {"X-API-Key": API_KEY}


class FakeOutageStore(MemoryStore):
    """A memory store whose fills fail while ``outage`` is set (a fake database blip)."""

    def __init__(self) -> None:
        super().__init__()
        self.outage = False
        self.failed_fills = 0

    async def record_fill(self, *, fill: Fill, order: Order) -> RecordedFill:
        if self.outage:
            self.failed_fills += 1
            raise StorageUnavailableError("fake outage: fills cannot be stored")
        return await super().record_fill(fill=fill, order=order)


class QueueFeed:
    """A ``MarketFeed`` the test drives tick by tick."""

    def __init__(self, queue: asyncio.Queue[Tick | Kline]) -> None:
        self._queue = queue

    async def __aiter__(self) -> AsyncIterator[Tick | Kline]:
        while True:
            yield await self._queue.get()


def tick(price: str) -> Tick:
    return Tick("BTCUSDT", Decimal(price), Decimal(1), datetime.now(UTC))


async def test_an_execution_dropped_in_an_outage_is_executed_once_storage_returns() -> None:
    ticks: asyncio.Queue[Tick | Kline] = asyncio.Queue()
    store = FakeOutageStore()
    settings = Settings(
        api_key=SecretStr(API_KEY),
        pod_name="unit-test",
        rate_limit_per_second=10_000,  # the test polls faster than a client may
        rate_limit_burst=10_000,
    )

    def market(
        _: Settings,
    ) -> tuple[Callable[[], MarketFeed[Tick | Kline]], Callable[[], KlineBuilder]]:
        return (lambda: QueueFeed(ticks)), lambda: KlineAggregator([Interval.M1])

    runtime = Runtime(
        settings=settings,
        store=store,
        limiter=MemoryTokenBucketLimiter(),
        lease=MemoryLeaderLease(name=LEASE_NAME, identity="unit-test", ttl_s=15),
        bus=MemoryEventBus(),
        market=market,
    )
    app = create_app(runtime)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://trader-api") as http:
            await ticks.put(tick("50000"))
            await eventually(_noop, until=lambda _: "BTCUSDT" in runtime.marks)
            resting = await http.post(
                "/api/v1/orders", json=_order("rest", limit="49000"), headers=KEY
            )
            assert resting.status_code == 201
            await eventually(
                lambda: http.get(f"/api/v1/orders/{resting.json()['id']}"),
                until=lambda r: r.json()["status"] == "open",
            )

            # The price crosses the resting limit while fills cannot be stored:
            # the fill waits in the executor, which retries it before its next operation.
            store.outage = True
            await ticks.put(tick("48000"))
            await eventually(_noop, until=lambda _: store.failed_fills >= 1)

            # So the next operation, this order's execution, fails on that retry.
            market_order = await http.post("/api/v1/orders", json=_order("after"), headers=KEY)
            assert market_order.status_code == 201
            await eventually(_noop, until=lambda _: store.failed_fills >= 2)

            store.outage = False
            filled = await eventually(
                lambda: http.get(f"/api/v1/orders/{market_order.json()['id']}"),
                until=lambda r: r.json()["status"] == "filled",
                timeout=10,
            )
            assert filled.json()["filled_quantity"] == "0.01"
            rested = await http.get(f"/api/v1/orders/{resting.json()['id']}")
            assert rested.json()["status"] == "filled"
            # The retried fill was stored once: one fill per order, both in the position.
            fills = (await http.get("/api/v1/fills")).json()
            assert sorted(f["order_id"] for f in fills) == sorted(
                (resting.json()["id"], market_order.json()["id"])
            )
            (position,) = (await http.get("/api/v1/positions")).json()
            assert Decimal(position["quantity"]) == Decimal("0.02")


def _order(client_order_id: str, *, limit: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_order_id": client_order_id,
        "symbol": "BTCUSDT",
        "side": "buy",
        "quantity": "0.01",
        "type": "market" if limit is None else "limit",
    }
    if limit is not None:
        body["limit_price"] = limit
    return body


async def _noop() -> None:
    return None
