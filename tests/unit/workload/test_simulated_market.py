"""The simulated market is a reproducible random walk, paced in wall time by its feed."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice, pairwise

import pytest

from trader_api.domain import Tick
from trader_api.marketdata import SimulatedFeed, SimulatedMarket
from unit.workload.pacing_fakes import FakeClock

START = datetime(2025, 1, 28, tzinfo=UTC)
PRICES = {"BTCUSDT": Decimal(50_000), "ETHUSDT": Decimal(3_000)}


def market(**changes: object) -> SimulatedMarket:
    settings: dict[str, object] = {"seed": 7, "start_prices": PRICES, "start": START}
    settings.update(changes)
    return SimulatedMarket(**settings)  # type: ignore[arg-type]  # test-built settings


def first(sim: SimulatedMarket, count: int, symbol: str | None = None) -> list[Tick]:
    ticks = (t for t in sim.ticks() if symbol is None or t.symbol == symbol)
    return list(islice(ticks, count))


def test_the_same_seed_gives_the_same_ticks() -> None:
    assert first(market(), 500) == first(market(), 500)


def test_the_walk_is_pinned_for_a_given_seed() -> None:
    # Replays and demo data depend on the walk: changing it must be a deliberate act.
    assert [(t.symbol, t.price, t.quantity) for t in first(market(), 4)] == [
        ("BTCUSDT", Decimal("49979.66"), Decimal("0.294")),
        ("ETHUSDT", Decimal("2998.94"), Decimal("0.196")),
        ("BTCUSDT", Decimal("49970.53"), Decimal("0.243")),
        ("ETHUSDT", Decimal("2999.40"), Decimal("0.703")),
    ]


def test_another_seed_gives_another_walk() -> None:
    assert first(market(seed=8), 10) != first(market(), 10)


def test_adding_a_symbol_leaves_the_others_walk_alone() -> None:
    alone = market(start_prices={"BTCUSDT": Decimal(50_000)})
    assert first(alone, 200) == first(market(), 200, symbol="BTCUSDT")


def test_every_step_trades_each_symbol_once_in_name_order() -> None:
    ticks = first(market(tick_step=timedelta(milliseconds=250)), 6)
    assert [(t.symbol, t.ts - START) for t in ticks] == [
        ("BTCUSDT", timedelta(0)),
        ("ETHUSDT", timedelta(0)),
        ("BTCUSDT", timedelta(milliseconds=250)),
        ("ETHUSDT", timedelta(milliseconds=250)),
        ("BTCUSDT", timedelta(milliseconds=500)),
        ("ETHUSDT", timedelta(milliseconds=500)),
    ]


def test_zero_volatility_holds_the_price() -> None:
    assert {t.price for t in first(market(volatility=Decimal(0)), 100)} == {
        Decimal("50000.00"),
        Decimal("3000.00"),
    }


def test_the_step_size_has_the_configured_volatility() -> None:
    prices = [t.price for t in first(market(), 20_000, symbol="BTCUSDT")]
    returns = [math.log(b / a) for a, b in pairwise(prices)]
    mean = sum(returns) / len(returns)
    deviation = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
    assert deviation == pytest.approx(0.001, rel=0.05)


def test_prices_sit_on_the_increment_and_never_reach_zero() -> None:
    wild = market(start_prices={"XUSDT": Decimal("0.02")}, volatility=Decimal("0.5"))
    ticks = first(wild, 2_000)
    assert min(t.price for t in ticks) == Decimal("0.01")
    assert all(t.price == t.price.quantize(Decimal("0.01")) for t in ticks)
    assert {t.quantity for t in ticks} <= {Decimal(n) / 1000 for n in range(1, 1001)}


def test_ticks_until_stops_at_the_end_inclusive() -> None:
    ticks = list(market().ticks_until(START + timedelta(seconds=9)))
    assert len(ticks) == 20
    assert ticks[-1].ts == START + timedelta(seconds=9)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start_prices": {}}, "at least one symbol"),
        ({"start_prices": {"BTCUSDT": Decimal(0)}}, "start price of BTCUSDT must be positive"),
        ({"start": datetime(2025, 1, 28)}, "timezone-aware"),  # noqa: DTZ001 - the mistake tested
        ({"volatility": Decimal(1)}, "volatility must be in"),
        ({"tick_step": timedelta(0)}, "tick_step must be positive"),
    ],
)
def test_bad_settings_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        market(**changes)


async def test_the_feed_paces_ticks_by_their_simulated_time() -> None:
    clock = FakeClock()
    feed = SimulatedFeed(market(), speed=2.0, limit=6, clock=clock, sleep=clock.sleep)
    ticks = [tick async for tick in feed]
    assert [t.ts - START for t in ticks] == [timedelta(seconds=s) for s in (0, 0, 1, 1, 2, 2)]
    assert clock.sleeps == [0.5, 0.5]
    assert ticks == first(market(), 6)


async def test_a_slow_consumer_does_not_make_the_feed_drift() -> None:
    clock = FakeClock()
    feed = SimulatedFeed(market(), limit=8, clock=clock, sleep=clock.sleep)
    async for tick in feed:
        if tick.symbol == "ETHUSDT":
            clock.now += 0.3  # the consumer's own work takes time
    assert clock.sleeps == pytest.approx([0.7, 0.7, 0.7])
    assert clock.now == pytest.approx(100 + 3 + 0.3)
