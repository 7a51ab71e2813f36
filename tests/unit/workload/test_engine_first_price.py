"""A new leader's executor waits for a symbol's first price, then fills at the market.

Orders reach a new leader before its first tick: acknowledged by any replica
while no leader traded (stored ``new``), or left resting on the last leader's
book (stored ``open``). The engine here runs on the embedded store with a
market the test drives tick by tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import SecretStr

from trader_api.config import Settings
from trader_api.domain import Interval, Kline, Order, OrderStatus, Side, Tick
from trader_api.marketdata import KlineAggregator, MarketFeed
from trader_api.services.engine import KlineBuilder
from trader_api.services.runtime import LEASE_NAME, Runtime
from trader_api.storage import (
    LeaderLease,
    MemoryEventBus,
    MemoryLeaderLease,
    MemoryStore,
    MemoryTokenBucketLimiter,
)
from unit.workload.api_support import API_KEY, eventually
from unit.workload.engine_builders import new_order


class QueueFeed:
    """A ``MarketFeed`` the test drives tick by tick."""

    def __init__(self, queue: asyncio.Queue[Tick | Kline]) -> None:
        self._queue = queue

    async def __aiter__(self) -> AsyncIterator[Tick | Kline]:
        while True:
            yield await self._queue.get()


def leader(
    store: MemoryStore,
    ticks: asyncio.Queue[Tick | Kline],
    *,
    lease: LeaderLease | None = None,
    lease_seconds: float = 10.0,
) -> Runtime:
    settings = Settings(
        api_key=SecretStr(API_KEY),
        pod_name="new-leader",
        symbols=("BTCUSDT",),
        strategies=(),
        leader_lease_seconds=lease_seconds,
    )

    def market(
        _: Settings,
    ) -> tuple[Callable[[], MarketFeed[Tick | Kline]], Callable[[], KlineBuilder]]:
        return (lambda: QueueFeed(ticks)), lambda: KlineAggregator([Interval.M1])

    return Runtime(
        settings=settings,
        store=store,
        limiter=MemoryTokenBucketLimiter(),
        lease=lease or MemoryLeaderLease(name=LEASE_NAME, identity="new-leader", ttl_s=15),
        bus=MemoryEventBus(),
        market=market,
    )


def tick(price: str) -> Tick:
    return Tick("BTCUSDT", Decimal(price), Decimal(1), datetime.now(UTC))


async def stored(store: MemoryStore, order: Order) -> Order:
    found = await store.get_order(order.id)
    assert found is not None
    return found


async def filled(store: MemoryStore, order: Order) -> Order:
    return await eventually(
        lambda: stored(store, order), until=lambda o: o.status is OrderStatus.FILLED
    )


async def _noop() -> None:
    return None


async def submitted(runtime: Runtime, *orders: Order) -> None:
    """Wait until the leader's exchange has been handed every one of ``orders``."""
    await eventually(
        _noop,
        until=lambda _: all(runtime.exchange.order(o.client_order_id) for o in orders),
    )


async def test_orders_executed_before_the_first_tick_wait_then_fill_at_the_market() -> None:
    store = MemoryStore()
    market_buy = new_order("market-buy", Side.BUY, "0.01")
    marketable_buy = new_order("limit-buy", Side.BUY, "0.01", limit="75000")
    marketable_sell = new_order("limit-sell", Side.SELL, "0.01", limit="1")
    for order in (market_buy, marketable_buy, marketable_sell):
        await store.create_order(order)
    ticks: asyncio.Queue[Tick | Kline] = asyncio.Queue()
    runtime = leader(store, ticks)
    await runtime.start()
    try:
        await submitted(runtime, market_buy, marketable_buy, marketable_sell)
        # Nothing decided on no price: not rejected, not resting, still new.
        for order in (market_buy, marketable_buy, marketable_sell):
            assert (await stored(store, order)).status is OrderStatus.NEW
        assert len(runtime.exchange.waiting_orders()) == 3

        await ticks.put(tick("50000"))
        for order in (market_buy, marketable_buy, marketable_sell):
            await filled(store, order)
        prices = {f.order_id: f.price for f in await store.list_fills(symbol="BTCUSDT", limit=10)}
        # The market price with 5 bps slippage, not the orders' limits.
        assert prices == {
            market_buy.id: Decimal(50025),
            marketable_buy.id: Decimal(50025),
            marketable_sell.id: Decimal(49975),
        }
    finally:
        await runtime.stop()


async def test_an_order_left_resting_by_the_last_leader_fills_at_the_new_leaders_first_price() -> (
    None
):
    store = MemoryStore()
    order = new_order("rested", Side.BUY, "0.01", limit="75000")
    await store.create_order(order)
    await store.update_order(replace(order, status=OrderStatus.OPEN))
    ticks: asyncio.Queue[Tick | Kline] = asyncio.Queue()
    runtime = leader(store, ticks)
    await runtime.start()
    try:
        await submitted(runtime, order)
        assert (await stored(store, order)).status is OrderStatus.OPEN

        await ticks.put(tick("50000"))
        assert (await filled(store, order)).average_fill_price == Decimal(50025)
    finally:
        await runtime.stop()


async def test_a_waiting_order_cancelled_before_the_first_tick_never_fills() -> None:
    store = MemoryStore()
    order = new_order("waits", Side.BUY, "0.01", limit="75000")
    later = new_order("waits-too", Side.BUY, "0.01", limit="75000")
    for each in (order, later):
        await store.create_order(each)
    ticks: asyncio.Queue[Tick | Kline] = asyncio.Queue()
    runtime = leader(store, ticks)
    await runtime.start()
    try:
        await submitted(runtime, order, later)
        cancelled = await runtime.orders.cancel(order.id)
        assert cancelled.status is OrderStatus.CANCELLED
        assert [o.id for o in runtime.exchange.waiting_orders()] == [later.id]

        await ticks.put(tick("50000"))
        # The tick's updates are stored in order: the later order's fill comes last.
        await filled(store, later)
        assert (await stored(store, order)).status is OrderStatus.CANCELLED
        assert await store.list_fills(order_id=order.id) == []
    finally:
        await runtime.stop()


class ScriptedLease:
    """A leader lease the test hands out and takes back."""

    def __init__(self) -> None:
        self.leading = True

    @property
    def is_leader(self) -> bool:
        return self.leading

    async def try_acquire(self) -> bool:
        return self.leading

    async def renew(self) -> bool:
        return self.leading

    async def release(self) -> None:
        self.leading = False

    async def holder(self) -> str | None:
        return "again" if self.leading else None


async def test_a_replica_that_leads_again_starts_from_the_store_not_its_last_term() -> None:
    """Its exchange of the earlier term would match on a stale price (issue 14, class 15)."""
    store, ticks, lease = MemoryStore(), asyncio.Queue[Tick | Kline](), ScriptedLease()
    runtime = leader(store, ticks, lease=lease, lease_seconds=1.5)

    async def price() -> Decimal | None:
        return runtime.exchange.price("BTCUSDT")

    async def leading() -> float | None:
        return runtime.metrics.registry.get_sample_value("leader")

    await runtime.start()
    try:
        await ticks.put(tick("3000"))
        await eventually(price, until=lambda found: found == Decimal(3000))
        lease.leading = False
        await eventually(leading, until=lambda value: value == 0)
        lease.leading = True
        await eventually(leading, until=lambda value: value == 1)
        assert runtime.exchange.price("BTCUSDT") is None  # none until this term's first tick
        await ticks.put(tick("3100"))
        await eventually(price, until=lambda found: found == Decimal(3100))
    finally:
        await runtime.stop()
