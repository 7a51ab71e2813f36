"""Strategies as pure functions: a window of closed klines in, a signal or nothing out.

Each looks only at its last bar (the one just closed) and the bar before it,
so it signals once, on the bar where its condition turns; a replay of the same
klines gives the same signals.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from trader_api.domain import Kline, Side, Signal
from trader_api.strategy.indicators import sma, wilder_rsi


def _signal(
    klines: Sequence[Kline], *, name: str, side: Side, quantity: Decimal, reason: str
) -> Signal:
    last = klines[-1]
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
    slow one while the bar before had it at or below (at or above). Needs
    ``slow + 1`` klines; fewer give ``None``.
    """
    if not 1 <= fast < slow:
        raise ValueError(f"sma_crossover needs 1 <= fast < slow, got fast={fast} slow={slow}")
    if len(klines) < slow + 1:
        return None
    closes = [kline.close for kline in klines[len(klines) - slow - 1 :]]
    previous = closes[:-1]
    fast_now, slow_now = sma(closes, fast), sma(closes, slow)
    fast_before, slow_before = sma(previous, fast), sma(previous, slow)
    if fast_now > slow_now and fast_before <= slow_before:
        return _signal(
            klines,
            name=name,
            side=Side.BUY,
            quantity=quantity,
            reason=f"sma {fast} crossed above sma {slow}",
        )
    if fast_now < slow_now and fast_before >= slow_before:
        return _signal(
            klines,
            name=name,
            side=Side.SELL,
            quantity=quantity,
            reason=f"sma {fast} crossed below sma {slow}",
        )
    return None


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
    if period < 1:
        raise ValueError(f"rsi_mean_reversion needs period >= 1, got {period}")
    if not 0 < oversold < overbought < 100:  # noqa: PLR2004 - RSI is a percentage
        raise ValueError(
            "rsi_mean_reversion needs 0 < oversold < overbought < 100, "
            f"got oversold={oversold} overbought={overbought}"
        )
    if len(klines) < period + 2:
        return None
    before, now = wilder_rsi([kline.close for kline in klines], period, last=2)
    if before < oversold <= now:
        return _signal(
            klines,
            name=name,
            side=Side.BUY,
            quantity=quantity,
            reason=f"rsi {period} crossed up through {oversold} ({now:.2f})",
        )
    if before > overbought >= now:
        return _signal(
            klines,
            name=name,
            side=Side.SELL,
            quantity=quantity,
            reason=f"rsi {period} crossed down through {overbought} ({now:.2f})",
        )
    return None
