"""Measure strategy evaluation speed: closed klines per second through StrategyEngine.

    .venv/bin/python bench/engine_strategy.py [--klines 5000] [--repeat 5]

Each figure is a ratio to a baseline measured in the same run on the same
klines: a plain-Python rolling mean (a deque and a running ``Decimal`` sum,
O(1) per kline), the least work any moving-average strategy must do. The
klines come from the seeded simulated market through the kline aggregator,
so every run sees the same data. Each of ``--repeat`` rounds times the
baseline and the strategy back to back; the ratio reported is the median of
the per-round ratios, and the rates the best seen.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice

from trader_api.domain import Interval, Kline
from trader_api.marketdata import KlineAggregator, SimulatedMarket
from trader_api.strategy import StrategyConfig, StrategyEngine

START = datetime(2025, 1, 1, tzinfo=UTC)
SLOW = 20


def make_klines(count: int) -> list[Kline]:
    """Return ``count`` closed 1m klines of BTCUSDT: four ticks a minute from the walk."""
    market = SimulatedMarket(
        seed=42,
        start_prices={"BTCUSDT": Decimal(50_000)},
        start=START,
        tick_step=timedelta(seconds=15),
    )
    aggregator = KlineAggregator([Interval.M1])
    klines: list[Kline] = []
    for tick in market.ticks():
        klines.extend(aggregator.on_tick(tick))
        if len(klines) >= count:
            return klines[:count]
    raise AssertionError("unreachable: the simulated market never ends")


def baseline_rolling_mean(klines: Sequence[Kline]) -> int:
    """Keep a rolling mean of the last ``SLOW`` closes; return how many were computed."""
    window: deque[Decimal] = deque(maxlen=SLOW)
    total = Decimal(0)
    computed = 0
    for kline in klines:
        if len(window) == SLOW:
            total -= window[0]
        window.append(kline.close)
        total += kline.close
        if len(window) == SLOW:
            _mean = total / SLOW
            computed += 1
    return computed


def engine_run(config: StrategyConfig) -> Callable[[Sequence[Kline]], int]:
    def run(klines: Sequence[Kline]) -> int:
        engine = StrategyEngine([config])
        return sum(len(engine.on_kline(kline)) for kline in klines)

    return run


def rate(run: Callable[[Sequence[Kline]], int], klines: Sequence[Kline]) -> float:
    began = time.perf_counter()
    run(klines)
    return len(klines) / (time.perf_counter() - began)


def paired_rates(
    run: Callable[[Sequence[Kline]], int], klines: Sequence[Kline], repeat: int
) -> tuple[float, float, float]:
    """Return (best baseline rate, best rate of ``run``, median of the per-round ratios).

    NB: each round times the baseline and ``run`` back to back, and the ratio
    is taken per round: on a machine shared with builds, load changes between
    rounds much more than within one, so the median ratio is the steady figure.
    """
    baselines, rates, ratios = [], [], []
    for _ in range(repeat):
        baselines.append(rate(baseline_rolling_mean, klines))
        rates.append(rate(run, klines))
        ratios.append(rates[-1] / baselines[-1])
    return max(baselines), max(rates), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--klines", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    klines = make_klines(args.klines)
    strategies = {
        "sma_crossover 5/20": StrategyConfig(
            name="sma",
            kind="sma_crossover",
            symbol="BTCUSDT",
            interval=Interval.M1,
            params={"fast": 5, "slow": SLOW, "quantity": "0.01"},
        ),
        "rsi_mean_reversion 14": StrategyConfig(
            name="rsi",
            kind="rsi_mean_reversion",
            symbol="BTCUSDT",
            interval=Interval.M1,
            params={"period": 14, "quantity": "0.01"},
        ),
    }
    signals = {label: engine_run(config)(klines) for label, config in strategies.items()}
    print(f"{len(klines)} closed 1m klines, {args.repeat} rounds (baseline and strategy paired)")
    print(f"{'what':<24}{'klines/s':>12}{'baseline/s':>13}{'ratio (median)':>16}{'signals':>9}")
    for label, config in strategies.items():
        baseline, best, ratio = paired_rates(engine_run(config), klines, args.repeat)
        print(f"{label:<24}{best:>12,.0f}{baseline:>13,.0f}{ratio:>15.4f}x{signals[label]:>9}")
    first = list(islice((k.close for k in klines), 3))
    print(f"first closes (same every run): {', '.join(str(c) for c in first)}")


if __name__ == "__main__":
    main()
