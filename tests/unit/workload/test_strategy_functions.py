"""Strategies signal exactly on the bar where their condition turns, and only there."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

import pytest

from trader_api.domain import Interval, Kline, Side, Signal
from trader_api.strategy import (
    rsi_mean_reversion,
    sma,
    sma_crossover,
    sma_spread_signs,
    wilder_rsi,
)
from unit.workload.engine_builders import T0, klines_from_closes

# Wilder's RSI(14) worked example as published by StockCharts ("RSI" ChartSchool
# article): 33 closes and the 19 RSI values from the 15th close on.
STOCKCHARTS_CLOSES = [
    "44.3389",
    "44.0902",
    "44.1497",
    "43.6124",
    "44.3278",
    "44.8264",
    "45.0955",
    "45.4245",
    "45.8433",
    "46.0826",
    "45.8931",
    "46.0328",
    "45.6140",
    "46.2820",
    "46.2820",
    "46.0028",
    "46.0328",
    "46.4116",
    "46.2222",
    "45.6439",
    "46.2122",
    "46.2521",
    "45.7137",
    "46.4515",
    "45.7835",
    "45.3548",
    "44.0288",
    "44.1783",
    "44.2181",
    "44.5672",
    "43.4205",
    "42.6628",
    "43.1314",
]
STOCKCHARTS_RSI = [
    "70.53",
    "66.32",
    "66.55",
    "69.41",
    "66.36",
    "57.97",
    "62.93",
    "63.26",
    "56.06",
    "62.38",
    "54.71",
    "50.42",
    "39.99",
    "41.46",
    "41.87",
    "45.46",
    "37.30",
    "33.08",
    "37.77",
]


def signals_over_time(
    klines: Sequence[Kline], strategy: Callable[[Sequence[Kline]], Signal | None]
) -> list[tuple[int, Side]]:
    """Run ``strategy`` as each kline closes; return (index of the bar, side) per signal."""
    fired = []
    for index in range(len(klines)):
        signal = strategy(klines[: index + 1])
        if signal is not None:
            fired.append((index, signal.side))
    return fired


def test_sma_is_the_mean_of_the_last_values() -> None:
    values = [Decimal(v) for v in ("1", "2", "3", "4")]
    assert sma(values, 2) == Decimal("3.5")
    assert sma(values, 4) == Decimal("2.5")
    with pytest.raises(ValueError, match="needs 5 values"):
        sma(values, 5)


def test_wilder_rsi_matches_the_published_worked_example() -> None:
    rsi = wilder_rsi([Decimal(c) for c in STOCKCHARTS_CLOSES], 14)
    assert [str(v.quantize(Decimal("0.01"))) for v in rsi] == STOCKCHARTS_RSI


def test_wilder_rsi_can_return_just_the_last_values() -> None:
    closes = [Decimal(c) for c in STOCKCHARTS_CLOSES]
    assert wilder_rsi(closes, 14, last=2) == wilder_rsi(closes, 14)[-2:]
    assert wilder_rsi(closes, 14, last=100) == wilder_rsi(closes, 14)
    assert len(wilder_rsi(closes, 14, last=19)) == 19


def test_wilder_rsi_of_a_flat_series_is_neutral_and_of_a_rising_one_is_100() -> None:
    assert wilder_rsi([Decimal(5)] * 4, 2) == [Decimal(50), Decimal(50)]
    assert wilder_rsi([Decimal(v) for v in (1, 2, 3, 4)], 2) == [Decimal(100), Decimal(100)]
    assert wilder_rsi([Decimal(1), Decimal(2)], 2) == []


def test_sma_crossover_buys_and_sells_on_the_cross_bars_only() -> None:
    klines = klines_from_closes([10, 10, 10, 10, 10, 12, 13, 11, 9, 8, 8, 8])
    fired = signals_over_time(
        klines, lambda window: sma_crossover(window, fast=2, slow=4, quantity=Decimal("0.5"))
    )
    assert fired == [(5, Side.BUY), (8, Side.SELL)]


def test_sma_crossover_signal_carries_the_closing_bar() -> None:
    klines = klines_from_closes([10, 10, 10, 10, 10, 12])
    signal = sma_crossover(klines, fast=2, slow=4, quantity=Decimal("0.5"), name="btc-sma")
    assert signal == Signal(
        strategy="btc-sma",
        symbol="BTCUSDT",
        interval=Interval.M1,
        side=Side.BUY,
        quantity=Decimal("0.5"),
        price=Decimal(12),
        ts=T0.replace(minute=6),
        reason="sma 2 crossed above sma 4",
    )


def test_sma_crossover_needs_slow_plus_one_klines() -> None:
    klines = klines_from_closes([10, 10, 10, 12])
    assert sma_crossover(klines, fast=2, slow=4, quantity=Decimal(1)) is None


def test_sma_crossover_touching_is_no_signal_the_bar_that_goes_through_is() -> None:
    # fast(1)/slow(3): below from bar 3, equal on bar 5 (8 vs 8), above on bar 6 (9 vs 8.33).
    klines = klines_from_closes([10, 10, 10, 8, 8, 8, 9])
    assert signals_over_time(
        klines, lambda window: sma_crossover(window, fast=1, slow=3, quantity=Decimal(1))
    ) == [(3, Side.SELL), (6, Side.BUY)]


@pytest.mark.parametrize(("fast", "slow"), [(0, 3), (3, 3), (4, 3)])
def test_sma_crossover_refuses_fast_not_below_slow(fast: int, slow: int) -> None:
    with pytest.raises(ValueError, match="1 <= fast < slow"):
        sma_crossover(klines_from_closes([1] * 10), fast=fast, slow=slow, quantity=Decimal(1))


def test_rsi_mean_reversion_buys_when_rsi_leaves_oversold_and_sells_when_it_leaves_overbought() -> (
    None
):
    # RSI(2) by bar: -, -, 0, 0, 50, 75, 87.5, 43.75
    klines = klines_from_closes([10, 9, 8, 7, 8, 9, 10, 9])
    fired = signals_over_time(
        klines,
        lambda window: rsi_mean_reversion(
            window,
            period=2,
            oversold=Decimal(30),
            overbought=Decimal(70),
            quantity=Decimal(1),
        ),
    )
    assert fired == [(4, Side.BUY), (7, Side.SELL)]
    sell = rsi_mean_reversion(
        klines, period=2, oversold=Decimal(30), overbought=Decimal(70), quantity=Decimal(1)
    )
    assert sell is not None
    assert sell.reason == "rsi 2 crossed down through 70 (43.75)"
    assert sell.price == Decimal(9)
    assert sell.strategy == "rsi_mean_reversion"


def test_rsi_mean_reversion_starting_exactly_at_the_threshold_is_no_cross() -> None:
    # RSI(2): 30 exactly at bar 2 (gains 1.5 / losses 3.5 on average), 41.67 at bar 3.
    def rsi_signal(closes: list[int]) -> Signal | None:
        return rsi_mean_reversion(
            klines_from_closes(closes),
            period=2,
            oversold=Decimal(30),
            overbought=Decimal(70),
            quantity=Decimal(1),
        )

    assert wilder_rsi([Decimal(c) for c in (20, 23, 16)], 2) == [Decimal(30)]
    assert rsi_signal([20, 23, 16, 17]) is None
    # From just below 30 (20, 23, 15: 3 / 8 -> 27.27) the same rise is a cross.
    signal = rsi_signal([20, 23, 15, 16])
    assert signal is not None
    assert signal.side is Side.BUY
    # The mirror image at overbought: 70 exactly, then a fall, is no cross; from 72.73 it is.
    assert rsi_signal([20, 17, 24, 23]) is None
    signal = rsi_signal([20, 17, 25, 24])
    assert signal is not None
    assert signal.side is Side.SELL


def test_rsi_mean_reversion_needs_period_plus_two_klines() -> None:
    klines = klines_from_closes([10, 9, 8])
    assert (
        rsi_mean_reversion(
            klines, period=2, oversold=Decimal(30), overbought=Decimal(70), quantity=Decimal(1)
        )
        is None
    )


@pytest.mark.parametrize(("oversold", "overbought"), [(70, 30), (0, 70), (30, 100), (50, 50)])
def test_rsi_mean_reversion_refuses_unordered_thresholds(oversold: int, overbought: int) -> None:
    with pytest.raises(ValueError, match="0 < oversold < overbought < 100"):
        rsi_mean_reversion(
            klines_from_closes([1] * 10),
            period=2,
            oversold=Decimal(oversold),
            overbought=Decimal(overbought),
            quantity=Decimal(1),
        )


def test_sma_crossover_touching_and_turning_back_does_not_signal_again() -> None:
    # fast(1)/slow(3): above from bar 3 (buy), equal on bar 5 (12 vs 12), above again on bar 6.
    klines = klines_from_closes([10, 10, 10, 12, 12, 12, 13])
    assert signals_over_time(
        klines, lambda window: sma_crossover(window, fast=1, slow=3, quantity=Decimal(1))
    ) == [(3, Side.BUY)]


def test_sma_crossover_after_a_long_quiet_spell_signals_afresh() -> None:
    # Flat for longer than the look-back: the earlier buy is out of sight.
    klines = klines_from_closes([10, 10, 10, 12] + [12] * 8 + [13])
    fired = signals_over_time(
        klines, lambda window: sma_crossover(window, fast=1, slow=3, quantity=Decimal(1))
    )
    assert fired == [(3, Side.BUY), (12, Side.BUY)]


def test_sma_spread_signs_say_which_average_is_above() -> None:
    values = [Decimal(v) for v in ("1", "2", "3", "2", "1", "1", "1")]
    # sma(2) vs sma(3) from index 2: 2.5>2, 2.5>2.33, 1.5<2, 1<1.33, 1=1
    assert sma_spread_signs(values, fast=2, slow=3) == [1, 1, -1, -1, 0]
