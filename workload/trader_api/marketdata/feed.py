"""``MarketFeed``: the one thing the engine loop needs from a source of market data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from trader_api.domain import Kline, Tick

MarketEvent = Tick | Kline
"""What feeds produce: trades (to aggregate into klines) or klines already closed."""

EventT_co = TypeVar("EventT_co", bound=MarketEvent, covariant=True)

Clock = Callable[[], float]
"""Monotonic seconds, like ``time.monotonic``; injectable so pacing is testable."""

Sleep = Callable[[float], Awaitable[None]]
"""Wait some seconds, like ``asyncio.sleep``; injectable so pacing is testable."""


class MarketFeed(Protocol[EventT_co]):
    """An async iterable of market events, in time order per symbol.

    Feeds are pluggable: the simulated market (``MarketFeed[Tick]``) and the
    CSV replay (``MarketFeed[Kline]``) satisfy it, and so will a live
    exchange stream.
    """

    def __aiter__(self) -> AsyncIterator[EventT_co]: ...
