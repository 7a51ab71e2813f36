"""Fills racing on real PostgreSQL end as a serial run: no position or order update is lost.

Two stores with pools of their own stand for two replicas (an old leader
still finishing fills during a lease handover, and the new one); every fill
is sent at once, so many transactions contend for one symbol and one order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from support.trading_data import T0, make_fill, make_order
from trader_api.domain import Fill, Order, OrderStatus, Position, Side
from trader_api.storage.postgres import PostgresStore

# Every price is 1000 plus a multiple of lcm(1..12): any k <= 12 of them sum to
# a multiple of k, so each running average is an exact integer and a serial run
# gives the same result in whatever order the fills commit.
_STEP = 27720
_FILLS = 12


def _price(i: int) -> str:
    return str(1000 + _STEP * i)


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    old = await PostgresStore.connect(postgres_url, min_size=_FILLS // 2, max_size=_FILLS // 2)
    new = await PostgresStore.connect(postgres_url, min_size=_FILLS // 2, max_size=_FILLS // 2)
    yield old, new
    await old.close()
    await new.close()


def _serial(fills: list[Fill], *, order: Order | None = None) -> tuple[Position, Order | None]:
    position = Position.flat(fills[0].symbol, at=T0)
    for fill in fills:
        position = position.apply(fill)
        if order is not None:
            order = order.with_fill(fill)
    return position, order


async def test_concurrent_fills_of_one_symbol_end_as_a_serial_run(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    old, new = replicas
    orders = [make_order(quantity="1", side=Side.BUY) for _ in range(_FILLS)]
    for order in orders:
        await old.create_order(order)
    fills = [make_fill(o, price=_price(i), fee="0.25") for i, o in enumerate(orders)]

    results = await asyncio.gather(
        *(
            (old if i % 2 else new).record_fill(fill=fill, order=order)
            for i, (fill, order) in enumerate(zip(fills, orders, strict=True))
        )
    )

    expected, _ = _serial(fills)
    stored = await new.get_position("BTCUSDT")
    assert stored is not None
    assert (stored.quantity, stored.average_price, stored.realized_pnl) == (
        expected.quantity,
        expected.average_price,
        expected.realized_pnl,
    )
    assert all(result.recorded for result in results)
    # Each answer is one step of that serial run: quantities 1..N, each once.
    assert sorted(r.position.quantity for r in results) == [Decimal(k) for k in range(1, 13)]
    assert await old.realized_pnl_since(T0) == expected.realized_pnl == Decimal("-3.00")
    statuses = [getattr(await old.get_order(o.id), "status", None) for o in orders]
    assert statuses == [OrderStatus.FILLED] * _FILLS


async def test_concurrent_fills_of_one_order_end_as_a_serial_run(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    old, new = replicas
    order = make_order(quantity=str(_FILLS), side=Side.SELL)
    await old.create_order(order)
    fills = [make_fill(order, quantity="1", price=_price(i), fee="1") for i in range(_FILLS)]

    # Each fill twice, once from each replica: a retried fill is recorded once.
    results = await asyncio.gather(
        *(store.record_fill(fill=fill, order=order) for fill in fills for store in (old, new))
    )

    expected_position, expected_order = _serial(fills, order=order)
    assert expected_order is not None
    stored = await new.get_order(order.id)
    assert stored is not None
    assert (stored.filled_quantity, stored.average_fill_price, stored.status) == (
        expected_order.filled_quantity,
        expected_order.average_fill_price,
        OrderStatus.FILLED,
    )
    position = await old.get_position("BTCUSDT")
    assert position is not None
    assert (position.quantity, position.average_price, position.realized_pnl) == (
        expected_position.quantity,
        expected_position.average_price,
        expected_position.realized_pnl,
    )
    assert sum(result.recorded for result in results) == _FILLS
    assert len(await old.list_fills(order_id=order.id, limit=100)) == _FILLS
