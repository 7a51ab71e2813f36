"""``CircuitBreaker``: stop calling a broker that keeps failing, then probe it.

Hand-written on purpose, in some sixty lines. The maintained async option,
purgatory, routes state through a unit-of-work and message bus and reads the
time itself (its factory takes no clock), so the reset timeout could only be
tested by waiting for it; pybreaker is synchronous-first. What the engine
needs is small: an injectable monotonic clock, one trial call at a time while
half-open, and a synchronous state-change callback for logs and metrics.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from trader_api.execution.broker import BrokerError, TransientBrokerError

T = TypeVar("T")


class CircuitState(enum.StrEnum):
    """CLOSED: calls pass. OPEN: calls fail fast. HALF_OPEN: one trial call may pass."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def metric_value(self) -> int:
        """0, 1, 2 for closed, half-open, open: a gauge that rises with trouble."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


@dataclass(frozen=True, slots=True)
class CircuitTransition:
    """A change of state, as the API logs it (the line contains ``circuit``)."""

    name: str
    previous: CircuitState
    current: CircuitState
    reason: str

    def __str__(self) -> str:
        return f"circuit {self.name}: {self.previous} -> {self.current} ({self.reason})"


class CircuitOpenError(BrokerError):
    """The breaker is open (or half-open with its trial in flight): nothing was sent."""

    def __init__(self, name: str, *, retry_after: float) -> None:
        super().__init__(f"circuit {name} is open; next trial in {retry_after:.1f}s")
        self.retry_after = retry_after


def is_broker_failure(error: BaseException) -> bool:
    """Count transient and unexpected errors; a broker's clear refusal shows it is up."""
    return isinstance(error, TransientBrokerError) or not isinstance(error, BrokerError)


class CircuitBreaker:
    """Open after ``failure_threshold`` consecutive failures; probe after ``reset_timeout``.

    CLOSED -> OPEN when the threshold is reached; OPEN -> HALF_OPEN once
    ``reset_timeout`` seconds have passed on ``clock`` (seen on the next call
    or read of ``state``); HALF_OPEN -> CLOSED when the trial succeeds, back to
    OPEN (for another full timeout) when it fails. Which errors count as
    failures is ``counts_as_failure``'s call; an error that does not count
    still proves the other side answered, so it counts as a success.
    """

    def __init__(
        self,
        *,
        name: str = "broker",
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[CircuitTransition], None] | None = None,
        counts_as_failure: Callable[[BaseException], bool] = is_broker_failure,
    ) -> None:
        if failure_threshold < 1 or reset_timeout <= 0:
            raise ValueError(
                "failure_threshold must be >= 1 and reset_timeout > 0, got "
                f"{failure_threshold} and {reset_timeout}"
            )
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._on_state_change = on_state_change
        self._counts_as_failure = counts_as_failure
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._move(CircuitState.HALF_OPEN, f"{self.reset_timeout:g}s reset timeout passed")
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` unless the breaker refuses; record how it went."""
        state = self.state
        if state is CircuitState.OPEN or (
            state is CircuitState.HALF_OPEN and self._trial_in_flight
        ):
            retry_after = max(0.0, self._opened_at + self.reset_timeout - self._clock())
            raise CircuitOpenError(self.name, retry_after=retry_after)
        trial = state is CircuitState.HALF_OPEN
        self._trial_in_flight = trial
        try:
            result = await operation()
        except Exception as error:
            if self._counts_as_failure(error):
                self._record_failure(error)
            else:
                self._record_success()
            raise
        finally:
            if trial:
                self._trial_in_flight = False
        self._record_success()
        return result

    def _record_success(self) -> None:
        self._failures = 0
        if self._state is not CircuitState.CLOSED:
            self._move(CircuitState.CLOSED, "a call succeeded")

    def _record_failure(self, error: BaseException) -> None:
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN:
            self._open(f"trial call failed: {error!r}")
        elif self._state is CircuitState.CLOSED and self._failures >= self.failure_threshold:
            self._open(f"{self._failures} consecutive failures, last: {error!r}")

    def _open(self, reason: str) -> None:
        self._opened_at = self._clock()
        self._move(CircuitState.OPEN, reason)

    def _move(self, state: CircuitState, reason: str) -> None:
        previous, self._state = self._state, state
        if self._on_state_change is not None:
            self._on_state_change(CircuitTransition(self.name, previous, state, reason))
