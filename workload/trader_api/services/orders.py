"""Orders from the API and from strategies: idempotent, risk-checked, committed first.

Any replica takes an order: it checks risk, commits the order (``new``, or
``rejected`` with the reason code) and only then acknowledges it. Execution
is the leader's job: the order's id goes out on the bus as a command, and
the leader also sweeps the store for ``new`` orders, so an acknowledged order
is executed even if the command was lost or no leader existed at the time.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from trader_api.domain import Order, OrderStatus, OrderType, Position, Side
from trader_api.risk import (
    PortfolioSnapshot,
    RejectCode,
    Rejected,
    RiskManager,
    utc_day,
)
from trader_api.services.events import cancel_command, execute_command, order_event
from trader_api.services.hub import EventHub
from trader_api.services.metrics import Metrics
from trader_api.storage import StorageError
from trader_api.storage.protocols import EventBus, Store

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class OrderTicket:
    """An order someone asks for, before it exists."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    strategy: str | None = None

    def same_order_as(self, order: Order) -> bool:
        """True when ``order`` is what this ticket asks for (a genuine resubmission)."""
        return (
            order.symbol == self.symbol
            and order.side is self.side
            and order.type is self.type
            and order.quantity == self.quantity
            and order.limit_price == self.limit_price
        )


class OrderError(Exception):
    """Base of the errors the API maps to 4xx answers."""


class UnknownSymbolError(OrderError):
    """The symbol is not one this engine trades (422)."""


class OrderNotFoundError(OrderError):
    """No order has that id (404)."""


class OrderConflictError(OrderError):
    """The request contradicts the order's state or an earlier request (409)."""


class OrderRejectedError(OrderError):
    """The risk manager refused the order; it is stored as ``rejected`` (422)."""

    def __init__(self, order: Order, *, code: str, message: str) -> None:
        super().__init__(message)
        self.order = order
        self.code = code
        self.message = message


class CancelTimeoutError(OrderError):
    """No leader answered the cancel in time; the order may still be cancelled later (503)."""


def reject_reason(rejection: Rejected) -> str:
    """Store a rejection as ``code: message`` so the code survives the round trip."""
    return f"{rejection.code.value}: {rejection.message}"


def reject_code(order: Order) -> str:
    reason = order.reject_reason or ""
    code, _, _ = reason.partition(":")
    return code if code in RejectCode.__members__.values() else "rejected"


@dataclass(slots=True)
class _Decided:
    order: Order
    visible_from: int | None = None


class DecisionWindow:
    """Orders approved but not yet visible to every later portfolio read.

    Risk decisions read the portfolio from the store, then commit. Holding a
    lock across both would serialize every commit (about 1/commit-latency
    orders per second); instead each decision adds the orders approved
    before it that its own read may have missed. An order leaves the window
    once every read still running started after its commit finished.

    The read also asks the store which of the window's orders its snapshot
    already holds (``pending``/``seen``), and only the others are added, so
    an order whose commit raced the read is counted once.

    NB: an order approved after the read was sent can still be counted twice
    (its commit raced the read), never zero times: the error is on the side
    of refusing, as risk should be. It covers one replica; replicas still
    race each other by a commit's width.
    """

    def __init__(self) -> None:
        self._next_read = 0
        self._active_reads: set[int] = set()
        self._decided: dict[uuid.UUID, _Decided] = {}

    def __len__(self) -> int:
        return len(self._decided)

    def begin_read(self) -> int:
        number = self._next_read
        self._next_read += 1
        self._active_reads.add(number)
        return number

    def end_read(self, number: int) -> None:
        self._active_reads.discard(number)
        self._prune()

    def add(self, order: Order) -> None:
        self._decided[order.id] = _Decided(order)

    def committed(self, order_id: uuid.UUID) -> None:
        decided = self._decided.get(order_id)
        if decided is not None:
            decided.visible_from = self._next_read
            self._prune()

    def abandon(self, order_id: uuid.UUID) -> None:
        self._decided.pop(order_id, None)

    def pending(self) -> list[uuid.UUID]:
        """Return the ids of the window's orders, to ask the store which it already holds."""
        return list(self._decided)

    def adjust(
        self, portfolio: PortfolioSnapshot, *, seen: frozenset[uuid.UUID] = frozenset()
    ) -> PortfolioSnapshot:
        """Return ``portfolio`` with the window's orders counted as open and filled.

        Orders in ``seen`` are already in the read the portfolio came from
        (the store counted them), so they are not added again.
        """
        counted = [d.order for d in self._decided.values() if d.order.id not in seen]
        if not counted:
            return portfolio
        positions = dict(portfolio.positions)
        for order in counted:
            current = positions.get(order.symbol) or Position.flat(
                order.symbol, at=order.created_at
            )
            positions[order.symbol] = replace(
                current, quantity=current.quantity + order.quantity * order.side.sign
            )
        return replace(
            portfolio,
            positions=positions,
            open_orders=portfolio.open_orders + len(counted),
        )

    def _prune(self) -> None:
        oldest = min(self._active_reads, default=self._next_read)
        for order_id, decided in list(self._decided.items()):
            if decided.visible_from is not None and decided.visible_from <= oldest:
                del self._decided[order_id]


