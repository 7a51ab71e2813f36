"""Builders for the engine tests: klines from a list of closes, orders by client id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from uuid import NAMESPACE_URL, uuid5

from trader_api.domain import Interval, Kline, Order, OrderStatus, OrderType, Side

T0 = datetime(2025, 1, 28, 10, 0, tzinfo=UTC)


def klines_from_closes(
    closes: Sequence[str | int],
    *,
    symbol: str = "BTCUSDT",
    interval: Interval = Interval.M1,
    start: datetime = T0,
) -> list[Kline]:
    """Return one kline per close, back to back from ``start``; open is the previous close."""
    klines: list[Kline] = []
    previous = Decimal(closes[0])
    for index, raw in enumerate(closes):
        close = Decimal(raw)
        klines.append(
            Kline(
                symbol=symbol,
                interval=interval,
                open_time=start + index * interval.delta,
                open=previous,
                high=max(previous, close),
                low=min(previous, close),
                close=close,
                volume=Decimal(1),
            )
        )
        previous = close
    return klines


def new_order(
    client_order_id: str,
    side: Side,
    quantity: str,
    *,
    limit: str | None = None,
    symbol: str = "BTCUSDT",
) -> Order:
    """Return a NEW order; its id derives from ``client_order_id`` so tests can predict it."""
    return Order(
        id=uuid5(NAMESPACE_URL, client_order_id),
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        quantity=Decimal(quantity),
        limit_price=None if limit is None else Decimal(limit),
        status=OrderStatus.NEW,
        filled_quantity=Decimal(0),
        average_fill_price=None,
        created_at=T0,
        updated_at=T0,
    )
