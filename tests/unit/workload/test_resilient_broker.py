"""Transient broker errors are retried with exponential backoff behind the breaker, and a
retried submission never fills twice."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from trader_api.domain import Order, OrderStatus, Side
from trader_api.execution import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    ClientOrderIdConflictError,
    OrderUpdate,
    PaperExchange,
    ResilientBroker,
    RetryEvent,
    RetryPolicy,
    SubmitResult,
    TransientBrokerError,
)
from unit.workload.engine_builders import T0, new_order


class FlakyExchangeFake:
    """A paper exchange behind a bad network: the first ``failures`` calls fail.

    With ``lose_responses`` the exchange takes the order and the answer is lost
    on the way back, the case that makes idempotent resubmission matter.
    """

    def __init__(self, *, failures: int, lose_responses: bool = False) -> None:
        self.paper = PaperExchange(fee_bps=Decimal(0), slippage_bps=Decimal(0), clock=lambda: T0)
        self.paper.on_price("BTCUSDT", Decimal(100), at=T0)
        self.failures = failures
        self.lose_responses = lose_responses
        self.calls = 0

    async def submit(self, order: Order) -> SubmitResult:
        self.calls += 1
        if self.calls <= self.failures:
            if self.lose_responses:
                await self.paper.submit(order)
            raise TransientBrokerError(f"timeout on call {self.calls}")
        return await self.paper.submit(order)

    async def cancel(self, order: Order) -> Order:
        return await self.paper.cancel(order)

    def on_price(self, symbol: str, price: Decimal, *, at: datetime) -> list[OrderUpdate]:
        return self.paper.on_price(symbol, price, at=at)


class RecordedSleeps:
    """Stands in for ``asyncio.sleep``: records each backoff delay, returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def resilient(
    inner: FlakyExchangeFake,
    sleeps: RecordedSleeps,
    *,
    attempts: int = 4,
    threshold: int = 10,
    events: list[RetryEvent] | None = None,
) -> ResilientBroker:
    return ResilientBroker(
        inner,
        breaker=CircuitBreaker(failure_threshold=threshold, reset_timeout=30, clock=lambda: 0.0),
        retry=RetryPolicy(attempts=attempts, initial_delay=0.1, multiplier=2, max_delay=0.3),
        sleep=sleeps,
        on_retry=None if events is None else events.append,
    )


async def test_transient_errors_are_retried_with_exponential_backoff() -> None:
    inner, sleeps = FlakyExchangeFake(failures=3), RecordedSleeps()
    events: list[RetryEvent] = []
    result = await resilient(inner, sleeps, events=events).submit(new_order("c-1", Side.BUY, "1"))
    assert result.order.status is OrderStatus.FILLED
    assert inner.calls == 4
    assert sleeps.delays == pytest.approx([0.1, 0.2, 0.3])  # capped at max_delay
    assert [(e.operation, e.attempt, str(e.error)) for e in events] == [
        ("submit", 1, "timeout on call 1"),
        ("submit", 2, "timeout on call 2"),
        ("submit", 3, "timeout on call 3"),
    ]


async def test_a_lost_response_retried_returns_the_first_fill_not_a_second() -> None:
    inner, sleeps = FlakyExchangeFake(failures=1, lose_responses=True), RecordedSleeps()
    order = new_order("c-1", Side.BUY, "1")
    result = await resilient(inner, sleeps).submit(order)
    assert result.duplicate is True
    assert len(result.fills) == 1
    assert inner.paper.order("c-1") == result.order


async def test_after_the_last_attempt_the_error_is_raised() -> None:
    inner, sleeps = FlakyExchangeFake(failures=10), RecordedSleeps()
    with pytest.raises(TransientBrokerError, match="timeout on call 4"):
        await resilient(inner, sleeps).submit(new_order("c-1", Side.BUY, "1"))
    assert inner.calls == 4


async def test_an_open_breaker_ends_the_retries() -> None:
    inner, sleeps = FlakyExchangeFake(failures=10), RecordedSleeps()
    broker = resilient(inner, sleeps, attempts=5, threshold=2)
    with pytest.raises(CircuitOpenError):
        await broker.submit(new_order("c-1", Side.BUY, "1"))
    assert inner.calls == 2
    assert broker.breaker.state is CircuitState.OPEN


async def test_errors_that_are_not_transient_are_not_retried() -> None:
    inner, sleeps = FlakyExchangeFake(failures=0), RecordedSleeps()
    broker = resilient(inner, sleeps)
    await broker.submit(new_order("c-1", Side.BUY, "1"))
    with pytest.raises(ClientOrderIdConflictError):
        await broker.submit(new_order("c-1", Side.SELL, "1"))
    assert inner.calls == 2
    assert sleeps.delays == []


async def test_cancel_and_prices_pass_through() -> None:
    inner, sleeps = FlakyExchangeFake(failures=0), RecordedSleeps()
    broker = resilient(inner, sleeps)
    order = new_order("c-1", Side.BUY, "1", limit="90")
    assert (await broker.submit(order)).order.status is OrderStatus.OPEN
    assert (await broker.cancel(order)).status is OrderStatus.CANCELLED
    assert broker.on_price("BTCUSDT", Decimal(80), at=T0) == []
