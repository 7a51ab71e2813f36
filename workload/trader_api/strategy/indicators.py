"""Indicators over ``Decimal`` prices: simple moving average and Wilder's RSI.

NB: computed in a local decimal context of 28 significant digits, so a
result never depends on the caller's context and is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Context, Decimal
from itertools import pairwise

DECIMAL_CONTEXT = Context(prec=28)
_HUNDRED = Decimal(100)
_FIFTY = Decimal(50)
_ZERO = Decimal(0)


def sma(values: Sequence[Decimal], period: int) -> Decimal:
    """Return the mean of the last ``period`` values."""
    if period < 1:
        raise ValueError(f"sma period must be >= 1, got {period}")
    if len(values) < period:
        raise ValueError(f"sma({period}) needs {period} values, got {len(values)}")
    total = _ZERO
    for value in values[len(values) - period :]:
        total = DECIMAL_CONTEXT.add(total, value)
    return DECIMAL_CONTEXT.divide(total, Decimal(period))


def _rsi_from_averages(gain: Decimal, loss: Decimal) -> Decimal:
    if loss == 0:
        # NB: no losses at all is 100 by definition; a flat window (no gains
        # either) is neutral rather than a division by zero.
        return _FIFTY if gain == 0 else _HUNDRED
    ctx = DECIMAL_CONTEXT
    relative_strength = ctx.divide(gain, loss)
    return ctx.subtract(_HUNDRED, ctx.divide(_HUNDRED, ctx.add(Decimal(1), relative_strength)))


def wilder_rsi(closes: Sequence[Decimal], period: int) -> list[Decimal]:
    """Return Wilder's RSI for each close from index ``period`` on.

    The first average gain and loss are the simple means of the first
    ``period`` changes; later ones are smoothed as
    ``(previous * (period - 1) + current) / period``. The result has
    ``len(closes) - period`` values; element ``i`` is the RSI at close
    ``period + i``.

    NB: Wilder's smoothing remembers all history, so the value depends on how
    much history is given; the strategy engine keeps ``10 * period`` closes,
    which puts the seed average's weight below 0.01 %.
    """
    if period < 1:
        raise ValueError(f"rsi period must be >= 1, got {period}")
    if len(closes) <= period:
        return []
    ctx = DECIMAL_CONTEXT
    divisor = Decimal(period)
    keep = Decimal(period - 1)
    gain_sum = _ZERO
    loss_sum = _ZERO
    for previous, current in pairwise(closes[: period + 1]):
        change = ctx.subtract(current, previous)
        if change > 0:
            gain_sum = ctx.add(gain_sum, change)
        else:
            loss_sum = ctx.subtract(loss_sum, change)
    average_gain = ctx.divide(gain_sum, divisor)
    average_loss = ctx.divide(loss_sum, divisor)
    values = [_rsi_from_averages(average_gain, average_loss)]
    for index in range(period + 1, len(closes)):
        change = ctx.subtract(closes[index], closes[index - 1])
        gain = change if change > 0 else _ZERO
        loss = -change if change < 0 else _ZERO
        average_gain = ctx.divide(ctx.add(ctx.multiply(average_gain, keep), gain), divisor)
        average_loss = ctx.divide(ctx.add(ctx.multiply(average_loss, keep), loss), divisor)
        values.append(_rsi_from_averages(average_gain, average_loss))
    return values
