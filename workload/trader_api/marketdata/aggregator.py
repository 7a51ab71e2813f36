"""``KlineAggregator``: turn ticks into closed klines per (symbol, interval)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from trader_api.domain import Interval, Kline, Tick


@dataclass(slots=True)
class _Series:
    building: Kline | None = None
    last_closed: Kline | None = None


class KlineAggregator:
    """Build klines from ticks; emit each one when it closes.

    A kline closes when a tick of its symbol lands in a later interval, or
    when ``close_until(now)`` is told its close time has passed (so a quiet
    market still closes its klines). With ``fill_gaps`` (the default) every
    interval without a trade between two closed klines is emitted too, flat
    at the last close with zero volume, as exchanges report quiet minutes:
    strategies then see one kline per interval and their windows keep
    meaning "the last N minutes".

    A tick older than the kline being built (or than the last one closed) is
    late: it is counted in ``late_ticks`` and dropped, because the kline it
    belongs to has been emitted already.
    """

    def __init__(self, intervals: Iterable[Interval], *, fill_gaps: bool = True) -> None:
        self.intervals = tuple(dict.fromkeys(intervals))
        if not self.intervals:
            raise ValueError("a kline aggregator needs at least one interval")
        self.fill_gaps = fill_gaps
        self.late_ticks = 0
        self._series: dict[tuple[str, Interval], _Series] = {}

    def building(self, symbol: str, interval: Interval) -> Kline | None:
        """Return the kline being built (not yet closed), if any."""
        series = self._series.get((symbol, interval))
        return series.building if series is not None else None

    def on_tick(self, tick: Tick) -> builtins.list[Kline]:
        """Add a tick; return the klines it closed, by close time, shorter intervals first."""
        series_by_interval = [
            (interval, self._series.setdefault((tick.symbol, interval), _Series()))
            for interval in self.intervals
        ]
        # NB: late for one interval is late for all: a tick counts everywhere or nowhere,
        # so the volumes of every interval add up to the same trades.
        if any(
            _is_late(series, interval.floor(tick.ts)) for interval, series in series_by_interval
        ):
            self.late_ticks += 1
            return []
        closed: builtins.list[Kline] = []
        for interval, series in series_by_interval:
            bucket = interval.floor(tick.ts)
            building = series.building
            if building is not None and bucket == building.open_time:
                series.building = replace(
                    building,
                    high=max(building.high, tick.price),
                    low=min(building.low, tick.price),
                    close=tick.price,
                    volume=building.volume + tick.quantity,
                )
                continue
            if building is not None:
                closed.append(self._close(series, building))
            closed.extend(self._gap(series, interval, until=bucket))
            series.building = Kline(
                tick.symbol,
                interval,
                bucket,
                tick.price,
                tick.price,
                tick.price,
                tick.price,
                tick.quantity,
            )
        return _in_time_order(closed)

    def close_until(self, now: datetime) -> builtins.list[Kline]:
        """Close every kline whose close time is at or before ``now``; return them."""
        closed: builtins.list[Kline] = []
        for (_, interval), series in self._series.items():
            building = series.building
            if building is not None and building.close_time <= now:
                closed.append(self._close(series, building))
            if series.building is None:
                closed.extend(self._gap(series, interval, until=interval.floor(now)))
        return _in_time_order(closed)

    def _close(self, series: _Series, kline: Kline) -> Kline:
        series.building = None
        series.last_closed = kline
        return kline

    def _gap(self, series: _Series, interval: Interval, *, until: datetime) -> list[Kline]:
        """Emit flat klines for the empty intervals after the last closed one, before ``until``."""
        previous = series.last_closed
        if not self.fill_gaps or previous is None:
            return []
        flats = []
        open_time = previous.open_time + interval.delta
        while open_time < until:
            price = previous.close
            previous = Kline(
                previous.symbol,
                interval,
                open_time,
                price,
                price,
                price,
                price,
                Decimal(0),
            )
            flats.append(previous)
            open_time += interval.delta
        if flats:
            series.last_closed = flats[-1]
        return flats


def _is_late(series: _Series, bucket: datetime) -> bool:
    if series.building is not None:
        return bucket < series.building.open_time
    return series.last_closed is not None and bucket <= series.last_closed.open_time


def _in_time_order(klines: list[Kline]) -> list[Kline]:
    return sorted(klines, key=lambda k: (k.close_time, k.interval.seconds, k.symbol))
