"""Market data feeds (simulated, CSV replay) and kline aggregation.

Public API (stable names, used by ``services``):

- ``MarketFeed[Tick | Kline]`` (Protocol): an async iterable of events;
  ``MarketEvent = Tick | Kline``; ``Clock`` and ``Sleep`` callables for pacing.
- ``SimulatedMarket(seed, start_prices, start, volatility, tick_step, ...)``:
  deterministic seeded random walk; ``ticks()``, ``ticks_until(end)``.
- ``SimulatedFeed(market, *, speed, limit, clock, sleep)``: the market paced in
  wall time, a ``MarketFeed[Tick]``.
- ``resume_market(market, last)``: the market carried on from the last stored
  kline of each symbol (a new leader's market), or as it is if none.
- ``KlineAggregator(intervals, *, fill_gaps=True)``: ``on_tick(tick) ->
  list[Kline]`` (closed klines), ``close_until(now)``, ``building(symbol,
  interval)``, ``late_ticks``.
- ``CsvReplayFeed(path, *, speed, clock, sleep)``: a ``MarketFeed[Kline]``;
  ``read_kline_csv(lines, source=...)``; bad rows raise ``CsvFormatError``
  (``line``, ``column``, ``message``); ``KLINE_CSV_COLUMNS`` is the header.
- ``CsvTickReplayFeed(path, ...)``: the same for ticks, a ``MarketFeed[Tick]``;
  ``read_tick_csv``; header ``TICK_CSV_COLUMNS`` (symbol,ts,price,quantity).
"""

from trader_api.marketdata.aggregator import KlineAggregator
from trader_api.marketdata.csv_replay import (
    KLINE_CSV_COLUMNS,
    TICK_CSV_COLUMNS,
    CsvFormatError,
    CsvReplayFeed,
    CsvTickReplayFeed,
    read_kline_csv,
    read_tick_csv,
)
from trader_api.marketdata.feed import Clock, MarketEvent, MarketFeed, Sleep
from trader_api.marketdata.simulated import SimulatedFeed, SimulatedMarket, resume_market

__all__ = [
    "KLINE_CSV_COLUMNS",
    "TICK_CSV_COLUMNS",
    "Clock",
    "CsvFormatError",
    "CsvReplayFeed",
    "CsvTickReplayFeed",
    "KlineAggregator",
    "MarketEvent",
    "MarketFeed",
    "SimulatedFeed",
    "SimulatedMarket",
    "Sleep",
    "read_kline_csv",
    "read_tick_csv",
    "resume_market",
]