class OrderService:
    """Take, list and cancel orders on any replica."""

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        hub: EventHub,
        risk: RiskManager,
        marks: Mapping[str, Decimal],
        symbols: frozenset[str],
        metrics: Metrics,
        clock: Callable[[], datetime] = utc_now,
        cancel_timeout_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._bus = bus
        self._hub = hub
        self._risk = risk
        self._marks = marks
        self._symbols = symbols
        self._metrics = metrics
        self._clock = clock
        self._cancel_timeout = cancel_timeout_seconds
        self.window = DecisionWindow()
        self._announcing: set[asyncio.Task[None]] = set()
        self.committing: set[uuid.UUID] = set()
        """Orders being committed here: their submitter, not the sweep, starts their execution.

        NB: so no copy of an order handed to ``local_executor`` can be stale.
        """
        self.local_executor: Callable[[Order, asyncio.Task[None]], bool] | None = None
        """Set by the engine while this replica leads: takes a committed order, or refuses it.

        It gets the task publishing the order's ``new`` event too, and executes
        the order after it, so clients see ``new`` before any later status.
        NB: an order it takes is executed here without its command going out on
        the bus (which would cost the leader a read of the order it already
        has). If the engine stops first, the next leader's sweep finds it ``new``.
        """

    async def portfolio(self) -> PortfolioSnapshot:
        """Read the portfolio the risk manager checks against, in one store round trip."""
        snapshot, _ = await self._read_portfolio(pending=[])
        return snapshot

    async def _read_portfolio(
        self, *, pending: list[uuid.UUID]
    ) -> tuple[PortfolioSnapshot, frozenset[uuid.UUID]]:
        state = await self._store.portfolio_state(
            realized_since=utc_day(self._clock()), pending=pending
        )
        snapshot = PortfolioSnapshot(
            positions={position.symbol: position for position in state.positions},
            open_orders=state.open_orders,
            marks=dict(self._marks),
            realized_pnl_today=state.realized_pnl,
        )
        return snapshot, state.seen

    async def submit(self, ticket: OrderTicket) -> tuple[Order, bool]:
        """Check, commit and announce an order; return it and whether it is new.

        A resubmitted ``client_order_id`` returns the stored order unchanged
        (``False``), or 409 when it names a different order. A rejection is
        stored too, then raised.
        """
        if ticket.symbol not in self._symbols:
            known = ", ".join(sorted(self._symbols))
            raise UnknownSymbolError(f"symbol {ticket.symbol!r} is not traded here ({known})")
        # NB: no lookup of the client_order_id first: create_order settles
        # resubmissions (and racing first submissions) in the same round trip.
        reading = self.window.begin_read()
        try:
            stored, seen = await self._read_portfolio(pending=self.window.pending())
            portfolio = self.window.adjust(stored, seen=seen)
            decision = self._risk.check(ticket, portfolio)  # a ticket is an OrderIntent
            order = self._new_order(ticket)
            if isinstance(decision, Rejected):
                order = order.with_status(
                    OrderStatus.REJECTED, at=order.created_at, reason=reject_reason(decision)
                )
            else:
                self.window.add(order)
        finally:
            self.window.end_read(reading)
        self.committing.add(order.id)
        try:
            return await self._commit(ticket, order)
        finally:
            self.committing.discard(order.id)

    async def _commit(self, ticket: OrderTicket, order: Order) -> tuple[Order, bool]:
        try:
            stored, created = await self._store.create_order(order)
        except BaseException:
            self.window.abandon(order.id)
            raise
        if not created:
            self.window.abandon(order.id)
            return self._resubmission(ticket, stored), False
        self.window.committed(order.id)
        self._metrics.orders.labels(stored.side.value, stored.status.value).inc()
        if stored.status is OrderStatus.REJECTED:
            self._metrics.risk_rejections.labels(reject_code(stored)).inc()
            self._announce(order_event(stored))
            logger.info(
                "Order rejected by risk",
                extra={"order_id": str(stored.id), "reason": stored.reject_reason},
            )
            raise OrderRejectedError(
                stored, code=reject_code(stored), message=stored.reject_reason or "rejected"
            )
        executor = self.local_executor
        if executor is None:
            self._announce(order_event(stored), execute_command(stored.id))
        else:
            announced = self._announce(order_event(stored))
            if not executor(stored, announced):
                self._announce(execute_command(stored.id), after=announced)
        return stored, True

    def _announce(
        self, *events: dict[str, object], after: asyncio.Task[None] | None = None
    ) -> asyncio.Task[None]:
        """Publish events about a committed order, in order, without holding up the answer.

        NB: the order is already committed, so neither a slow nor a failed
        publish may delay or fail the request: the leader's sweep executes a
        committed order even if its command is lost, and a client's retry
        finds it.
        """
        task = asyncio.get_running_loop().create_task(self._publish_in_order(events, after=after))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)
        return task

    async def _publish_in_order(
        self, events: tuple[dict[str, object], ...], *, after: asyncio.Task[None] | None
    ) -> None:
        if after is not None:
            await asyncio.wait([after])
        try:
            await self._bus.publish_many(events)
        except StorageError as exc:
            logger.warning("Order event not published: %s", exc)

    def _new_order(self, ticket: OrderTicket) -> Order:
        now = self._clock()
        return Order(
            id=uuid.uuid4(),
            client_order_id=ticket.client_order_id,
            symbol=ticket.symbol,
            side=ticket.side,
            type=ticket.type,
            quantity=ticket.quantity,
            limit_price=ticket.limit_price,
            status=OrderStatus.NEW,
            filled_quantity=Decimal(0),
            average_fill_price=None,
            created_at=now,
            updated_at=now,
            strategy=ticket.strategy,
        )

    def _resubmission(self, ticket: OrderTicket, stored: Order) -> Order:
        if not ticket.same_order_as(stored):
            raise OrderConflictError(
                f"client_order_id {ticket.client_order_id!r} was already used for a different "
                f"order ({stored.id})"
            )
        if stored.status is OrderStatus.REJECTED:
            raise OrderRejectedError(
                stored, code=reject_code(stored), message=stored.reject_reason or "rejected"
            )
        return stored

    async def get(self, order_id: uuid.UUID) -> Order:
        order = await self._store.get_order(order_id)
        if order is None:
            raise OrderNotFoundError(f"no order with id {order_id}")
        return order

    async def list(
        self, *, symbol: str | None, status: OrderStatus | None, limit: int
    ) -> list[Order]:
        return await self._store.list_orders(symbol=symbol, status=status, limit=limit)

    async def cancel(self, order_id: uuid.UUID) -> Order:
        """Ask the leader to cancel an order and wait for the outcome.

        NB: only the leader changes an order after it is created (it holds the
        broker), so a follower forwards the request over the bus; the answer
        is the order event the leader publishes.
        """
        order = await self.get(order_id)
        if order.status.is_terminal:
            raise OrderConflictError(f"order {order_id} is {order.status.value}; cannot cancel")
        with self._hub.listen() as listener:
            await self._bus.publish(cancel_command(order_id))
            try:
                async with asyncio.timeout(self._cancel_timeout):
                    while True:
                        event = await listener.get()
                        if event.get("type") != "order":
                            continue
                        payload = event["order"]
                        if payload["id"] != str(order_id):
                            continue
                        if OrderStatus(payload["status"]).is_terminal:
                            break
            except TimeoutError:
                raise CancelTimeoutError(
                    f"no leader confirmed the cancel of {order_id} within "
                    f"{self._cancel_timeout:g}s; it is still pending"
                ) from None
        final = await self.get(order_id)
        if final.status is not OrderStatus.CANCELLED:
            raise OrderConflictError(
                f"order {order_id} was {final.status.value} before it could be cancelled"
            )
        return final
