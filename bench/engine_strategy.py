"""Measure strategy evaluation speed: closed klines per second, reference vs. incremental.

    .venv/bin/python bench/engine_strategy.py [--klines 5000] [--repeat 5]

Each figure is a ratio to a baseline measured in the same run on the same
klines: a plain-Python rolling mean (a deque and a running ``Decimal`` sum,
O(1) per kline), the least work any moving-average strategy must do. Two
ways of evaluating each strategy are timed:

- reference: the pure function over the strategy's rolling window on every
  kline (what ``StrategyEngine`` did before the incremental evaluators,
  O(window) per kline);
- engine: ``StrategyEngine.on_kline``, which runs the incremental evaluator
  (O(1) per kline) and does the engine's own bookkeeping.

The klines come from the seeded simulated market through the kline
aggregator, so every run sees the same data. Each of ``--repeat`` rounds
times the baseline, the reference and the engine back to back; the ratios
reported are the medians of the per-round ratios, and the rates the best seen.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice

from trader_api.domain import Interval, Kline
from trader_api.marketdata import KlineAggregator, SimulatedMarket
from trader_api.strategy import StrategyConfig, StrategyEngine, get_kind

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
    """Return a run of the klines through a fresh ``StrategyEngine``; it counts signals."""

    def run(klines: Sequence[Kline]) -> int:
        engine = StrategyEngine([config])
        return sum(len(engine.on_kline(kline)) for kline in klines)

    return run


def reference_run(config: StrategyConfig) -> Callable[[Sequence[Kline]], int]:
    """Return a run of the pure function over a rolling window of the klines; it counts signals."""
    kind = get_kind(config.kind)
    params = config.parsed_params()
    size = kind.window(params)

    def run(klines: Sequence[Kline]) -> int:
        window: deque[Kline] = deque(maxlen=size)
        signals = 0
        for kline in klines:
            window.append(kline)
            signals += kind.evaluate(tuple(window), params, config.name) is not None
        return signals

    return run


def rate(run: Callable[[Sequence[Kline]], int], klines: Sequence[Kline]) -> float:
    began = time.perf_counter()
    run(klines)
    return len(klines) / (time.perf_counter() - began)


@dataclass(frozen=True)
class Figures:
    baseline: float
    reference: float
    engine: float
    reference_ratio: float
    engine_ratio: float


def paired_rates(
    *,
    reference: Callable[[Sequence[Kline]], int],
    engine: Callable[[Sequence[Kline]], int],
    klines: Sequence[Kline],
    repeat: int,
) -> Figures:
    """Return the best rates and the medians of the per-round ratios to the baseline.

    NB: each round times the baseline, the reference and the engine back to
    back, and the ratios are taken per round: on a machine shared with
    builds, load changes between rounds much more than within one, so the
    median ratio is the steady figure.
    """
    baselines, references, engines = [], [], []
    for _ in range(repeat):
        baselines.append(rate(baseline_rolling_mean, klines))
        references.append(rate(reference, klines))
        engines.append(rate(engine, klines))
    return Figures(
        baseline=max(baselines),
        reference=max(references),
        engine=max(engines),
        reference_ratio=statistics.median(
            r / b for r, b in zip(references, baselines, strict=True)
        ),
        engine_ratio=statistics.median(e / b for e, b in zip(engines, baselines, strict=True)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--klines", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    klines = make_klines(args.klines)
    strategies = {
        "sma_crossover 5/20": ("sma_crossover", {"fast": 5, "slow": SLOW}),
        "sma_crossover 50/200": ("sma_crossover", {"fast": 50, "slow": 200}),
        "rsi_mean_reversion 14": ("rsi_mean_reversion", {"period": 14}),
        "rsi_mean_reversion 50 (45/55)": (
            "rsi_mean_reversion",
            {"period": 50, "oversold": 45, "overbought": 55},
        ),
    }
    print(
        f"{len(klines)} closed 1m klines, {args.repeat} rounds "
        f"(baseline, reference and engine back to back), load average {_load()}"
    )
    print(
        f"{'what':<30}{'reference/s':>13}{'engine/s':>12}{'baseline/s':>13}"
        f"{'reference':>11}{'engine':>10}{'engine/ref':>12}{'signals ref/engine':>20}"
    )
    for label, (kind, params) in strategies.items():
        config = StrategyConfig(
            name=kind.split("_")[0],
            kind=kind,
            symbol="BTCUSDT",
            interval=Interval.M1,
            params={**params, "quantity": "0.01"},
        )
        reference, engine = reference_run(config), engine_run(config)
        signals = f"{reference(klines)}/{engine(klines)}"
        figures = paired_rates(
            reference=reference, engine=engine, klines=klines, repeat=args.repeat
        )
        print(
            f"{label:<30}{figures.reference:>13,.0f}{figures.engine:>12,.0f}"
            f"{figures.baseline:>13,.0f}{figures.reference_ratio:>10.4f}x"
            f"{figures.engine_ratio:>9.3f}x"
            f"{figures.engine_ratio / figures.reference_ratio:>11.0f}x{signals:>20}"
        )
    first = list(islice((k.close for k in klines), 3))
    print(f"first closes (same every run): {', '.join(str(c) for c in first)}")
    print(f"load average after: {_load()}")


def _load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"{one:.1f} (5 min {five:.1f})"


if __name__ == "__main__":
    main()
