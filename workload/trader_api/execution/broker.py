"""The broker protocol: what the engine needs from any exchange adapter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from trader_api.domain import Fill, Order


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order's state after the broker acted on it, with the fills that action made.

    ``fills`` holds only the fills this update reports, in execution order.
    """

    order: Order
    fills: tuple[Fill, ...] = ()


@dataclass(frozen=True, slots=True)
class SubmitResult(OrderUpdate):
    """The outcome of ``Broker.submit``.

    ``duplicate`` is True when the ``client_order_id`` had been submitted
    before: ``order`` is then its current state and ``fills`` every fill it
    has had, and nothing new was executed.
    """

    duplicate: bool = False


class BrokerError(Exception):
    """A broker could not do what was asked."""


class TransientBrokerError(BrokerError):
    """A failure worth retrying: timeouts, disconnects, rate limits, 5xx answers.

    NB: only raise it where a retry cannot double an order, i.e. where the
    broker deduplicates by ``client_order_id``.
    """


class UnknownOrderError(BrokerError):
    """The broker has no order with that id."""


class OrderNotOpenError(BrokerError):
    """The order is already filled, cancelled or rejected, so it cannot be cancelled."""


class ClientOrderIdConflictError(BrokerError):
    """A ``client_order_id`` was reused for a different order."""


class Broker(Protocol):
    """An exchange adapter: the paper exchange, or a live exchange later.

    ``submit`` is idempotent by ``Order.client_order_id``: a resubmission
    returns the first result and never executes twice, which is what makes
    retrying a timed-out submission safe.
    """

    async def submit(self, order: Order) -> SubmitResult:
        """Send ``order``; return its new state and any immediate fills."""
        ...

    async def cancel(self, order: Order) -> Order:
        """Cancel a resting order; return it as cancelled."""
        ...

    def on_price(self, symbol: str, price: Decimal, *, at: datetime) -> list[OrderUpdate]:
        """Take a new market price; return the resting orders it filled."""
        ...
