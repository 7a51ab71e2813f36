"""Incremental strategy evaluators: one closed kline in, O(1) work, a signal or nothing out.

The pure functions in ``functions`` define what a strategy signals; an
evaluator here gives the same signal on every kline of the same series
(``evaluator.step(klines[i]) == reference(klines[: i + 1])``, checked by a
property test), but carries its indicator from bar to bar instead of
recomputing it over the window. Evaluators do no I/O and read no clock: their
state is a function of the klines they were given, so a replay of the same
klines gives the same signals. (``WindowedEvaluator``, for a kind with no
incremental form, runs the function over the last ``window`` klines instead.)

NB: an evaluator trusts its caller (``StrategyEngine``) to give it each
closed kline once, oldest first; duplicates and late bars are dropped before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from decimal import (
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from decimal import getcontext as _getcontext
from decimal import setcontext as _setcontext
from typing import Protocol

from trader_api.domain import Kline, Signal
from trader_api.strategy.functions import (
    check_rsi_params,
    check_sma_params,
    rsi_cross_signal,
    sma_cross_signal,
    sma_crossover,
)
from trader_api.strategy.indicators import DECIMAL_CONTEXT, SMA_SPREAD_PRECISION

_ZERO = Decimal(0)
_FIFTY = Decimal(50)
_HUNDRED = Decimal(100)

_EXACT_SPREAD_CONTEXT = Context(
    prec=SMA_SPREAD_PRECISION, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact]
)
"""The reference's SMA context, but raising instead of rounding: running sums are only
trusted while they are exact (see ``SmaCrossoverEvaluator``)."""


class IncrementalStrategy(Protocol):
    """A strategy fed one closed kline at a time."""

    def step(self, kline: Kline) -> Signal | None:
        """Take the next closed kline; return the signal its bar makes, if any."""
        ...


class WindowedEvaluator:
    """Evaluate a pure strategy function over a rolling window of the latest klines.

    The fallback for a kind with no incremental form: correct by construction,
    O(window) per kline.
    """

    __slots__ = ("_evaluate", "_klines")

    def __init__(
        self, evaluate: Callable[[Sequence[Kline]], Signal | None], *, window: int
    ) -> None:
        self._evaluate = evaluate
        self._klines: deque[Kline] = deque(maxlen=window)

    def step(self, kline: Kline) -> Signal | None:
        self._klines.append(kline)
        return self._evaluate(tuple(self._klines))


class SmaCrossoverEvaluator:
    """``sma_crossover`` in O(1) per kline: running sums and the latest nonzero spread sign.

    The fast and slow sums move by one addition and one subtraction per bar
    and are compared as ``fast_sum * slow`` vs ``slow_sum * fast``, as in the
    reference. The reference's "latest earlier bar where they differed, at
    most ``slow + 1`` bars back" is the latest nonzero sign and its bar index.

    NB: the sums run in the reference's 60-digit context with ``Inexact``
    trapped. Any price quoted on an exchange sums exactly in 60 digits, and
    exact sums give the reference's signs whatever order they were added in.
    Should a window ever hold closes whose sums need more digits, the
    evaluator stops trusting its sums and evaluates every later bar with the
    reference function over the last ``2 * slow + 1`` klines it keeps for
    that (O(slow) per bar, and still the reference's signal).
    """

    __slots__ = (
        "_bar",
        "_exact",
        "_fast",
        "_fast_closes",
        "_fast_sum",
        "_last_sign",
        "_last_sign_bar",
        "_name",
        "_quantity",
        "_recent",
        "_slow",
        "_slow_closes",
        "_slow_sum",
    )

    def __init__(self, *, fast: int, slow: int, quantity: Decimal, name: str) -> None:
        check_sma_params(fast=fast, slow=slow)
        self._fast = fast
        self._slow = slow
        self._quantity = quantity
        self._name = name
        self._fast_closes: deque[Decimal] = deque(maxlen=fast)
        self._slow_closes: deque[Decimal] = deque(maxlen=slow)
        self._recent: deque[Kline] = deque(maxlen=2 * slow + 1)
        self._fast_sum = _ZERO
        self._slow_sum = _ZERO
        self._bar = -1
        self._last_sign = 0
        self._last_sign_bar = -1
        self._exact = True

    @property
    def exact(self) -> bool:
        """False once the evaluator fell back to the reference (sums beyond 60 digits)."""
        return self._exact

    def step(self, kline: Kline) -> Signal | None:
        self._recent.append(kline)
        if not self._exact:
            return self._reference()
        close = kline.close
        fast_closes = self._fast_closes
        slow_closes = self._slow_closes
        # NB: operators in a context set for the step, not ``ctx.add`` and
        # friends: those cost about four times as much per operation.
        saved = _getcontext()
        _setcontext(_EXACT_SPREAD_CONTEXT)
        try:
            if len(fast_closes) == self._fast:
                self._fast_sum = self._fast_sum - fast_closes[0] + close
            else:
                self._fast_sum += close
            if len(slow_closes) == self._slow:
                self._slow_sum = self._slow_sum - slow_closes[0] + close
            else:
                self._slow_sum += close
            spread = self._fast_sum * self._slow - self._slow_sum * self._fast
        except Inexact:
            self._exact = False
            return self._reference()
        finally:
            _setcontext(saved)
        fast_closes.append(close)
        slow_closes.append(close)
        self._bar += 1
        bar = self._bar
        if bar < self._slow - 1:
            return None
        now = (spread > _ZERO) - (spread < _ZERO)
        if now == 0:
            return None
        before = self._last_sign if self._last_sign_bar >= bar - self._slow - 1 else 0
        self._last_sign = now
        self._last_sign_bar = bar
        if now == before or bar < self._slow:
            return None
        return sma_cross_signal(
            kline,
            now=now,
            before=before,
            fast=self._fast,
            slow=self._slow,
            quantity=self._quantity,
            name=self._name,
        )

    def _reference(self) -> Signal | None:
        """Return the reference function's signal over the klines kept for the fallback."""
        return sma_crossover(
            tuple(self._recent),
            fast=self._fast,
            slow=self._slow,
            quantity=self._quantity,
            name=self._name,
        )


class RsiMeanReversionEvaluator:
    """``rsi_mean_reversion`` in O(1) per kline: Wilder's averages carried from bar to bar.

    Every step runs the reference's own operations in the same order in the
    same 28-digit context (seed sums, then ``(average * (period - 1) +
    change) / period``, then ``100 * gain / (gain + loss)``), so each RSI is
    the reference's value digit for digit: thresholds hit exactly (an RSI of
    exactly 30) behave the same.

    NB: like ``wilder_rsi`` over all the klines given, the smoothing starts
    at the evaluator's first kline and remembers everything since.
    """

    __slots__ = (
        "_average_gain",
        "_average_loss",
        "_changes",
        "_divisor",
        "_keep",
        "_name",
        "_overbought",
        "_oversold",
        "_period",
        "_previous_close",
        "_previous_rsi",
        "_quantity",
    )

    def __init__(
        self,
        *,
        period: int,
        oversold: Decimal,
        overbought: Decimal,
        quantity: Decimal,
        name: str,
    ) -> None:
        check_rsi_params(period=period, oversold=oversold, overbought=overbought)
        self._period = period
        self._oversold = oversold
        self._overbought = overbought
        self._quantity = quantity
        self._name = name
        self._divisor = Decimal(period)
        self._keep = Decimal(period - 1)
        self._changes = -1
        self._previous_close = _ZERO
        self._average_gain = _ZERO  # the seed's sums until ``period`` changes are in
        self._average_loss = _ZERO
        self._previous_rsi: Decimal | None = None

    @property
    def rsi(self) -> Decimal | None:
        """The RSI at the latest kline; None until ``period + 1`` klines are in."""
        return self._previous_rsi

    def step(self, kline: Kline) -> Signal | None:
        close = kline.close
        self._changes += 1
        changes = self._changes
        previous_close = self._previous_close
        self._previous_close = close
        if changes == 0:
            return None
        divisor = self._divisor
        keep = self._keep
        # NB: operators in the reference's context, set for the step (cheaper
        # than ``ctx.divide`` and friends); restored before a signal is
        # formatted, as the reference formats it outside its context.
        saved = _getcontext()
        _setcontext(DECIMAL_CONTEXT)
        try:
            change = close - previous_close
            if changes <= self._period:
                if change > _ZERO:
                    self._average_gain += change
                else:
                    self._average_loss -= change
                if changes < self._period:
                    return None
                self._average_gain = self._average_gain / divisor
                self._average_loss = self._average_loss / divisor
            elif change > _ZERO:
                self._average_gain = (self._average_gain * keep + change) / divisor
                self._average_loss = self._average_loss * keep / divisor
            else:
                self._average_gain = self._average_gain * keep / divisor
                self._average_loss = (self._average_loss * keep - change) / divisor
            gain = self._average_gain
            total = gain + self._average_loss
            now = _FIFTY if total == _ZERO else _HUNDRED * gain / total
        finally:
            _setcontext(saved)
        before = self._previous_rsi
        self._previous_rsi = now
        if before is None:
            return None
        if not (before < self._oversold <= now or before > self._overbought >= now):
            return None
        return rsi_cross_signal(
            kline,
            before=before,
            now=now,
            period=self._period,
            oversold=self._oversold,
            overbought=self._overbought,
            quantity=self._quantity,
            name=self._name,
        )
