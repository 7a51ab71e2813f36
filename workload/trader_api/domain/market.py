"""Market data value types: intervals, ticks and klines (OHLCV candles)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal


class Interval(enum.StrEnum):
    """Kline intervals, spelled as exchanges spell them."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"

    @property
    def seconds(self) -> int:
        return _INTERVAL_SECONDS[self]

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def floor(self, ts: datetime) -> datetime:
        """Return the open time of the interval that contains ``ts`` (UTC, epoch-aligned)."""
        epoch = int(ts.timestamp())
        return datetime.fromtimestamp(epoch - epoch % self.seconds, tz=UTC)


_INTERVAL_SECONDS: dict[Interval, int] = {
    Interval.M1: 60,
    Interval.M5: 300,
    Interval.M15: 900,
    Interval.H1: 3600,
    Interval.H4: 14400,
    Interval.D1: 86400,
}


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade price observed on the market."""

    symbol: str
    price: Decimal
    quantity: Decimal
    ts: datetime


@dataclass(frozen=True, slots=True)
class Kline:
    """An OHLCV candle. ``open_time`` is the UTC start of the interval."""

    symbol: str
    interval: Interval
    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal

    @property
    def close_time(self) -> datetime:
        return self.open_time + self.interval.delta
