"""Indicators over ``Decimal`` prices: simple moving average and Wilder's RSI.

NB: computed in a local decimal context of 28 significant digits, so a
result never depends on the caller's context and is the same on every machine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Context, Decimal, localcontext
from itertools import pairwise

DECIMAL_CONTEXT = Context(prec=28)
SMA_SPREAD_PRECISION = 60
"""Digits for SMA sums and spreads: enough that any exchange price sums exactly."""
_WIDE_CONTEXT = Context(prec=SMA_SPREAD_PRECISION)
_HUNDRED = Decimal(100)
_FIFTY = Decimal(50)
_ZERO = Decimal(0)


def sma(values: Sequence[Decimal], period: int) -> Decimal:
    """Return the mean of the last ``period`` values."""
    if period < 1:
        raise ValueError(f"sma period must be >= 1, got {period}")
    if len(values) < period:
        raise ValueError(f"sma({period}) needs {period} values, got {len(values)}")
    with localcontext(DECIMAL_CONTEXT):
        return sum(values[len(values) - period :], _ZERO) / period


def sma_spread_signs_backward(values: Sequence[Decimal], *, fast: int, slow: int) -> Iterator[int]:
    """Yield the sign of ``sma(fast) - sma(slow)`` at each index, from the last one back.

    +1 while the fast average is above the slow one, -1 below, 0 equal, down
    to index ``slow - 1``. The averages are compared as ``fast_sum * slow``
    against ``slow_sum * fast`` on sliding sums in a 60-digit context: no
    division, so "equal" is exact; lazily, so a caller that needs the last
    two signs pays for two.

    NB: explicit context methods rather than ``localcontext``: a generator
    that entered a local context would leak it to its caller at each yield.
    """
    if not 1 <= fast <= slow:
        raise ValueError(f"sma spread needs 1 <= fast <= slow, got fast={fast} slow={slow}")
    ctx = _WIDE_CONTEXT
    end = len(values)
    if end < slow:
        return
    fast_sum = _ZERO
    for value in values[end - fast : end]:
        fast_sum = ctx.add(fast_sum, value)
    slow_sum = _ZERO
    for value in values[end - slow : end]:
        slow_sum = ctx.add(slow_sum, value)
    while True:
        spread = ctx.subtract(ctx.multiply(fast_sum, slow), ctx.multiply(slow_sum, fast))
        yield (spread > 0) - (spread < 0)
        end -= 1
        if end < slow:
            return
        fast_sum = ctx.add(ctx.subtract(fast_sum, values[end]), values[end - fast])
        slow_sum = ctx.add(ctx.subtract(slow_sum, values[end]), values[end - slow])


def sma_spread_signs(values: Sequence[Decimal], *, fast: int, slow: int) -> list[int]:
    """Return ``sma_spread_signs_backward`` in forward order (index ``slow - 1`` first)."""
    return list(sma_spread_signs_backward(values, fast=fast, slow=slow))[::-1]


def _rsi_from_averages(gain: Decimal, loss: Decimal) -> Decimal:
    """Return ``100 * gain / (gain + loss)``: Wilder's ``100 - 100 / (1 + RS)`` with one
    division, so a round RSI (e.g. exactly 30) comes out exact."""
    total = gain + loss
    if total == 0:
        return _FIFTY  # a flat window is neutral, not a division by zero
    # NB: called inside wilder_rsi's local context.
    return _HUNDRED * gain / total


def wilder_rsi(closes: Sequence[Decimal], period: int, *, last: int | None = None) -> list[Decimal]:
    """Return Wilder's RSI for each close from index ``period`` on.

    The first average gain and loss are the simple means of the first
    ``period`` changes; later ones are smoothed as
    ``(previous * (period - 1) + current) / period``. The result has
    ``len(closes) - period`` values; element ``i`` is the RSI at close
    ``period + i``. With ``last``, only the final ``last`` values are
    returned (the smoothing still runs over all closes, which is cheap next to
    turning every average into an RSI).

    NB: Wilder's smoothing remembers all history, so the value depends on how
    much history is given. ``RsiMeanReversionEvaluator`` carries the same
    averages from its first kline; a strategy added to a running engine starts
    from the ``10 * period + 1`` klines it holds, which puts the seed
    average's weight below 0.01 %.
    """
    if period < 1:
        raise ValueError(f"rsi period must be >= 1, got {period}")
    count = len(closes) - period
    if count <= 0:
        return []
    wanted = count if last is None else min(last, count)
    averages: list[tuple[Decimal, Decimal]] = []
    with localcontext(DECIMAL_CONTEXT):
        divisor = Decimal(period)
        keep = Decimal(period - 1)
        gain_sum = _ZERO
        loss_sum = _ZERO
        for previous, current in pairwise(closes[: period + 1]):
            change = current - previous
            if change > 0:
                gain_sum += change
            else:
                loss_sum -= change
        average_gain = gain_sum / divisor
        average_loss = loss_sum / divisor
        if count <= wanted:
            averages.append((average_gain, average_loss))
        for index in range(period + 1, len(closes)):
            change = closes[index] - closes[index - 1]
            if change > 0:
                average_gain = (average_gain * keep + change) / divisor
                average_loss = average_loss * keep / divisor
            else:
                average_gain = average_gain * keep / divisor
                average_loss = (average_loss * keep - change) / divisor
            if len(closes) - index <= wanted:
                averages.append((average_gain, average_loss))
        return [_rsi_from_averages(gain, loss) for gain, loss in averages]
