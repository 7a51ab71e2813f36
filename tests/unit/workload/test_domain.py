"""Positions and orders move exactly as fills say."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from trader_api.domain import Fill, Interval, Order, OrderStatus, OrderType, Position, Side

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


def test_interval_floor_is_epoch_aligned() -> None:
    ts = datetime(2025, 1, 28, 10, 37, 42, tzinfo=UTC)
    assert Interval.M5.floor(ts) == datetime(2025, 1, 28, 10, 35, tzinfo=UTC)
    assert Interval.H1.floor(ts) == datetime(2025, 1, 28, 10, 0, tzinfo=UTC)
