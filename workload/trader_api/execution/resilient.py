"""``ResilientBroker``: retries with exponential backoff, behind a circuit breaker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from trader_api.domain import Order
from trader_api.execution.breaker import CircuitBreaker
from trader_api.execution.broker import Broker, OrderUpdate, SubmitResult, TransientBrokerError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry a transient broker error.

    The n-th retry waits ``min(initial_delay * multiplier ** (n - 1),
    max_delay)`` seconds plus up to ``jitter`` seconds at random.
    """

    attempts: int = 3
    initial_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if min(self.initial_delay, self.max_delay, self.jitter) < 0 or self.multiplier < 1:
            raise ValueError("delays and jitter must be >= 0 and multiplier >= 1")


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """A failed attempt about to be retried after ``delay`` seconds."""

    operation: str
    attempt: int
    delay: float
    error: BaseException


class ResilientBroker:
    """Wrap a broker: retry ``TransientBrokerError`` with backoff, each attempt via a breaker.

    Every attempt goes through the breaker, so repeated failures open it, and
    an open breaker (``CircuitOpenError``) ends the retries at once instead of
    hammering a broker that is down. Other errors are not retried.

    NB: retrying ``submit`` is safe only because brokers deduplicate by
    ``client_order_id``: an attempt that timed out after the exchange took the
    order returns that order on the retry instead of placing a second one. A
    retried ``cancel`` whose lost first attempt went through raises
    ``OrderNotOpenError`` ("is cancelled, not open"): the order is cancelled.
    """

    def __init__(
        self,
        inner: Broker,
        *,
        breaker: CircuitBreaker,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_retry: Callable[[RetryEvent], None] | None = None,
    ) -> None:
        self.inner = inner
        self.breaker = breaker
        self.retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        self._on_retry = on_retry

    async def submit(self, order: Order) -> SubmitResult:
        return await self._call("submit", lambda: self.inner.submit(order))

    async def cancel(self, order: Order) -> Order:
        return await self._call("cancel", lambda: self.inner.cancel(order))

    def on_price(self, symbol: str, price: Decimal, *, at: datetime) -> list[OrderUpdate]:
        """Pass prices straight through: no remote call is made here."""
        return self.inner.on_price(symbol, price, at=at)

    async def _call(self, operation: str, attempt: Callable[[], Awaitable[T]]) -> T:
        policy = self.retry

        def report(state: RetryCallState) -> None:
            if self._on_retry is None or state.outcome is None or state.next_action is None:
                return
            error = state.outcome.exception()
            if error is not None:
                self._on_retry(
                    RetryEvent(operation, state.attempt_number, state.next_action.sleep, error)
                )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=wait_exponential(
                multiplier=policy.initial_delay, exp_base=policy.multiplier, max=policy.max_delay
            )
            + wait_random(0, policy.jitter),
            retry=retry_if_exception_type(TransientBrokerError),
            sleep=self._sleep,
            before_sleep=report,
            reraise=True,
        )
        async for attempt_context in retrying:
            with attempt_context:
                return await self.breaker.call(attempt)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover
