"""A new leader's simulated market walks on from the last stored price, not from its seed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice

from pydantic import SecretStr

from trader_api.config import Settings
from trader_api.domain import Interval, Kline, Tick
from trader_api.marketdata import SimulatedMarket, resume_market
from trader_api.services.runtime import StoredSimulatedFeed, default_market
from trader_api.storage import MemoryStore
from unit.workload.api_support import API_KEY

START = datetime(2025, 1, 28, tzinfo=UTC)
PRICES = {"BTCUSDT": Decimal(50_000), "ETHUSDT": Decimal(3_000)}
# One step moves a price by at most volatility * sqrt(3) (0.001 * 1.7321), plus a cent.
ONE_STEP = Decimal("0.00174")


def market(start: datetime = START) -> SimulatedMarket:
    return SimulatedMarket(seed=7, start_prices=PRICES, start=start)


def stored(symbol: str, close: str, *, open_time: datetime) -> Kline:
    price = Decimal(close)
    return Kline(symbol, Interval.M1, open_time, price, price, price, price, Decimal(1))


def first_price(sim: SimulatedMarket, symbol: str) -> Tick:
    return next(t for t in sim.ticks() if t.symbol == symbol)


def within_one_step(price: Decimal, of: Decimal) -> bool:
    return abs(price - of) <= of * ONE_STEP + Decimal("0.01")


def test_nothing_stored_keeps_the_seeds_market() -> None:
    sim = market()
    assert resume_market(sim, {}) is sim
    assert resume_market(sim, {"SOLUSDT": stored("SOLUSDT", "150", open_time=START)}) is sim


def test_a_stored_kline_carries_its_symbol_on_from_its_close() -> None:
    last = stored("ETHUSDT", "4200", open_time=START + timedelta(minutes=30))
    resumed = resume_market(market(), {"ETHUSDT": last})
    eth = first_price(resumed, "ETHUSDT")
    assert within_one_step(eth.price, Decimal(4200))
    assert not within_one_step(eth.price, first_price(market(), "ETHUSDT").price)
    # The other symbol keeps its seed price; time carries on from the kline's close.
    assert resumed.start_prices["BTCUSDT"] == Decimal(50_000)
    assert eth.ts == last.close_time == resumed.start


def test_the_walk_starts_at_the_later_of_now_and_the_last_close() -> None:
    last = stored("ETHUSDT", "4200", open_time=START - timedelta(hours=1))
    assert resume_market(market(), {"ETHUSDT": last}).start == START


def test_a_continuation_walks_on_rather_than_replaying_the_opening_moves() -> None:
    opening = [t.price / PRICES["ETHUSDT"] for t in islice(market().ticks(), 40)]
    resumed = resume_market(market(), {"ETHUSDT": stored("ETHUSDT", "3000", open_time=START)})
    again = [t.price / PRICES["ETHUSDT"] for t in islice(resumed.ticks(), 40)]
    assert again != opening
    # And it is as reproducible as the seed's walk.
    twice = resume_market(market(), {"ETHUSDT": stored("ETHUSDT", "3000", open_time=START)})
    assert list(islice(twice.ticks(), 40)) == list(islice(resumed.ticks(), 40))


async def first_tick(feed: StoredSimulatedFeed, symbol: str) -> Tick:
    async for tick in feed:
        if tick.symbol == symbol:
            return tick
    raise AssertionError("the feed ended")


async def test_the_feed_reads_the_store_when_it_starts_playing() -> None:
    store = MemoryStore()
    feed = StoredSimulatedFeed(market(), store=store, speed=1_000_000)
    await store.insert_klines(
        [
            stored("ETHUSDT", "4000", open_time=START),
            stored("ETHUSDT", "4200", open_time=START + timedelta(minutes=1)),
        ]
    )
    tick = await first_tick(feed, "ETHUSDT")
    assert within_one_step(tick.price, Decimal(4200))
    assert tick.ts == START + timedelta(minutes=2)


async def test_the_default_market_on_the_embedded_store_keeps_the_seed_then_resumes() -> None:
    settings = Settings(api_key=SecretStr(API_KEY), pod_name="unit", market_speed=1_000_000)
    store = MemoryStore()
    feed_factory, _ = default_market(settings, store=store)
    feed = feed_factory()
    assert isinstance(feed, StoredSimulatedFeed)
    seed_first = (await first_tick(feed, "ETHUSDT")).price
    assert seed_first == first_price(feed.market, "ETHUSDT").price

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    await store.insert_klines([stored("ETHUSDT", "4500", open_time=now - timedelta(minutes=1))])
    later = feed_factory()
    assert isinstance(later, StoredSimulatedFeed)
    assert within_one_step((await first_tick(later, "ETHUSDT")).price, Decimal(4500))
