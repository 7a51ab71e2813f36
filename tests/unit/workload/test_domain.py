"""Positions and orders move exactly as fills say."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from trader_api.domain import (
    Fill,
    Interval,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Settlement,
    Side,
    settle,
)

T0 = datetime(2025, 1, 28, 10, 30, tzinfo=UTC)


def fill(side: Side, qty: str, price: str, fee: str = "0") -> Fill:
    return Fill(uuid4(), uuid4(), "BTCUSDT", side, Decimal(qty), Decimal(price), Decimal(fee), T0)


def test_adding_to_a_position_averages_the_price() -> None:
    pos = Position.flat("BTCUSDT", at=T0).apply(fill(Side.BUY, "1", "100"))
    pos = pos.apply(fill(Side.BUY, "3", "200"))
    assert pos.quantity == Decimal(4)
    assert pos.average_price == Decimal(175)
    assert pos.realized_pnl == 0


def test_reducing_realizes_profit_net_of_fees() -> None:
    pos = Position.flat("BTCUSDT", at=T0).apply(fill(Side.BUY, "2", "100", fee="1"))
    pos = pos.apply(fill(Side.SELL, "1", "150", fee="1"))
    assert pos.quantity == Decimal(1)
    assert pos.average_price == Decimal(100)
    assert pos.realized_pnl == Decimal(48)


def test_crossing_zero_opens_the_rest_at_the_fill_price() -> None:
    pos = Position.flat("BTCUSDT", at=T0).apply(fill(Side.BUY, "1", "100"))
    pos = pos.apply(fill(Side.SELL, "3", "90"))
    assert pos.quantity == Decimal(-2)
    assert pos.average_price == Decimal(90)
    assert pos.realized_pnl == Decimal(-10)
    assert pos.unrealized_pnl(Decimal(80)) == Decimal(20)


def test_short_position_closes_flat() -> None:
    pos = Position.flat("BTCUSDT", at=T0).apply(fill(Side.SELL, "2", "100"))
    pos = pos.apply(fill(Side.BUY, "2", "110"))
    assert pos.quantity == 0
    assert pos.average_price == 0
    assert pos.realized_pnl == Decimal(-20)


def test_fill_for_another_symbol_is_refused() -> None:
    other = Fill(uuid4(), uuid4(), "ETHUSDT", Side.BUY, Decimal(1), Decimal(1), Decimal(0), T0)
    with pytest.raises(ValueError, match="ETHUSDT"):
        Position.flat("BTCUSDT", at=T0).apply(other)


def make_order(qty: str) -> Order:
    return Order(
        id=uuid4(),
        client_order_id="c-1",
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.MARKET,
        quantity=Decimal(qty),
        limit_price=None,
        status=OrderStatus.OPEN,
        filled_quantity=Decimal(0),
        average_fill_price=None,
        created_at=T0,
        updated_at=T0,
    )


def test_partial_then_full_fill() -> None:
    order = make_order("2")
    order = order.with_fill(fill(Side.BUY, "1", "100"))
    assert order.status is OrderStatus.PARTIALLY_FILLED
    order = order.with_fill(fill(Side.BUY, "1", "110"))
    assert order.status is OrderStatus.FILLED
    assert order.average_fill_price == Decimal(105)
    assert order.status.is_terminal


def test_overfill_is_refused() -> None:
    with pytest.raises(ValueError, match="overfills"):
        make_order("1").with_fill(fill(Side.BUY, "2", "100"))


def fill_of(order: Order, qty: str, price: str, fee: str = "0") -> Fill:
    return Fill(
        uuid4(), order.id, order.symbol, order.side, Decimal(qty), Decimal(price), Decimal(fee), T0
    )


def test_settle_moves_order_and_position_and_says_what_the_fill_realized() -> None:
    held = Position.flat("BTCUSDT", at=T0).apply(fill(Side.SELL, "2", "120", fee="1"))
    order = make_order("2")
    covering = fill_of(order, "1", "100", fee="0.5")

    settled = settle(covering, order=order, position=held)

    assert settled == Settlement(
        order=order.with_fill(covering),
        position=held.apply(covering),
        realized_pnl=Decimal("19.5"),  # (120 - 100) x 1, less the 0.5 fee
    )


def test_settle_starts_a_missing_position_flat() -> None:
    order = make_order("1")
    opening = fill_of(order, "1", "100", fee="0.1")
    settled = settle(opening, order=order, position=None)
    assert settled.position == Position.flat("BTCUSDT", at=T0).apply(opening)
    assert settled.realized_pnl == Decimal("-0.1")


_STRANGERS: dict[str, Callable[[Fill], Fill]] = {
    "other order": lambda f: replace(f, order_id=uuid4()),
    "other symbol": lambda f: replace(f, symbol="ETHUSDT"),
    "other side": lambda f: replace(f, side=Side.SELL),
}


@pytest.mark.parametrize("stranger", _STRANGERS.values(), ids=_STRANGERS.keys())
def test_settle_refuses_a_fill_that_is_not_the_orders(stranger: Callable[[Fill], Fill]) -> None:
    order = make_order("1")
    with pytest.raises(ValueError, match="does not belong"):
        settle(stranger(fill_of(order, "1", "100")), order=order, position=None)


def test_interval_floor_is_epoch_aligned() -> None:
    ts = datetime(2025, 1, 28, 10, 37, 42, tzinfo=UTC)
    assert Interval.M5.floor(ts) == datetime(2025, 1, 28, 10, 35, tzinfo=UTC)
    assert Interval.H1.floor(ts) == datetime(2025, 1, 28, 10, 0, tzinfo=UTC)
