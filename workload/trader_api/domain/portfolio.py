"""Positions and how fills move them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from trader_api.domain.orders import Fill, Order


@dataclass(frozen=True, slots=True)
class Position:
    """A net position in one symbol. ``quantity`` is signed: negative is short.

    ``realized_pnl`` accumulates closed profit net of fees, in quote currency.
    """

    symbol: str
    quantity: Decimal
    average_price: Decimal
    realized_pnl: Decimal
    updated_at: datetime

    @classmethod
    def flat(cls, symbol: str, *, at: datetime) -> Position:
        return cls(symbol, Decimal(0), Decimal(0), Decimal(0), at)

    def notional(self, mark: Decimal) -> Decimal:
        return abs(self.quantity) * mark

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return (mark - self.average_price) * self.quantity

    def apply(self, fill: Fill) -> Position:
        """Return the position after ``fill``.

        Adding to a position moves the average price; reducing it realizes
        profit at the average price; crossing zero opens the remainder at the
        fill price.
        """
        if fill.symbol != self.symbol:
            raise ValueError(f"fill for {fill.symbol} applied to position in {self.symbol}")
        signed = fill.quantity * fill.side.sign
        realized = self.realized_pnl - fill.fee
        quantity = self.quantity + signed
        if self.quantity == 0 or (self.quantity > 0) == (signed > 0):
            total = abs(self.quantity) + fill.quantity
            average = (abs(self.quantity) * self.average_price + fill.notional) / total
        else:
            closed = min(abs(signed), abs(self.quantity))
            direction = 1 if self.quantity > 0 else -1
            realized += (fill.price - self.average_price) * closed * direction
            if quantity == 0:
                average = Decimal(0)
            elif (quantity > 0) == (self.quantity > 0):
                average = self.average_price
            else:
                average = fill.price
        return replace(
            self,
            quantity=quantity,
            average_price=average,
            realized_pnl=realized,
            updated_at=fill.ts,
        )


@dataclass(frozen=True, slots=True)
class Settlement:
    """What one fill does to its order and its symbol's position."""

    order: Order
    position: Position
    realized_pnl: Decimal
    """The realized PnL (net of the fee) this fill added: kept with the fill for daily loss."""


def settle(fill: Fill, *, order: Order, position: Position | None) -> Settlement:
    """Apply ``fill`` to ``order`` and to ``position`` (``None``: flat), as stored right now.

    NB: the store calls this inside the transaction that holds the symbol's
    lock and the order's row, on the rows it just read: computed anywhere
    else, two fills racing (or an old leader finishing one during a lease
    handover) would each start from the same position and one would be lost.
    Raises ``ValueError`` when the fill is not the order's, or overfills it.
    """
    if (fill.order_id, fill.symbol, fill.side) != (order.id, order.symbol, order.side):
        raise ValueError(f"fill {fill.id} does not belong to order {order.id}")
    before = position or Position.flat(fill.symbol, at=fill.ts)
    after = before.apply(fill)
    return Settlement(
        order=order.with_fill(fill),
        position=after,
        realized_pnl=after.realized_pnl - before.realized_pnl,
    )
