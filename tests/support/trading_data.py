"""Builders of domain values for tests: valid by default, every field overridable."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from trader_api.domain import Fill, Interval, Kline, Order, OrderStatus, OrderType, Side

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def make_order(
    *,
    client_order_id: str | None = None,
    order_id: UUID | None = None,
    symbol: str = "BTCUSDT",
    side: Side = Side.BUY,
    quantity: str = "0.5",
    limit_price: str | None = None,
    status: OrderStatus = OrderStatus.NEW,
    created_at: datetime = T0,
    strategy: str | None = "btc-sma",
) -> Order:
    """Return a NEW market order (or limit when ``limit_price`` is given)."""
    return Order(
        id=order_id or uuid4(),
        client_order_id=client_order_id or f"cid-{uuid4().hex[:12]}",
        symbol=symbol,
        side=side,
        type=OrderType.MARKET if limit_price is None else OrderType.LIMIT,
        quantity=Decimal(quantity),
        limit_price=None if limit_price is None else Decimal(limit_price),
        status=status,
        filled_quantity=Decimal(0),
        average_fill_price=None,
        created_at=created_at,
        updated_at=created_at,
        strategy=strategy,
    )


def make_fill(
    order: Order,
    *,
    quantity: str | None = None,
    price: str = "42000.10",
    fee: str = "0.25",
    ts: datetime | None = None,
) -> Fill:
    """Return a fill of ``order`` (all of what remains unless ``quantity`` is given)."""
    return Fill(
        id=uuid4(),
        order_id=order.id,
        symbol=order.symbol,
        side=order.side,
        quantity=Decimal(quantity) if quantity is not None else order.remaining_quantity,
        price=Decimal(price),
        fee=Decimal(fee),
        ts=ts or order.created_at + timedelta(seconds=1),
    )


def make_klines(
    count: int,
    *,
    symbol: str = "BTCUSDT",
    interval: Interval = Interval.M1,
    start: datetime = T0,
    base: Decimal = Decimal("42000.00"),
) -> list[Kline]:
    """Return ``count`` consecutive klines with distinct, exact prices."""
    klines: list[Kline] = []
    for i in range(count):
        price = base + Decimal(i) / Decimal(100)
        klines.append(
            Kline(
                symbol=symbol,
                interval=interval,
                open_time=start + interval.delta * i,
                open=price,
                high=price + Decimal("1.5"),
                low=price - Decimal("1.25"),
                close=price + Decimal("0.33"),
                volume=Decimal("12.345678") + i,
            )
        )
    return klines


def with_close(kline: Kline, close: str) -> Kline:
    return replace(kline, close=Decimal(close))
