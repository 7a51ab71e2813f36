"""``PaperExchange``: a broker that fills against simulated prices, in memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid5

from trader_api.domain import Fill, Order, OrderStatus, OrderType
from trader_api.execution.broker import (
    ClientOrderIdConflictError,
    OrderNotOpenError,
    OrderUpdate,
    SubmitResult,
    UnknownOrderError,
)
from trader_api.execution.matching import BPS, maker_price, taker_price


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Record:
    order: Order
    fills: list[Fill] = field(default_factory=list)


def _same_request(first: Order, second: Order) -> bool:
    return (first.symbol, first.side, first.type, first.quantity, first.limit_price) == (
        second.symbol,
        second.side,
        second.type,
        second.quantity,
        second.limit_price,
    )


class PaperExchange:
    """Fill orders against the latest price of each symbol, with fees and slippage.

    Market orders fill in full at once at the latest price moved against the
    taker by ``slippage_bps`` (a buy pays more, a sell gets less). A limit
    order that is marketable when it arrives fills the same way, never worse
    than its limit; otherwise it rests and fills once ``on_price`` reports a
    price at or through its limit, at its limit, as a maker (``matching``).
    Every fill pays ``fee_bps`` of its notional, in quote currency.

    An order for a symbol with no price yet waits: it comes back ``NEW``
    (accepted, not matched; ``waiting_orders()``), and the symbol's first
    price matches it as if it arrived then: filled at that price if
    marketable, resting (``OPEN``) if not, reported by ``on_price``. NB: a
    new leader's exchange knows no price until its first tick; deciding
    before it rejected market orders and rested marketable limit orders that
    the first tick then filled at their own limit, far from the market.

    ``submit`` is idempotent by ``client_order_id``: a resubmission returns the
    order's current state and its fills with ``duplicate=True``, and never
    fills again. Reusing a ``client_order_id`` for a different order raises
    ``ClientOrderIdConflictError``.

    NB: no ``await`` happens inside ``submit`` or ``cancel``, so each runs
    atomically on the event loop and two concurrent resubmissions cannot both
    fill. The exchange remembers the last ``remember`` finished orders (and
    every resting one), so memory stays bounded on a long run; a resubmission
    older than that is a new order here, and the durable guard against it is
    the store's unique ``client_order_id``.
    """

    def __init__(
        self,
        *,
        fee_bps: Decimal = Decimal(10),
        slippage_bps: Decimal = Decimal(5),
        clock: Callable[[], datetime] = _utc_now,
        remember: int = 100_000,
    ) -> None:
        if remember < 1:
            raise ValueError(f"remember must be >= 1, got {remember}")
        if fee_bps < 0 or slippage_bps < 0:
            raise ValueError(
                f"fee_bps and slippage_bps must be >= 0, got {fee_bps} and {slippage_bps}"
            )
        self.fee_bps = fee_bps
        self.slippage_bps = slippage_bps
        self._clock = clock
        self._prices: dict[str, Decimal] = {}
        self._records: dict[str, _Record] = {}
        self._resting: dict[str, list[str]] = {}
        self._waiting: dict[str, list[str]] = {}
        self._remember = remember
        self._finished: deque[str] = deque()

    def forget(self) -> None:
        """Start over with no price and no order, as a new replica's exchange does.

        NB: for a replica that leads again after another did: its prices and
        book are of its earlier term, so it would match against a stale price
        and could fill an order the other leader has cancelled since. The
        engine restores what is still open from the store, and the store's
        unique ``client_order_id`` and fill ids keep a resubmission from
        filling twice.
        """
        self._prices.clear()
        self._records.clear()
        self._resting.clear()
        self._waiting.clear()
        self._finished.clear()

    def price(self, symbol: str) -> Decimal | None:
        """Return the latest price of ``symbol``, or ``None`` before the first one."""
        return self._prices.get(symbol)

    def order(self, client_order_id: str) -> Order | None:
        """Return the exchange's view of an order, or ``None`` if never submitted."""
        record = self._records.get(client_order_id)
        return record.order if record is not None else None

    def open_orders(self) -> list[Order]:
        """Return resting limit orders, oldest first per symbol."""
        return [
            self._records[client_order_id].order
            for symbol in sorted(self._resting)
            for client_order_id in self._resting[symbol]
        ]

    def waiting_orders(self) -> list[Order]:
        """Return orders accepted before any price of their symbol, oldest first per symbol."""
        return [
            self._records[client_order_id].order
            for symbol in sorted(self._waiting)
            for client_order_id in self._waiting[symbol]
        ]

    async def submit(self, order: Order) -> SubmitResult:
        """Accept ``order``: fill it, rest it, or reject it (as a REJECTED order, not an error)."""
        existing = self._records.get(order.client_order_id)
        if existing is not None:
            if not _same_request(existing.order, order):
                raise ClientOrderIdConflictError(
                    f"client_order_id {order.client_order_id!r} was used for a different order "
                    f"({existing.order.side} {existing.order.quantity} {existing.order.symbol})"
                )
            return SubmitResult(existing.order, tuple(existing.fills), duplicate=True)
        result = self._accept(order)
        if result.order.status.is_terminal:
            self._finish(order.client_order_id)
        return result

    def _accept(self, order: Order) -> SubmitResult:
        now = self._clock()
        record = _Record(order.with_status(OrderStatus.NEW, at=now))
        self._records[order.client_order_id] = record
        reason = self._invalid_reason(order)
        if reason is not None:
            record.order = order.with_status(OrderStatus.REJECTED, at=now, reason=reason)
            return SubmitResult(record.order)
        price = self._prices.get(order.symbol)
        if price is None:
            self._waiting.setdefault(order.symbol, []).append(order.client_order_id)
            return SubmitResult(record.order)
        fills = self._take(record, price=price, at=now)
        return SubmitResult(record.order, fills)

    def _take(self, record: _Record, *, price: Decimal, at: datetime) -> tuple[Fill, ...]:
        """Match an order meeting its first price as a taker: fill it, or rest it."""
        order = record.order
        paid = taker_price(
            order.side, price=price, limit=order.limit_price, slippage_bps=self.slippage_bps
        )
        if paid is None:
            record.order = order.with_status(OrderStatus.OPEN, at=at)
            self._resting.setdefault(order.symbol, []).append(order.client_order_id)
            return ()
        return (self._fill(record, price=paid, at=at),)

    async def cancel(self, order: Order) -> Order:
        """Cancel a resting or waiting order; filled, cancelled and rejected ones cannot be."""
        record = self._records.get(order.client_order_id)
        if record is None:
            raise UnknownOrderError(f"no order with client_order_id {order.client_order_id!r}")
        if record.order.status.is_terminal:
            raise OrderNotOpenError(
                f"order {order.client_order_id!r} is {record.order.status}, not open"
            )
        record.order = record.order.with_status(OrderStatus.CANCELLED, at=self._clock())
        symbol = record.order.symbol
        waiting = order.client_order_id in self._waiting.get(symbol, ())
        (self._waiting if waiting else self._resting)[symbol].remove(order.client_order_id)
        self._finish(order.client_order_id)
        return record.order

    def on_price(self, symbol: str, price: Decimal, *, at: datetime) -> list[OrderUpdate]:
        """Record the latest price; report the orders it filled or, waiting for it, matched.

        Resting orders the price reaches fill at it (makers, no slippage).
        Orders that waited for this symbol's first price meet it as takers,
        and are reported even when they only come to rest, so their new state
        gets stored.
        """
        if not price.is_finite() or price <= 0:
            raise ValueError(f"price of {symbol} must be positive, got {price}")
        self._prices[symbol] = price
        updates: list[OrderUpdate] = []
        still_resting: list[str] = []
        for client_order_id in self._resting.get(symbol, ()):
            record = self._records[client_order_id]
            limit = record.order.limit_price
            paid = (
                None if limit is None else maker_price(record.order.side, price=price, limit=limit)
            )
            if paid is None:
                still_resting.append(client_order_id)
                continue
            fill = self._fill(record, price=paid, at=at)
            updates.append(OrderUpdate(record.order, (fill,)))
            self._finish(client_order_id)
        if symbol in self._resting:
            self._resting[symbol] = still_resting
        for client_order_id in self._waiting.pop(symbol, ()):
            record = self._records[client_order_id]
            fills = self._take(record, price=price, at=at)
            updates.append(OrderUpdate(record.order, fills))
            if record.order.status.is_terminal:
                self._finish(client_order_id)
        return updates

    def _finish(self, client_order_id: str) -> None:
        """Note a finished order; forget the oldest finished one past ``remember``."""
        self._finished.append(client_order_id)
        if len(self._finished) > self._remember:
            del self._records[self._finished.popleft()]

    def _invalid_reason(self, order: Order) -> str | None:
        if not order.quantity.is_finite() or order.quantity <= 0:
            return f"quantity must be positive, got {order.quantity}"
        if order.type is OrderType.LIMIT:
            if order.limit_price is None:
                return "a limit order needs a limit price"
            if not order.limit_price.is_finite() or order.limit_price <= 0:
                return f"limit price must be positive, got {order.limit_price}"
        elif order.limit_price is not None:
            return "a market order takes no limit price"
        return None

    def _fill(self, record: _Record, *, price: Decimal, at: datetime) -> Fill:
        order = record.order
        quantity = order.remaining_quantity
        fill = Fill(
            # NB: derived from the order id, so a replayed simulation makes the same ids.
            id=uuid5(order.id, f"fill-{len(record.fills) + 1}"),
            order_id=order.id,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            fee=quantity * price * self.fee_bps / BPS,
            ts=at,
        )
        record.fills.append(fill)
        record.order = order.with_fill(fill)
        return fill
