"""Ticks become klines that close exactly at interval boundaries, quiet intervals included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader_api.domain import Interval, Kline, Tick
from trader_api.marketdata import KlineAggregator

T0 = datetime(2025, 1, 28, 10, 0, tzinfo=UTC)


def tick(seconds: float, price: str, quantity: str = "1", symbol: str = "BTCUSDT") -> Tick:
    return Tick(symbol, Decimal(price), Decimal(quantity), T0 + timedelta(seconds=seconds))


def kline(
    minute: int, ohlcv: str, *, interval: Interval = Interval.M1, symbol: str = "BTCUSDT"
) -> Kline:
    o, h, low, c, v = (Decimal(x) for x in ohlcv.split())
    return Kline(symbol, interval, T0 + timedelta(minutes=minute), o, h, low, c, v)


def feed(aggregator: KlineAggregator, *ticks: Tick) -> list[Kline]:
    return [k for t in ticks for k in aggregator.on_tick(t)]


def test_a_kline_closes_when_a_tick_lands_in_the_next_interval() -> None:
    aggregator = KlineAggregator([Interval.M1])
    assert feed(aggregator, tick(0, "100", "1"), tick(20, "105", "2"), tick(40, "98", "0.5")) == []
    assert aggregator.building("BTCUSDT", Interval.M1) == kline(0, "100 105 98 98 3.5")
    assert feed(aggregator, tick(59.999, "101")) == []
    assert feed(aggregator, tick(60, "102")) == [kline(0, "100 105 98 101 4.5")]
    assert aggregator.building("BTCUSDT", Interval.M1) == kline(1, "102 102 102 102 1")


def test_quiet_intervals_are_filled_flat_at_the_last_close() -> None:
    aggregator = KlineAggregator([Interval.M1])
    closed = feed(aggregator, tick(10, "100"), tick(185, "90"))
    assert closed == [
        kline(0, "100 100 100 100 1"),
        kline(1, "100 100 100 100 0"),
        kline(2, "100 100 100 100 0"),
    ]


def test_without_gap_filling_only_traded_intervals_close() -> None:
    aggregator = KlineAggregator([Interval.M1], fill_gaps=False)
    assert feed(aggregator, tick(10, "100"), tick(185, "90")) == [kline(0, "100 100 100 100 1")]


def test_each_interval_closes_on_its_own_boundary() -> None:
    aggregator = KlineAggregator([Interval.M1, Interval.M5])
    closed = feed(aggregator, *(tick(60 * m, str(100 + m)) for m in range(6)))
    assert closed == [
        kline(0, "100 100 100 100 1"),
        kline(1, "101 101 101 101 1"),
        kline(2, "102 102 102 102 1"),
        kline(3, "103 103 103 103 1"),
        kline(4, "104 104 104 104 1"),
        kline(0, "100 104 100 104 5", interval=Interval.M5),
    ]


def test_symbols_are_aggregated_apart() -> None:
    aggregator = KlineAggregator([Interval.M1])
    closed = feed(
        aggregator,
        tick(0, "100"),
        tick(1, "3000", symbol="ETHUSDT"),
        tick(61, "101"),
    )
    assert closed == [kline(0, "100 100 100 100 1")]
    assert aggregator.building("ETHUSDT", Interval.M1) == kline(
        0, "3000 3000 3000 3000 1", symbol="ETHUSDT"
    )


def test_a_late_tick_is_counted_and_dropped() -> None:
    aggregator = KlineAggregator([Interval.M1])
    feed(aggregator, tick(0, "100"), tick(61, "101"))
    assert feed(aggregator, tick(59, "500")) == []
    assert aggregator.late_ticks == 1
    assert aggregator.building("BTCUSDT", Interval.M1) == kline(1, "101 101 101 101 1")


def test_close_until_closes_klines_of_a_quiet_market() -> None:
    aggregator = KlineAggregator([Interval.M1])
    feed(aggregator, tick(5, "100"))
    assert aggregator.close_until(T0 + timedelta(seconds=59)) == []
    assert aggregator.close_until(T0 + timedelta(seconds=60)) == [kline(0, "100 100 100 100 1")]
    assert aggregator.close_until(T0 + timedelta(minutes=3, seconds=1)) == [
        kline(1, "100 100 100 100 0"),
        kline(2, "100 100 100 100 0"),
    ]
    assert aggregator.building("BTCUSDT", Interval.M1) is None
    assert feed(aggregator, tick(150, "1")) == []  # minute 2 is out already
    assert aggregator.late_ticks == 1
    # The next trade opens the current minute; the ones before it are out already.
    assert feed(aggregator, tick(190, "99"), tick(240, "98")) == [kline(3, "99 99 99 99 1")]
    assert feed(aggregator, tick(170, "1")) == []
    assert aggregator.late_ticks == 2


def test_an_aggregator_needs_an_interval() -> None:
    with pytest.raises(ValueError, match="at least one interval"):
        KlineAggregator([])


@settings(max_examples=200)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(min_value=-90, max_value=400),  # seconds since the previous tick
            st.integers(min_value=1, max_value=10_000),  # price in cents
            st.integers(min_value=1, max_value=50),  # quantity
        ),
        min_size=1,
        max_size=60,
    )
)
def test_klines_account_for_every_timely_tick_and_tile_time(
    steps: list[tuple[int, int, int]],
) -> None:
    aggregator = KlineAggregator([Interval.M1, Interval.M5])
    ticks, elapsed = [], 0
    for gap, cents, quantity in steps:
        elapsed += gap
        ticks.append(tick(elapsed, str(Decimal(cents) / 100), str(quantity)))
    closed = feed(aggregator, *ticks)
    volumes = []
    for interval in (Interval.M1, Interval.M5):
        series = [k for k in closed if k.interval is interval]
        building = aggregator.building("BTCUSDT", interval)
        assert building is not None
        series.append(building)
        volumes.append(sum(k.volume for k in series))
        assert all(k.low <= min(k.open, k.close) <= max(k.open, k.close) <= k.high for k in series)
        assert [k.open_time for k in series] == [
            series[0].open_time + i * interval.delta for i in range(len(series))
        ]
        assert all(a.close == b.open for a, b in pairwise(series) if b.volume == 0)
    assert volumes[0] == volumes[1]
    if all(gap >= 0 for gap, _, _ in steps):
        assert aggregator.late_ticks == 0
        assert volumes[0] == sum(t.quantity for t in ticks)


def test_a_tick_late_for_one_interval_is_dropped_from_all() -> None:
    aggregator = KlineAggregator([Interval.M1, Interval.M5])
    feed(aggregator, tick(0, "100"), tick(61, "101"))
    assert feed(aggregator, tick(30, "500")) == []  # late for 1m, inside the open 5m kline
    assert aggregator.late_ticks == 1
    assert aggregator.building("BTCUSDT", Interval.M5) == kline(
        0, "100 101 100 101 2", interval=Interval.M5
    )
