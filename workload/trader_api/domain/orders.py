"""Orders and fills.

NB: money and quantities are ``Decimal`` end to end; floats never touch a price.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for buys, -1 for sells: the direction a fill moves a position."""
        return 1 if self is Side.BUY else -1


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(enum.StrEnum):
    """Order lifecycle. ``NEW`` is stored but not yet sent to the exchange."""

    NEW = "new"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        """True while the order can still fill (it counts against max open orders)."""
        return not self.is_terminal


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the engine and the store know it.

    ``client_order_id`` is the idempotency key: submitting the same one twice
    returns the first order instead of creating a second.
    """

    id: UUID
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    status: OrderStatus
    filled_quantity: Decimal
    average_fill_price: Decimal | None
    created_at: datetime
    updated_at: datetime
    strategy: str | None = None
    reject_reason: str | None = None

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    def with_status(self, status: OrderStatus, *, at: datetime, reason: str | None = None) -> Order:
        return replace(self, status=status, updated_at=at, reject_reason=reason)

    def with_fill(self, fill: Fill) -> Order:
        """Return the order after ``fill``: filled quantity, average price and status."""
        filled = self.filled_quantity + fill.quantity
        if filled > self.quantity:
            raise ValueError(f"fill {fill.id} overfills order {self.id}")
        prior_cost = (self.average_fill_price or Decimal(0)) * self.filled_quantity
        average = (prior_cost + fill.price * fill.quantity) / filled
        status = OrderStatus.FILLED if filled == self.quantity else OrderStatus.PARTIALLY_FILLED
        return replace(
            self,
            filled_quantity=filled,
            average_fill_price=average,
            status=status,
            updated_at=fill.ts,
        )


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution against an order. ``fee`` is in quote currency."""

    id: UUID
    order_id: UUID
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price
