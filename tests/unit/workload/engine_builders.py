"""Builders of market data for the engine tests: klines from a list of closes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from trader_api.domain import Interval, Kline

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
