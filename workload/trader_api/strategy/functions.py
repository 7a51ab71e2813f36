"""Strategies as pure functions: a window of closed klines in, a signal or nothing out.

Each signals on the bar where its condition turns (the last one given), and
only there; a replay of the same klines gives the same signals.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from trader_api.domain import Kline, Side, Signal
from trader_api.strategy.indicators import (
    DECIMAL_CONTEXT,
    sma_spread_signs_backward,
    wilder_rsi,
)

_CENT = Decimal("0.01")


def _signal(last: Kline, *, name: str, side: Side, quantity: Decimal, reason: str) -> Signal:
    return Signal(
        strategy=name,
        symbol=last.symbol,
        interval=last.interval,
        side=side,
        quantity=quantity,
        price=last.close,
        ts=last.close_time,
        reason=reason,
    )


def _cents(value: Decimal) -> Decimal:
    """Round to cents half-even in our own context: a reason's text must not depend on
    the caller's decimal context (``f"{value:.2f}"`` rounds with the caller's)."""
    return DECIMAL_CONTEXT.quantize(value, _CENT)


def check_sma_params(*, fast: int, slow: int) -> None:
    """Raise ``ValueError`` unless ``1 <= fast < slow`` (for the function and its evaluator)."""
    if not 1 <= fast < slow:
        raise ValueError(f"sma_crossover needs 1 <= fast < slow, got fast={fast} slow={slow}")


def check_rsi_params(*, period: int, oversold: Decimal, overbought: Decimal) -> None:
    """Raise ``ValueError`` unless ``period >= 1`` and ``0 < oversold < overbought < 100``."""
    if period < 1:
        raise ValueError(f"rsi_mean_reversion needs period >= 1, got {period}")
    if not 0 < oversold < overbought < 100:  # noqa: PLR2004 - RSI is a percentage
        raise ValueError(
            "rsi_mean_reversion needs 0 < oversold < overbought < 100, "
            f"got oversold={oversold} overbought={overbought}"
        )


def sma_cross_signal(
    last: Kline, *, now: int, before: int, fast: int, slow: int, quantity: Decimal, name: str
) -> Signal | None:
    """Return the signal of the bar ``last`` whose spread sign is ``now``, if it crosses.

    ``before`` is the sign of the latest earlier bar where the averages
    differed (0 for none in sight). Shared by ``sma_crossover`` and its
    incremental evaluator, so both decide and word a cross the same way.
    """
    if now in (0, before):
        return None
    side = Side.BUY if now > 0 else Side.SELL
    direction = "above" if now > 0 else "below"
    return _signal(
        last,
        name=name,
        side=side,
        quantity=quantity,
        reason=f"sma {fast} crossed {direction} sma {slow}",
    )


def rsi_cross_signal(
    last: Kline,
    *,
    before: Decimal,
    now: Decimal,
    period: int,
    oversold: Decimal,
    overbought: Decimal,
    quantity: Decimal,
    name: str,
) -> Signal | None:
    """Return the signal of the bar ``last`` whose RSI went from ``before`` to ``now``, if any.

    Shared by ``rsi_mean_reversion`` and its incremental evaluator, so both
    decide and word a cross the same way.
    """
    if before < oversold <= now:
        return _signal(
            last,
            name=name,
            side=Side.BUY,
            quantity=quantity,
            reason=f"rsi {period} crossed up through {oversold} ({_cents(now)})",
        )
    if before > overbought >= now:
        return _signal(
            last,
            name=name,
            side=Side.SELL,
            quantity=quantity,
            reason=f"rsi {period} crossed down through {overbought} ({_cents(now)})",
        )
    return None


def sma_crossover(
    klines: Sequence[Kline],
    *,
    fast: int,
    slow: int,
    quantity: Decimal,
    name: str = "sma_crossover",
) -> Signal | None:
    """Buy when the fast SMA of closes crosses above the slow one; sell when below.

    A cross is the last bar having the fast SMA strictly above (below) the
    slow one while, before it, the latest bar where they differed had it below
    (above). So touching and turning back is no signal: after the averages
    meet (quiet markets make flat klines, and flat klines make equal
    averages), a move on in the same direction does not buy twice. Needs
    ``slow + 1`` klines; the search for the last difference looks back at
    most ``slow`` bars more (``2 * slow + 1`` klines), and finding none there
    counts as coming from neither side.
    """
    check_sma_params(fast=fast, slow=slow)
    if len(klines) < slow + 1:
        return None
    recent = klines[max(0, len(klines) - 2 * slow - 1) :]
    signs = sma_spread_signs_backward([kline.close for kline in recent], fast=fast, slow=slow)
    now = next(signs)
    before = next((sign for sign in signs if sign != 0), 0)
    return sma_cross_signal(
        klines[-1], now=now, before=before, fast=fast, slow=slow, quantity=quantity, name=name
    )


def rsi_mean_reversion(
    klines: Sequence[Kline],
    *,
    period: int,
    oversold: Decimal,
    overbought: Decimal,
    quantity: Decimal,
    name: str = "rsi_mean_reversion",
) -> Signal | None:
    """Buy when Wilder's RSI crosses up through ``oversold``; sell when it crosses down
    through ``overbought``.

    Crossing up means the RSI was below ``oversold`` on the previous bar and
    is at or above it now; crossing down, above ``overbought`` before and at or
    below it now: the buy comes as the selling exhausts, not while it runs.
    Needs ``period + 2`` klines; fewer give ``None``.
    """
    check_rsi_params(period=period, oversold=oversold, overbought=overbought)
    if len(klines) < period + 2:
        return None
    before, now = wilder_rsi([kline.close for kline in klines], period, last=2)
    return rsi_cross_signal(
        klines[-1],
        before=before,
        now=now,
        period=period,
        oversold=oversold,
        overbought=overbought,
        quantity=quantity,
        name=name,
    )
