"""Incremental evaluators give the pure functions' signals on every kline, in O(1).

The reference is the pure function over every kline the evaluator has seen
(``reference(klines[: i + 1])`` at bar ``i``); the evaluator must return the
same ``Signal`` or ``None`` there, field for field, on any series.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import ROUND_DOWN, Context, Decimal, Inexact, getcontext, localcontext
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader_api.domain import Interval, Kline, Side, Signal
from trader_api.strategy import (
    RsiMeanReversionEvaluator,
    SmaCrossoverEvaluator,
    StrategyConfig,
    StrategyEngine,
    WindowedEvaluator,
    get_kind,
    rsi_mean_reversion,
    sma_crossover,
    wilder_rsi,
)
from unit.workload.engine_builders import klines_from_closes

Reference = Callable[[Sequence[Kline]], Signal | None]


@dataclass(frozen=True)
class Case:
    """One strategy as a config, with its pure function as the reference."""

    config: StrategyConfig
    reference: Reference


def sma_case(name: str, *, fast: int, slow: int) -> Case:
    def reference(klines: Sequence[Kline]) -> Signal | None:
        return sma_crossover(klines, fast=fast, slow=slow, quantity=Decimal("0.5"), name=name)

    config = StrategyConfig(
        name=name,
        kind="sma_crossover",
        symbol="BTCUSDT",
        interval=Interval.M1,
        params={"fast": fast, "slow": slow, "quantity": "0.5"},
    )
    return Case(config, reference)


def rsi_case(name: str, *, period: int, oversold: Decimal, overbought: Decimal) -> Case:
    def reference(klines: Sequence[Kline]) -> Signal | None:
        return rsi_mean_reversion(
            klines,
            period=period,
            oversold=oversold,
            overbought=overbought,
            quantity=Decimal(1),
            name=name,
        )

    config = StrategyConfig(
        name=name,
        kind="rsi_mean_reversion",
        symbol="BTCUSDT",
        interval=Interval.M1,
        params={
            "period": period,
            "oversold": oversold,
            "overbought": overbought,
            "quantity": "1",
        },
    )
    return Case(config, reference)


# Parameter sets: the smallest windows (where every edge is reached in a few
# bars), the defaults, and thresholds that RSIs of integer closes hit exactly.
CASES = [
    sma_case("sma-1-2", fast=1, slow=2),
    sma_case("sma-2-4", fast=2, slow=4),
    sma_case("sma-3-7", fast=3, slow=7),
    sma_case("sma-5-20", fast=5, slow=20),
    rsi_case("rsi-2", period=2, oversold=Decimal(30), overbought=Decimal(70)),
    rsi_case("rsi-3-edges", period=3, oversold=Decimal(25), overbought=Decimal(75)),
    rsi_case("rsi-4-half", period=4, oversold=Decimal(50), overbought=Decimal("62.5")),
    rsi_case("rsi-14", period=14, oversold=Decimal(30), overbought=Decimal(70)),
]


@st.composite
def close_series(draw: st.DrawFn, *, max_size: int = 80) -> list[Decimal]:
    """Closes of a market that trends, chops, goes flat and moves in cents or whole units."""
    scale = draw(st.sampled_from([Decimal(1), Decimal("0.01"), Decimal("0.0001")]))
    start = draw(st.integers(min_value=50, max_value=5_000))
    moves = draw(
        st.lists(
            st.one_of(
                st.just(0),  # flat klines: a quiet market
                st.integers(min_value=-3, max_value=3),
                st.integers(min_value=-40, max_value=40),
            ),
            min_size=1,
            max_size=max_size,
        )
    )
    closes, level = [], start
    for move in moves:
        level = max(1, level + move)
        closes.append(level * scale)
    return closes


@st.composite
def kline_series(draw: st.DrawFn) -> list[Kline]:
    """Klines of ``close_series``, with gaps: some intervals have no kline at all."""
    closes = draw(close_series())
    gaps = draw(st.lists(st.integers(min_value=1, max_value=3), min_size=len(closes)))
    klines = klines_from_closes([str(close) for close in closes])
    offset = 0
    gapped = []
    for kline, gap in zip(klines, gaps, strict=False):
        offset += gap - 1
        gapped.append(_shifted(kline, minutes=offset))
    return gapped


def _shifted(kline: Kline, *, minutes: int) -> Kline:
    return Kline(
        symbol=kline.symbol,
        interval=kline.interval,
        open_time=kline.open_time + timedelta(minutes=minutes),
        open=kline.open,
        high=kline.high,
        low=kline.low,
        close=kline.close,
        volume=kline.volume,
    )


def reference_signals(klines: Sequence[Kline], reference: Reference) -> list[Signal | None]:
    return [reference(klines[: index + 1]) for index in range(len(klines))]


@settings(max_examples=150, deadline=None)
@given(klines=kline_series(), case=st.sampled_from(CASES))
def test_an_evaluator_signals_as_its_pure_function_on_every_kline(
    klines: list[Kline], case: Case
) -> None:
    evaluator = _evaluator(case.config)
    assert [evaluator.step(kline) for kline in klines] == reference_signals(klines, case.reference)


@st.composite
def rsi_thresholds(draw: st.DrawFn) -> tuple[Decimal, Decimal]:
    """Ordered thresholds: round ones RSIs of integer closes hit exactly, or any in cents."""
    edges = st.sampled_from([Decimal(v) for v in ("20", "25", "30", "40", "50", "60", "75")])
    cents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99.99"), places=2)
    first, second = draw(st.one_of(edges, cents)), draw(st.one_of(edges, cents))
    if first == second:
        second = first + Decimal("0.01") if first < Decimal("99.99") else first - Decimal("0.01")
    return min(first, second), max(first, second)


@settings(max_examples=150, deadline=None)
@given(
    klines=kline_series(),
    period=st.integers(min_value=2, max_value=6),
    thresholds=rsi_thresholds(),
)
def test_rsi_evaluator_matches_for_any_period_and_thresholds(
    klines: list[Kline], period: int, thresholds: tuple[Decimal, Decimal]
) -> None:
    oversold, overbought = thresholds
    case = rsi_case("rsi", period=period, oversold=oversold, overbought=overbought)
    evaluator = RsiMeanReversionEvaluator(
        period=period, oversold=oversold, overbought=overbought, quantity=Decimal(1), name="rsi"
    )
    signals = []
    for index, kline in enumerate(klines):
        signals.append(evaluator.step(kline))
        # Digit for digit, not just on the same side of the thresholds:
        closes = [k.close for k in klines[: index + 1]]
        expected = wilder_rsi(closes, period, last=1)
        assert evaluator.rsi == (expected[0] if expected else None)
        assert str(evaluator.rsi) == str(expected[0] if expected else None)
    assert signals == reference_signals(klines, case.reference)


@settings(max_examples=150, deadline=None)
@given(
    klines=kline_series(),
    fast=st.integers(min_value=1, max_value=6),
    extra=st.integers(min_value=1, max_value=8),
)
def test_sma_evaluator_matches_for_any_fast_and_slow(
    klines: list[Kline], fast: int, extra: int
) -> None:
    case = sma_case("sma", fast=fast, slow=fast + extra)
    evaluator = _evaluator(case.config)
    assert [evaluator.step(kline) for kline in klines] == reference_signals(klines, case.reference)


@st.composite
def engine_feed(draw: st.DrawFn) -> tuple[list[Kline], list[Kline]]:
    """Return (klines the engine is fed, the ones it keeps): replays and late bars mixed in."""
    klines = draw(kline_series())
    fed: list[Kline] = []
    for index, kline in enumerate(klines):
        fed.append(kline)
        if index and draw(st.integers(min_value=0, max_value=4)) == 0:
            # A replay of this bar or a late earlier one, possibly with another close.
            again = klines[draw(st.integers(min_value=0, max_value=index))]
            bump = draw(st.sampled_from([Decimal(0), Decimal(7)]))
            fed.append(
                Kline(
                    symbol=again.symbol,
                    interval=again.interval,
                    open_time=again.open_time,
                    open=again.open,
                    high=again.high + bump,
                    low=again.low,
                    close=again.close + bump,
                    volume=again.volume,
                )
            )
    return fed, klines


@settings(max_examples=100, deadline=None)
@given(feed=engine_feed(), toggles=st.lists(st.integers(min_value=0, max_value=100), max_size=6))
def test_the_engine_signals_as_the_pure_functions_over_the_klines_it_keeps(
    feed: tuple[list[Kline], list[Kline]], toggles: list[int]
) -> None:
    fed, kept = feed
    engine = StrategyEngine(case.config for case in CASES)
    references = {case.config.name: case.reference for case in CASES}
    names = sorted(references)
    enabled = dict.fromkeys(names, True)
    accepted: list[Kline] = []
    for step, kline in enumerate(fed):
        if step in toggles:  # flip one strategy on or off; it keeps evaluating meanwhile
            name = names[step % len(names)]
            enabled[name] = not enabled[name]
            (engine.enable if enabled[name] else engine.disable)(name)
        signals = engine.on_kline(kline)
        if accepted and kline.open_time <= accepted[-1].open_time:
            assert signals == []
            continue
        accepted.append(kline)
        expected = [references[name](accepted) for name in names if enabled[name]]
        assert signals == [signal for signal in expected if signal is not None]
    assert accepted == kept


def test_a_strategy_added_later_starts_from_the_klines_the_engine_holds() -> None:
    rsi = rsi_case("b-rsi", period=2, oversold=Decimal(30), overbought=Decimal(70))
    engine = StrategyEngine([sma_case("a-sma", fast=1, slow=2).config])  # holds 5 klines
    closes = [10, 12, 14, 13, 11, 10, 9, 8, 7, 8, 9, 10, 12, 11, 9, 8, 9]
    klines = klines_from_closes(closes)
    for kline in klines[:9]:
        engine.on_kline(kline)
    held = list(engine.window("BTCUSDT", Interval.M1))
    assert held == klines[4:9]
    engine.add(rsi.config)
    fired = []
    for index, kline in enumerate(klines[9:], start=9):
        fired += [(index, s.side) for s in engine.on_kline(kline) if s.strategy == "b-rsi"]
    expected = [
        (index, signal.side)
        for index in range(9, len(klines))
        if (signal := rsi.reference(held + klines[9 : index + 1])) is not None
    ]
    assert fired == expected
    assert fired  # the series does cross: the comparison is not of two empty lists


def test_sma_evaluator_falls_back_to_the_reference_when_sums_would_round() -> None:
    # 1E+40 next to a close with 30 decimals needs 71 digits: a 60-digit sum rounds.
    closes = ["1E+40", "1.000000000000000000000000000001", "1E+40", "2", "1E+41", "3", "3", "3"]
    klines = klines_from_closes(closes * 3)
    evaluator = SmaCrossoverEvaluator(fast=1, slow=2, quantity=Decimal("0.5"), name="wide")
    steps, exact = [], []
    for kline in klines:
        steps.append(evaluator.step(kline))
        exact.append(evaluator.exact)
    assert exact[:2] == [True, False]  # the second close's sum already needs 61 digits
    reference = sma_case("wide", fast=1, slow=2).reference
    assert steps == reference_signals(klines, reference)
    assert any(signal is not None for signal in steps)


def test_rsi_evaluator_crossing_exactly_at_the_threshold_edges() -> None:
    # RSI(2) is exactly 30 on bar 2 of 20, 23, 16 and exactly 70 on bar 2 of 20, 17, 24.
    def sides(closes: list[int]) -> list[Side | None]:
        evaluator = RsiMeanReversionEvaluator(
            period=2,
            oversold=Decimal(30),
            overbought=Decimal(70),
            quantity=Decimal(1),
            name="edges",
        )
        return [
            None if (signal := evaluator.step(kline)) is None else signal.side
            for kline in klines_from_closes(closes)
        ]

    assert sides([20, 23, 16, 17]) == [None] * 4
    assert sides([20, 23, 15, 16]) == [None, None, None, Side.BUY]
    assert sides([20, 17, 24, 23]) == [None] * 4
    assert sides([20, 17, 25, 24]) == [None, None, None, Side.SELL]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: SmaCrossoverEvaluator(fast=3, slow=3, quantity=Decimal(1), name="x"),
            "1 <= fast < slow",
        ),
        (
            lambda: RsiMeanReversionEvaluator(
                period=2,
                oversold=Decimal(70),
                overbought=Decimal(30),
                quantity=Decimal(1),
                name="x",
            ),
            "0 < oversold < overbought < 100",
        ),
    ],
)
def test_evaluators_refuse_what_the_functions_refuse(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def _evaluator(config: StrategyConfig) -> SmaCrossoverEvaluator | RsiMeanReversionEvaluator:
    """Return the incremental evaluator the engine would build for ``config``."""
    evaluator = get_kind(config.kind).evaluator(config.parsed_params(), config.name)
    assert isinstance(evaluator, SmaCrossoverEvaluator | RsiMeanReversionEvaluator)
    return evaluator


def test_the_property_tests_reach_crosses() -> None:
    """Guard the generators: a fixed chop over CASES gives signals of both sides."""
    klines = klines_from_closes([100, 90, 80, 85, 95, 110, 120, 100, 80, 70, 75, 90] * 4)
    sides = {
        signal.side
        for case in CASES
        for signal in reference_signals(klines, case.reference)
        if signal is not None
    }
    assert sides == {Side.BUY, Side.SELL}


def test_evaluators_ignore_and_restore_the_callers_decimal_context() -> None:
    klines = klines_from_closes(["100.123456", "99.5", "98.25", "99", "101.75", "103", "99"] * 3)
    expected = {case.config.name: reference_signals(klines, case.reference) for case in CASES}
    with localcontext(Context(prec=3, rounding=ROUND_DOWN, traps=[Inexact])) as caller:
        for case in CASES:
            evaluator = _evaluator(case.config)
            got = [evaluator.step(kline) for kline in klines]
            assert getcontext() is caller
            assert got == expected[case.config.name], case.config.name


def test_a_kind_without_an_evaluator_runs_its_function_over_a_rolling_window() -> None:
    plain = replace(get_kind("sma_crossover"), incremental=None)
    config = sma_case("sma", fast=2, slow=4).config
    evaluator = plain.evaluator(config.parsed_params(), "sma")
    assert isinstance(evaluator, WindowedEvaluator)
    klines = klines_from_closes([10, 10, 10, 10, 10, 12, 13, 11, 9, 8, 8, 8, 9, 12, 14])
    reference = sma_case("sma", fast=2, slow=4).reference
    assert [evaluator.step(kline) for kline in klines] == [
        reference(klines[max(0, index - 8) : index + 1]) for index in range(len(klines))
    ]


@pytest.mark.parametrize("period", [2, 14])
def test_rsi_evaluators_started_apart_agree_digit_for_digit_within_65_periods(period: int) -> None:
    # Why a new leader, warmed up from stored klines, signals as the old one did:
    # Wilder's smoothing forgets its seed by (period - 1) / period a bar, and once
    # the two sets of averages round to the same 28 digits they stay the same.
    rng = Random(7)  # noqa: S311 - a reproducible price walk, not a secret
    closes, level = [], 50_000_00
    for _ in range(500 + 65 * period):
        level += rng.randint(-5_000, 5_000)
        closes.append(f"{level // 100}.{level % 100:02d}")
    klines = klines_from_closes(closes)

    def evaluator() -> RsiMeanReversionEvaluator:
        return RsiMeanReversionEvaluator(
            period=period,
            oversold=Decimal(30),
            overbought=Decimal(70),
            quantity=Decimal(1),
            name="rsi",
        )

    early, late = evaluator(), evaluator()
    for kline in klines[:500]:
        early.step(kline)
    steps = []
    for kline in klines[500:]:
        signals = early.step(kline), late.step(kline)
        steps.append((early.rsi, late.rsi, *signals))
    agree = [
        str(early_rsi) == str(late_rsi) and early_signal == late_signal
        for early_rsi, late_rsi, early_signal, late_signal in steps
    ]
    assert not agree[period]  # the late one's seed still shows
    first = agree.index(True, period)
    assert all(agree[first:]), "once equal, always equal"


def _long_walk(count: int, *, seed: int) -> list[Kline]:
    """A seeded random walk in cents: trends, chop and flat stretches over ``count`` bars."""
    rng = Random(seed)  # noqa: S311 - a reproducible price walk, not a secret
    closes, level = [], 50_000_00
    for _ in range(count):
        roll = rng.random()
        level += 0 if roll < 0.1 else rng.randint(-3_000, 3_000) * (4 if roll > 0.95 else 1)
        level = max(level, 1)
        closes.append(f"{level // 100}.{level % 100:02d}")
    return klines_from_closes(closes)


_LONG = 5_000


@pytest.mark.parametrize(
    ("period", "oversold", "overbought"), [(2, 30, 70), (14, 30, 70), (50, 45, 55)]
)
def test_incremental_rsi_equals_the_from_scratch_rsi_on_every_bar_of_a_long_series(
    period: int, oversold: int, overbought: int
) -> None:
    klines = _long_walk(_LONG, seed=period)
    closes = [kline.close for kline in klines]
    from_scratch = wilder_rsi(closes, period)  # one pass over the whole series
    limits = {"oversold": Decimal(oversold), "overbought": Decimal(overbought)}
    evaluator = RsiMeanReversionEvaluator(period=period, quantity=Decimal(1), name="r", **limits)

    incremental, signals = [], []
    for kline in klines:
        signals.append(evaluator.step(kline))
        incremental.append(evaluator.rsi)

    # Digit for digit (str: same exponent too), on each of the thousands of bars.
    assert [str(rsi) for rsi in incremental[period:]] == [str(rsi) for rsi in from_scratch]
    assert incremental[:period] == [None] * period
    # The signals are the pure function's over the whole history up to each bar:
    # at every bar that signals, and at bars spread over the series.
    signalling = [i for i, signal in enumerate(signals) if signal is not None]
    assert len(signalling) >= 5  # the walk does cross
    checked = {*signalling[:: max(1, len(signalling) // 50)], *range(period, _LONG, 97)}
    for index in sorted(checked):
        assert signals[index] == rsi_mean_reversion(
            klines[: index + 1], period=period, quantity=Decimal(1), name="r", **limits
        ), index


@pytest.mark.parametrize(("fast", "slow"), [(5, 20), (50, 200)])
def test_incremental_sma_signals_as_the_from_scratch_function_on_every_bar_of_a_long_series(
    fast: int, slow: int
) -> None:
    klines = _long_walk(_LONG, seed=fast)
    evaluator = SmaCrossoverEvaluator(fast=fast, slow=slow, quantity=Decimal(1), name="s")

    signals = [evaluator.step(kline) for kline in klines]

    assert evaluator.exact  # cents sum exactly: no fallback to the reference
    assert len([s for s in signals if s is not None]) >= 5
    assert signals == [
        sma_crossover(klines[: index + 1], fast=fast, slow=slow, quantity=Decimal(1), name="s")
        for index in range(_LONG)
    ]
