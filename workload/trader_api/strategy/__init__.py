"""Strategies: pure functions over klines producing signals.

Public API (stable names, used by ``services`` and the REST API):

- ``sma_crossover(klines, *, fast, slow, quantity, name=...) -> Signal | None``
- ``rsi_mean_reversion(klines, *, period, oversold, overbought, quantity,
  name=...) -> Signal | None`` (Wilder's RSI)
- ``StrategyConfig(name, kind, symbol, interval, params, enabled)``: pydantic,
  validated against the registry ``STRATEGY_KINDS`` (unknown kind or bad
  params raise ``pydantic.ValidationError`` naming the field).
- ``SmaCrossoverEvaluator``, ``RsiMeanReversionEvaluator``: the same
  strategies fed one kline at a time, O(1) each (``step(kline)``), giving
  the functions' signals; ``StrategyEngine`` runs these.
- ``StrategyEngine(configs)``: ``on_kline(kline) -> list[Signal]``,
  ``enable(name)``, ``disable(name)``, ``list()``, ``get(name)``,
  ``add(config)``, ``remove(name)``, ``window(symbol, interval)``; unknown
  names raise ``UnknownStrategyError``.
"""

from trader_api.strategy.config import StrategyConfig
from trader_api.strategy.engine import DuplicateStrategyError, StrategyEngine, UnknownStrategyError
from trader_api.strategy.functions import rsi_mean_reversion, sma_crossover
from trader_api.strategy.incremental import (
    IncrementalStrategy,
    RsiMeanReversionEvaluator,
    SmaCrossoverEvaluator,
    WindowedEvaluator,
)
from trader_api.strategy.indicators import sma, sma_spread_signs, wilder_rsi
from trader_api.strategy.registry import (
    MAX_WINDOW,
    RSI_MEAN_REVERSION,
    SMA_CROSSOVER,
    STRATEGY_KINDS,
    RsiMeanReversionParams,
    SmaCrossoverParams,
    StrategyKind,
    get_kind,
)

__all__ = [
    "MAX_WINDOW",
    "RSI_MEAN_REVERSION",
    "SMA_CROSSOVER",
    "STRATEGY_KINDS",
    "DuplicateStrategyError",
    "IncrementalStrategy",
    "RsiMeanReversionEvaluator",
    "RsiMeanReversionParams",
    "SmaCrossoverEvaluator",
    "SmaCrossoverParams",
    "StrategyConfig",
    "StrategyEngine",
    "StrategyKind",
    "UnknownStrategyError",
    "WindowedEvaluator",
    "get_kind",
    "rsi_mean_reversion",
    "sma",
    "sma_crossover",
    "sma_spread_signs",
    "wilder_rsi",
]
