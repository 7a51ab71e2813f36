"""The simulated market: a seeded random walk per symbol, and a feed that paces it."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal

from trader_api.domain import Kline, Tick
from trader_api.marketdata.feed import Clock, Sleep

_CONTEXT = Context(prec=28)
_SQRT3 = Decimal(3).sqrt(_CONTEXT)
_RANDOM_BITS = 32
_RANDOM_SPAN = Decimal(2**_RANDOM_BITS - 1)


@dataclass(frozen=True)
class SimulatedMarket:
    """A deterministic market: the same settings give the same ticks, on any machine.

    Every ``tick_step`` from ``start`` each symbol (in name order) trades once.
    Its price moves by a relative step drawn uniformly with standard deviation
    ``volatility``; the quantity is a random whole number of
    ``quantity_increment`` up to ``max_quantity_steps``. Prices are rounded
    to ``price_increment`` and never drop below it.

    NB: randomness is integers from a ``random.Random`` seeded with
    ``f"{seed}/{symbol}"`` and arithmetic is ``Decimal``, so no float rounding
    or libm varies the walk; and each symbol has its own generator, so adding a
    symbol leaves the others' walks as they were.
    """

    seed: int
    start_prices: Mapping[str, Decimal]
    start: datetime
    volatility: Decimal = Decimal("0.001")
    tick_step: timedelta = timedelta(seconds=1)
    price_increment: Decimal = Decimal("0.01")
    quantity_increment: Decimal = Decimal("0.001")
    max_quantity_steps: int = 1000
    symbols: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.start_prices:
            raise ValueError("a simulated market needs at least one symbol")
        for symbol, price in self.start_prices.items():
            if not price.is_finite() or price <= 0:
                raise ValueError(f"start price of {symbol} must be positive, got {price}")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        if not self.volatility.is_finite() or not 0 <= self.volatility < 1 / _SQRT3:
            raise ValueError(f"volatility must be in [0, 0.577), got {self.volatility}")
        if self.tick_step <= timedelta(0):
            raise ValueError(f"tick_step must be positive, got {self.tick_step}")
        if self.price_increment <= 0 or self.quantity_increment <= 0:
            raise ValueError("price_increment and quantity_increment must be positive")
        if self.max_quantity_steps < 1:
            raise ValueError("max_quantity_steps must be >= 1")
        object.__setattr__(self, "symbols", tuple(sorted(self.start_prices)))

    def ticks(self) -> Iterator[Tick]:
        """Yield ticks forever, in time order; each call starts the walk afresh."""
        walkers = [_Walker(self, symbol) for symbol in self.symbols]
        step = 0
        while True:
            ts = self.start + step * self.tick_step
            for walker in walkers:
                yield walker.next_tick(ts)
            step += 1

    def ticks_until(self, end: datetime) -> Iterator[Tick]:
        """Yield the ticks with ``ts <= end``."""
        for tick in self.ticks():
            if tick.ts > end:
                return
            yield tick


def resume_market(market: SimulatedMarket, last: Mapping[str, Kline]) -> SimulatedMarket:
    """Return ``market`` carried on from the last stored kline of each of its symbols.

    A symbol with a kline in ``last`` walks on from its close instead of its
    seed price; the others keep theirs. The walk starts no earlier than the
    latest close time: a market played faster than wall time ran ahead of the
    clock, and starting back at "now" would rewrite klines already stored.
    The generator seed mixes in that start, so each continuation walks on
    instead of replaying the opening moves of the first run. With nothing
    stored for its symbols (a first start) ``market`` is returned as it is.

    NB: without this a new leader restarted the walk at the seed's opening
    prices, so the market jumped back to them on every leader change.
    """
    carried = {symbol: kline for symbol, kline in last.items() if symbol in market.start_prices}
    if not carried:
        return market
    start = max(market.start, *(kline.close_time for kline in carried.values()))
    digest = hashlib.sha256(f"{market.seed}@{start.isoformat()}".encode()).digest()
    return replace(
        market,
        seed=int.from_bytes(digest[:8], "big"),
        start_prices={
            **market.start_prices,
            **{symbol: kline.close for symbol, kline in carried.items()},
        },
        start=start,
    )


class _Walker:
    def __init__(self, market: SimulatedMarket, symbol: str) -> None:
        self.symbol = symbol
        self.price = market.start_prices[symbol]
        self.rng = random.Random(f"{market.seed}/{symbol}")  # noqa: S311 - a simulation, not crypto
        self.market = market
        self.scale = _CONTEXT.multiply(market.volatility, _SQRT3)

    def next_tick(self, ts: datetime) -> Tick:
        market = self.market
        uniform = Decimal(2 * self.rng.getrandbits(_RANDOM_BITS)) - _RANDOM_SPAN
        move = _CONTEXT.multiply(self.scale, _CONTEXT.divide(uniform, _RANDOM_SPAN))
        self.price = _CONTEXT.multiply(self.price, _CONTEXT.add(Decimal(1), move))
        price = max(
            self.price.quantize(market.price_increment, rounding=ROUND_HALF_EVEN),
            market.price_increment,
        )
        steps = self.rng.randint(1, market.max_quantity_steps)
        return Tick(self.symbol, price, steps * market.quantity_increment, ts)


class SimulatedFeed:
    """Play a ``SimulatedMarket`` in wall time: a ``MarketFeed[Tick]``.

    A tick is yielded once ``(tick.ts - market.start) / speed`` seconds have
    passed on ``clock`` since iteration began; ``speed=60`` plays a minute
    of market per second. ``limit`` stops after that many ticks.

    NB: deadlines are computed from the start, not from the previous tick, so
    slow consumers do not make the simulated clock drift behind wall time.
    """

    def __init__(
        self,
        market: SimulatedMarket,
        *,
        speed: float = 1.0,
        limit: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.market = market
        self.speed = speed
        self.limit = limit
        self._clock = clock
        self._sleep = sleep

    async def __aiter__(self) -> AsyncIterator[Tick]:
        began = self._clock()
        for count, tick in enumerate(self.market.ticks()):
            if self.limit is not None and count >= self.limit:
                return
            due = began + (tick.ts - self.market.start).total_seconds() / self.speed
            delay = due - self._clock()
            if delay > 0:
                await self._sleep(delay)
            yield tick
