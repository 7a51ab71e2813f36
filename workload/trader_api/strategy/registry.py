"""Strategy kinds: the name a config uses, its parameters model and its function.

A new strategy is one pure function plus one ``StrategyKind`` registered here;
configs, validation and the engine pick it up by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trader_api.domain import Kline, Signal
from trader_api.strategy.functions import rsi_mean_reversion, sma_crossover
from trader_api.strategy.incremental import (
    IncrementalStrategy,
    RsiMeanReversionEvaluator,
    SmaCrossoverEvaluator,
    WindowedEvaluator,
)

MAX_WINDOW = 5000
"""The most klines any strategy may ask the engine to keep per (symbol, interval)."""

RSI_HISTORY_PERIODS = 10
"""How many RSI periods of history the engine keeps for a strategy added later to start
from (see ``indicators.wilder_rsi``)."""


class SmaCrossoverParams(BaseModel):
    """Parameters of ``sma_crossover``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fast: int = Field(ge=1, le=1000, description="bars in the fast moving average")
    slow: int = Field(ge=2, le=1000, description="bars in the slow moving average")
    quantity: Decimal = Field(gt=0, allow_inf_nan=False, description="base quantity per signal")

    @model_validator(mode="after")
    def _fast_is_faster(self) -> SmaCrossoverParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be less than slow ({self.slow})")
        return self


class RsiMeanReversionParams(BaseModel):
    """Parameters of ``rsi_mean_reversion``; the defaults are Wilder's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: int = Field(default=14, ge=2, le=400, description="RSI period in bars")
    oversold: Decimal = Field(default=Decimal(30), gt=0, lt=100)
    overbought: Decimal = Field(default=Decimal(70), gt=0, lt=100)
    quantity: Decimal = Field(gt=0, allow_inf_nan=False, description="base quantity per signal")

    @model_validator(mode="after")
    def _thresholds_are_ordered(self) -> RsiMeanReversionParams:
        if self.oversold >= self.overbought:
            raise ValueError(
                f"oversold ({self.oversold}) must be less than overbought ({self.overbought})"
            )
        return self


ParamsT = TypeVar("ParamsT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class StrategyKind(Generic[ParamsT]):
    """A registered kind of strategy.

    ``evaluate`` is the pure function that defines the strategy (the
    reference). ``window`` says how many closed klines it needs to see; the
    engine keeps that many per (symbol, interval), to start the evaluator of
    a strategy added later from history. ``incremental`` makes the evaluator
    the engine feeds each kline; a kind without one is evaluated by
    ``evaluate`` over a rolling window (O(window) per kline).
    """

    name: str
    params_model: type[ParamsT]
    evaluate: Callable[[Sequence[Kline], ParamsT, str], Signal | None]
    window: Callable[[ParamsT], int]
    description: str
    incremental: Callable[[ParamsT, str], IncrementalStrategy] | None = None

    def evaluator(self, params: ParamsT, name: str) -> IncrementalStrategy:
        """Return a fresh evaluator of this kind for ``params``, signalling as ``name``."""
        if self.incremental is not None:
            return self.incremental(params, name)
        evaluate = self.evaluate
        return WindowedEvaluator(
            lambda klines: evaluate(klines, params, name), window=self.window(params)
        )


def _evaluate_sma(klines: Sequence[Kline], params: SmaCrossoverParams, name: str) -> Signal | None:
    return sma_crossover(
        klines, fast=params.fast, slow=params.slow, quantity=params.quantity, name=name
    )


def _evaluate_rsi(
    klines: Sequence[Kline], params: RsiMeanReversionParams, name: str
) -> Signal | None:
    return rsi_mean_reversion(
        klines,
        period=params.period,
        oversold=params.oversold,
        overbought=params.overbought,
        quantity=params.quantity,
        name=name,
    )


def _incremental_sma(params: SmaCrossoverParams, name: str) -> SmaCrossoverEvaluator:
    return SmaCrossoverEvaluator(
        fast=params.fast, slow=params.slow, quantity=params.quantity, name=name
    )


def _incremental_rsi(params: RsiMeanReversionParams, name: str) -> RsiMeanReversionEvaluator:
    return RsiMeanReversionEvaluator(
        period=params.period,
        oversold=params.oversold,
        overbought=params.overbought,
        quantity=params.quantity,
        name=name,
    )


SMA_CROSSOVER: StrategyKind[SmaCrossoverParams] = StrategyKind(
    name="sma_crossover",
    params_model=SmaCrossoverParams,
    evaluate=_evaluate_sma,
    window=lambda params: 2 * params.slow + 1,
    description="buy when the fast SMA crosses above the slow SMA, sell when below",
    incremental=_incremental_sma,
)

RSI_MEAN_REVERSION: StrategyKind[RsiMeanReversionParams] = StrategyKind(
    name="rsi_mean_reversion",
    params_model=RsiMeanReversionParams,
    evaluate=_evaluate_rsi,
    window=lambda params: RSI_HISTORY_PERIODS * params.period + 1,
    description="buy when RSI crosses up through oversold, sell when down through overbought",
    incremental=_incremental_rsi,
)

STRATEGY_KINDS: dict[str, StrategyKind[Any]] = {
    kind.name: kind for kind in (SMA_CROSSOVER, RSI_MEAN_REVERSION)
}
"""Every kind a ``StrategyConfig`` may name, by name."""


def get_kind(name: str) -> StrategyKind[Any]:
    """Return the kind called ``name``; the error lists the known ones."""
    try:
        return STRATEGY_KINDS[name]
    except KeyError:
        known = ", ".join(sorted(STRATEGY_KINDS))
        raise ValueError(f"unknown strategy kind {name!r}; known kinds: {known}") from None
