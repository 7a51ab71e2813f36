"""The paper exchange fills like a fair exchange would, and never fills an order twice."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from uuid import uuid5

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader_api.domain import Fill, Order, OrderStatus, Position, Side
from trader_api.execution import (
    ClientOrderIdConflictError,
    OrderNotOpenError,
    PaperExchange,
    SubmitResult,
    UnknownOrderError,
)
from unit.workload.engine_builders import T0, new_order

LATER = T0 + timedelta(seconds=5)


def exchange(price: str | None = "20000") -> PaperExchange:
    paper = PaperExchange(fee_bps=Decimal(10), slippage_bps=Decimal(5), clock=lambda: T0)
    if price is not None:
        paper.on_price("BTCUSDT", Decimal(price), at=T0)
    return paper


async def test_a_market_buy_fills_above_the_price_and_pays_the_fee() -> None:
    order = new_order("c-1", Side.BUY, "0.5")
    result = await exchange().submit(order)
    assert result.fills == (
        Fill(
            id=uuid5(order.id, "fill-1"),
            order_id=order.id,
            symbol="BTCUSDT",
            side=Side.BUY,
            quantity=Decimal("0.5"),
            price=Decimal(20010),
            fee=Decimal("10.005"),
            ts=T0,
        ),
    )
    assert result.order.status is OrderStatus.FILLED
    assert result.order.average_fill_price == Decimal(20010)
    assert result.duplicate is False


async def test_a_market_sell_fills_below_the_price() -> None:
    result = await exchange().submit(new_order("c-1", Side.SELL, "2"))
    assert [(f.price, f.fee) for f in result.fills] == [(Decimal(19990), Decimal("39.98"))]


async def test_a_round_trip_realizes_the_move_less_slippage_and_fees() -> None:
    paper = exchange()
    position = Position.flat("BTCUSDT", at=T0)
    bought = await paper.submit(new_order("c-1", Side.BUY, "1"))
    paper.on_price("BTCUSDT", Decimal(21000), at=LATER)
    sold = await paper.submit(new_order("c-2", Side.SELL, "1"))
    for fill in bought.fills + sold.fills:
        position = position.apply(fill)
    # Sold at 20989.5 what was bought at 20010, less fees of 20.01 and 20.9895.
    assert position.realized_pnl == Decimal("938.5005")
    assert position.quantity == 0


async def test_resubmitting_a_client_order_id_returns_the_first_result() -> None:
    paper = exchange()
    order = new_order("c-1", Side.BUY, "0.5")
    first = await paper.submit(order)
    paper.on_price("BTCUSDT", Decimal(25000), at=LATER)
    again = await paper.submit(order)
    assert again == SubmitResult(first.order, first.fills, duplicate=True)


async def test_concurrent_resubmissions_fill_once() -> None:
    paper = exchange()
    order = new_order("c-1", Side.BUY, "0.5")
    results = await asyncio.gather(*(paper.submit(order) for _ in range(5)))
    assert [r.duplicate for r in results] == [False, True, True, True, True]
    assert {fill.id for r in results for fill in r.fills} == {uuid5(order.id, "fill-1")}


async def test_a_client_order_id_cannot_be_reused_for_another_order() -> None:
    paper = exchange()
    await paper.submit(new_order("c-1", Side.BUY, "0.5"))
    with pytest.raises(ClientOrderIdConflictError, match="'c-1' was used for a different order"):
        await paper.submit(new_order("c-1", Side.BUY, "0.6"))


async def test_a_market_order_before_any_price_waits_and_fills_at_the_first_price() -> None:
    paper = exchange(price=None)
    order = new_order("c-1", Side.BUY, "1")
    waiting = await paper.submit(order)
    assert (waiting.order.status, waiting.fills) == (OrderStatus.NEW, ())
    assert paper.waiting_orders() == [waiting.order]
    assert paper.open_orders() == []
    again = await paper.submit(order)
    assert (again.duplicate, again.order.status) == (True, OrderStatus.NEW)
    assert paper.on_price("ETHUSDT", Decimal(3000), at=LATER) == []
    (update,) = paper.on_price("BTCUSDT", Decimal(20000), at=LATER)
    assert update.order.status is OrderStatus.FILLED
    assert [(f.price, f.ts) for f in update.fills] == [(Decimal(20010), LATER)]
    assert paper.waiting_orders() == []
    assert paper.on_price("BTCUSDT", Decimal(19000), at=LATER) == []


async def test_a_marketable_limit_that_waited_fills_at_the_first_price_not_at_its_limit() -> None:
    # The failover report: a buy at its 4501 limit with the market near 3000.
    paper = exchange(price=None)
    buy = await paper.submit(new_order("c-1", Side.BUY, "1", limit="30000"))
    sell = await paper.submit(new_order("c-2", Side.SELL, "1", limit="10000"))
    assert [buy.order.status, sell.order.status] == [OrderStatus.NEW, OrderStatus.NEW]
    updates = paper.on_price("BTCUSDT", Decimal(20000), at=LATER)
    assert [(u.order.client_order_id, u.order.status) for u in updates] == [
        ("c-1", OrderStatus.FILLED),
        ("c-2", OrderStatus.FILLED),
    ]
    assert [u.fills[0].price for u in updates] == [Decimal(20010), Decimal(19990)]


async def test_a_limit_that_waited_and_is_not_marketable_rests_until_the_price_reaches_it() -> None:
    paper = exchange(price=None)
    order = new_order("c-1", Side.BUY, "1", limit="19500")
    await paper.submit(order)
    (rested,) = paper.on_price("BTCUSDT", Decimal(20000), at=LATER)
    assert (rested.order.status, rested.fills) == (OrderStatus.OPEN, ())
    assert paper.open_orders() == [rested.order]
    assert paper.waiting_orders() == []
    assert paper.on_price("BTCUSDT", Decimal("19500.01"), at=LATER) == []
    (filled,) = paper.on_price("BTCUSDT", Decimal(19500), at=LATER)
    assert [f.price for f in filled.fills] == [Decimal(19500)]


async def test_a_waiting_order_can_be_cancelled_and_then_never_fills() -> None:
    paper = exchange(price=None)
    order = new_order("c-1", Side.BUY, "1", limit="30000")
    await paper.submit(order)
    assert (await paper.cancel(order)).status is OrderStatus.CANCELLED
    assert paper.waiting_orders() == []
    assert paper.on_price("BTCUSDT", Decimal(20000), at=LATER) == []
    state = paper.order("c-1")
    assert state is not None
    assert state.status is OrderStatus.CANCELLED


async def test_an_invalid_order_before_any_price_is_rejected_at_once() -> None:
    result = await exchange(price=None).submit(new_order("c-1", Side.BUY, "0"))
    assert (result.order.status, result.order.reject_reason) == (
        OrderStatus.REJECTED,
        "quantity must be positive, got 0",
    )


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        (new_order("c-1", Side.BUY, "0"), "quantity must be positive, got 0"),
        (new_order("c-1", Side.BUY, "1", limit="-1"), "limit price must be positive, got -1"),
        (
            replace(new_order("c-1", Side.BUY, "1"), limit_price=Decimal(5)),
            "a market order takes no limit price",
        ),
        (
            replace(new_order("c-1", Side.BUY, "1", limit="5"), limit_price=None),
            "a limit order needs a limit price",
        ),
    ],
)
async def test_invalid_orders_are_rejected(order: Order, reason: str) -> None:
    result = await exchange().submit(order)
    assert (result.order.status, result.order.reject_reason) == (OrderStatus.REJECTED, reason)


async def test_a_limit_buy_rests_until_the_price_reaches_it_and_fills_at_that_price() -> None:
    paper = exchange()
    order = new_order("c-1", Side.BUY, "1", limit="19500")
    rested = await paper.submit(order)
    assert (rested.order.status, rested.fills) == (OrderStatus.OPEN, ())
    assert paper.on_price("BTCUSDT", Decimal("19500.01"), at=LATER) == []
    assert paper.on_price("ETHUSDT", Decimal(1), at=LATER) == []
    (update,) = paper.on_price("BTCUSDT", Decimal(19400), at=LATER)
    assert update.order.status is OrderStatus.FILLED
    # The resting buy was the best bid: the market reached it on the way to 19400.
    assert [(f.price, f.fee, f.ts) for f in update.fills] == [
        (Decimal(19500), Decimal("19.5"), LATER)
    ]
    assert paper.open_orders() == []
    assert (await paper.submit(order)).order.status is OrderStatus.FILLED


async def test_a_limit_buy_fills_when_the_price_touches_its_limit() -> None:
    paper = exchange()
    await paper.submit(new_order("c-1", Side.BUY, "1", limit="19500"))
    (update,) = paper.on_price("BTCUSDT", Decimal(19500), at=LATER)
    assert update.fills[0].price == Decimal(19500)


async def test_a_limit_sell_rests_until_the_price_rises_to_it() -> None:
    paper = exchange()
    await paper.submit(new_order("c-1", Side.SELL, "1", limit="20500"))
    assert paper.on_price("BTCUSDT", Decimal(20499), at=LATER) == []
    (update,) = paper.on_price("BTCUSDT", Decimal(20500), at=LATER)
    assert update.fills[0].price == Decimal(20500)


async def test_a_resting_sell_the_price_gaps_through_fills_at_its_limit_as_a_maker() -> None:
    paper = exchange()
    await paper.submit(new_order("c-1", Side.SELL, "1", limit="20500"))
    (update,) = paper.on_price("BTCUSDT", Decimal(20700), at=LATER)
    assert update.fills[0].price == Decimal(20500)


async def test_a_marketable_limit_fills_at_once_never_worse_than_its_limit() -> None:
    paper = exchange()
    capped = await paper.submit(new_order("c-1", Side.BUY, "1", limit="20005"))
    assert capped.fills[0].price == Decimal(20005)
    slipped = await paper.submit(new_order("c-2", Side.BUY, "1", limit="20100"))
    assert slipped.fills[0].price == Decimal(20010)
    sold = await paper.submit(new_order("c-3", Side.SELL, "1", limit="19995"))
    assert sold.fills[0].price == Decimal(19995)


async def test_cancelling_a_resting_order_stops_it_filling() -> None:
    paper = exchange()
    order = new_order("c-1", Side.BUY, "1", limit="19000")
    await paper.submit(order)
    cancelled = await paper.cancel(order)
    assert cancelled.status is OrderStatus.CANCELLED
    assert paper.on_price("BTCUSDT", Decimal(18000), at=LATER) == []
    with pytest.raises(OrderNotOpenError, match="'c-1' is cancelled, not open"):
        await paper.cancel(order)
    with pytest.raises(UnknownOrderError, match="'c-2'"):
        await paper.cancel(new_order("c-2", Side.BUY, "1"))


async def test_a_filled_order_cannot_be_cancelled() -> None:
    paper = exchange()
    order = new_order("c-1", Side.BUY, "1")
    await paper.submit(order)
    with pytest.raises(OrderNotOpenError, match="is filled"):
        await paper.cancel(order)


def test_prices_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        exchange().on_price("BTCUSDT", Decimal(0), at=T0)


async def test_memory_is_bounded_by_the_finished_orders_remembered() -> None:
    paper = PaperExchange(clock=lambda: T0, remember=2)
    paper.on_price("BTCUSDT", Decimal(20_000), at=T0)
    resting = new_order("rest", Side.BUY, "1", limit="1")
    await paper.submit(resting)
    for n in range(1, 5):
        await paper.submit(new_order(f"c-{n}", Side.BUY, "1"))
    assert [paper.order(f"c-{n}") is not None for n in range(1, 5)] == [False, False, True, True]
    assert paper.order("rest") == paper.open_orders()[0]
    assert (await paper.submit(new_order("c-4", Side.BUY, "1"))).duplicate is True


Operation = tuple[str, int, Side, int, int | None]

OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["submit", "cancel", "price"]),
        st.integers(min_value=0, max_value=2),  # which client_order_id
        st.sampled_from(Side),
        st.integers(min_value=1, max_value=3),  # quantity
        st.none() | st.integers(min_value=90, max_value=110),  # limit price, or market
    ),
    max_size=40,
)


def _check_fill_price(order: Order, fill: Fill, *, market: Decimal, maker: bool) -> None:
    """A resting order trades at its limit; a taker never worse than the market it met."""
    limit_price = order.limit_price
    if maker:
        assert fill.price == limit_price  # the book's best price when the market reached it
        return
    at_most = market * (1 + order.side.sign * Decimal("0.0005"))  # with slippage
    assert fill.price <= at_most if order.side is Side.BUY else fill.price >= at_most
    if limit_price is not None:
        assert fill.price <= limit_price if order.side is Side.BUY else fill.price >= limit_price


@settings(max_examples=200)
@given(
    operations=OPERATIONS,
    prices=st.lists(st.integers(80, 120), min_size=40, max_size=40),
    priced_at_start=st.booleans(),
)
async def test_any_sequence_fills_each_order_at_most_once_never_past_its_limit_nor_cancelled(
    operations: list[Operation], prices: list[int], *, priced_at_start: bool
) -> None:
    paper = PaperExchange(fee_bps=Decimal(10), slippage_bps=Decimal(5), clock=lambda: T0)
    if priced_at_start:
        paper.on_price("BTCUSDT", Decimal(100), at=T0)
    market = Decimal(100) if priced_at_start else None
    first_requests: dict[str, Order] = {}
    rested: set[str] = set()  # on the book after a price (not waiting for a first one)
    fills: dict[str, list[Fill]] = {}
    market_at_fill: dict[Fill, Decimal] = {}
    makers: set[Fill] = set()  # fills of orders that rested on the book first
    cancelled: set[str] = set()
    for step, (action, number, side, quantity, limit) in enumerate(operations):
        client_order_id = f"c-{number}"
        if action == "price":
            market = Decimal(prices[step])
            for update in paper.on_price("BTCUSDT", market, at=LATER):
                fills.setdefault(update.order.client_order_id, []).extend(update.fills)
                market_at_fill.update(dict.fromkeys(update.fills, market))
                if update.order.client_order_id in rested:
                    makers.update(update.fills)
            rested.update(open_order.client_order_id for open_order in paper.open_orders())
            continue
        order = first_requests.get(client_order_id) or new_order(
            client_order_id, side, str(quantity), limit=None if limit is None else str(limit)
        )
        if action == "cancel":
            with contextlib.suppress(OrderNotOpenError, UnknownOrderError):
                await paper.cancel(order)
                cancelled.add(client_order_id)
            continue
        first_requests[client_order_id] = order
        result = await paper.submit(order)
        if result.order.status is OrderStatus.OPEN:
            rested.add(client_order_id)
        if not result.duplicate:
            fills.setdefault(client_order_id, []).extend(result.fills)
            assert market is not None or result.order.status in (
                OrderStatus.NEW,
                OrderStatus.REJECTED,  # invalid orders only: nothing is decided on no price
            )
            market_at_fill.update(dict.fromkeys(result.fills, market or Decimal(0)))
        else:
            assert result.fills == tuple(fills.get(client_order_id, []))
    for client_order_id, order in first_requests.items():
        made = fills.get(client_order_id, [])
        assert len(made) <= 1
        state = paper.order(client_order_id)
        assert state is not None
        assert state.filled_quantity == sum((f.quantity for f in made), Decimal(0))
        if client_order_id in cancelled:
            assert (state.status, made) == (OrderStatus.CANCELLED, [])
        for fill in made:
            _check_fill_price(order, fill, market=market_at_fill[fill], maker=fill in makers)
