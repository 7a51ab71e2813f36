"""Market data feeds (simulated, CSV replay) and kline aggregation.

Public API (stable names, used by ``services``):

- ``MarketFeed[Tick | Kline]`` (Protocol): an async iterable of events.
- ``MarketEvent = Tick | Kline``; ``Clock`` and ``Sleep`` callables for pacing.
"""

from trader_api.marketdata.feed import Clock, MarketEvent, MarketFeed, Sleep

__all__ = ["Clock", "MarketEvent", "MarketFeed", "Sleep"]
