"""After a leader change the market carries on and resting orders fill at the market price.

Engine A trades the simulated market and stores its klines, then stops (its
lease released). Engine B starts on the same PostgreSQL and Redis with an
order left resting that its first price makes marketable (a buy limit at
twice the market: what the bug left behind). B's market must walk on from
A's last stored price, not from the seed's opening one, and the order must
fill at B's first price, not at its limit.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from trader_api.config import Settings
from trader_api.domain import Interval, Kline, Order, OrderStatus, Side
from trader_api.services.hub import Listener
from trader_api.services.runtime import Runtime
from trader_api.storage import Store
from unit.workload.api_support import eventually
from unit.workload.engine_builders import new_order

SYMBOL = "ETHUSDT"
# Seed 155 walks ETHUSDT (from 3000, its first tick 3000.61) above 3100 from
# its 600th tick to past its 60,000th: A stops in that range (below), so A's
# last price is far from the seed's opening one whenever A stops.
SEED = 155
SPEED = 600.0  # ten 1m klines a second
KLINES_BEFORE_STOP = 15  # 900 ticks: past the 600th
# One step of the walk moves a price by at most volatility * sqrt(3) (0.001 * 1.7321).
ONE_STEP = Decimal("0.00174")
SLIPPAGE = Decimal("1.0005")  # the paper exchange's default 5 bps, against a buyer


def engine(settings: Settings, name: str) -> Settings:
    return settings.model_copy(
        update={
            "pod_name": name,
            "symbols": (SYMBOL,),
            "strategies": (),
            "market_seed": SEED,
            "market_speed": SPEED,
        }
    )


async def klines(store: Store) -> list[Kline]:
    return await store.query_klines(symbol=SYMBOL, interval=Interval.M1, limit=5000)


async def test_a_new_leader_walks_on_from_the_last_stored_price_and_fills_at_it(
    service_settings: Settings,
) -> None:
    leader_a = await Runtime.from_settings(engine(service_settings, "leader-a"))
    await leader_a.start()
    try:
        await eventually(
            lambda: klines(leader_a.store),
            until=lambda stored: len(stored) >= KLINES_BEFORE_STOP,
            timeout=30,
        )
    finally:
        await leader_a.stop()

    leader_b = await Runtime.from_settings(engine(service_settings, "leader-b"))
    last_a = (await klines(leader_b.store))[-1]
    assert last_a.close > Decimal(3100)  # the seed's walk (above): far from 3000.61
    # An order A's book held when it stopped, marketable at any price near A's last.
    limit = (2 * last_a.close).quantize(Decimal("0.01"))
    order = new_order("left-resting", Side.BUY, "0.01", limit=str(limit), symbol=SYMBOL)
    await leader_b.store.create_order(order)
    await leader_b.store.update_order(replace(order, status=OrderStatus.OPEN))

    with leader_b.hub.listen(maxsize=100_000) as events:
        await leader_b.start()
        try:
            first_price, first_at = await _first_tick(events)
            filled: Order = await eventually(
                lambda: _stored(leader_b.store, order),
                until=lambda o: o.status is OrderStatus.FILLED,
                timeout=30,
            )
        finally:
            await leader_b.stop()

    # B's market carries on from A's: its first trade is one step from A's last
    # close, at A's last close time (A's clock ran ahead of the wall at SPEED).
    assert abs(first_price - last_a.close) <= last_a.close * ONE_STEP
    assert first_at == last_a.close_time
    # The resting order met B's first price: filled there (a buyer's slippage), not at its limit.
    assert filled.average_fill_price == first_price * SLIPPAGE
    assert filled.average_fill_price < limit * Decimal("0.6")


async def _first_tick(events: Listener) -> tuple[Decimal, datetime]:
    """Return the price and time of the first tick of ``SYMBOL`` the leader published."""
    async with asyncio.timeout(30):
        while True:
            event = await events.get()
            if event.get("type") == "tick" and event.get("symbol") == SYMBOL:
                return Decimal(str(event["price"])), datetime.fromisoformat(str(event["ts"]))


async def _stored(store: Store, order: Order) -> Order:
    found = await store.get_order(order.id)
    assert found is not None
    return found
