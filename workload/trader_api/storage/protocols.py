"""What services may ask of storage: the ``Store``, the limiter, the lease and the event bus.

Each protocol has a PostgreSQL/Redis implementation for production and an
in-process twin for the embedded mode (no ``DATABASE_URL``/``REDIS_URL``).
Both pass the same tests, so services never care which one they hold.

NB: names here are a contract with ``trader_api.services`` and the API: extend,
never rename silently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from trader_api.domain import Fill, Interval, Kline, Order, OrderStatus, Position


@dataclass(frozen=True, slots=True)
class PolicyJob:
    """One TimescaleDB background job on ``klines`` (from ``timescaledb_information.jobs``)."""

    job_id: int
    kind: str  # "compression" or "retention"
    after_days: int
    schedule_interval: str
    next_start: datetime | None


@dataclass(frozen=True, slots=True)
class RetentionStatus:
    """How old klines are compressed and dropped, for readiness details and operator status.

    ``engine_retention`` is true when nothing in the database drops old klines,
    so the engine must call ``Store.delete_klines_before`` itself.
    """

    backend: str  # "timescaledb", "postgresql" or "memory"
    engine_retention: bool
    retention_days: int
    compress_after_days: int | None
    jobs: tuple[PolicyJob, ...] = field(default_factory=tuple)
    detail: str = ""

    @property
    def summary(self) -> str:
        """Return one line for logs and status (``timescaledb: unavailable, ...``)."""
        if self.backend == "timescaledb":
            return (
                f"timescaledb: compress after {self.compress_after_days}d, "
                f"drop after {self.retention_days}d ({len(self.jobs)} jobs)"
            )
        return f"timescaledb: unavailable, engine retention active ({self.detail or self.backend})"


@dataclass(frozen=True, slots=True)
class PortfolioState:
    """What a risk decision reads from the store, as of one moment.

    NB: one value from one statement, so the positions, the open-order count
    and the realized PnL are mutually consistent (three reads were not).
    """

    positions: tuple[Position, ...]
    open_orders: int
    realized_pnl: Decimal
    seen: frozenset[UUID] = frozenset()
    """Which of the orders asked about (``pending``) this snapshot already contains."""


@dataclass(frozen=True, slots=True)
class RecordedFill:
    """The answer of ``Store.record_fill``: the order and position as stored after it."""

    order: Order
    position: Position
    recorded: bool
    """False when that fill id was recorded before: nothing changed, both are as stored."""


class Store(Protocol):
    """Durable state of the engine: klines, orders, fills and positions.

    Every method is safe to call concurrently from many tasks. Timestamps are
    timezone-aware UTC; money and quantities are ``Decimal``.
    """

    async def insert_klines(self, klines: Iterable[Kline]) -> int:
        """Upsert klines on (symbol, interval, open_time); return how many distinct keys.

        A later kline with the same key replaces the earlier one (a candle that
        was still open when first stored); re-sending identical klines is a
        no-op (counted, not rewritten).
        """
        ...

    async def query_klines(
        self,
        *,
        symbol: str,
        interval: Interval,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[Kline]:
        """Return klines with ``start <= open_time < end``, oldest first.

        When more than ``limit`` match, the *newest* ``limit`` are returned
        (what a strategy warming up and a chart both want).
        """
        ...

    async def delete_klines_before(self, before: datetime) -> int:
        """Delete klines that opened before ``before``; return how many (engine retention)."""
        ...

    async def create_order(self, order: Order) -> tuple[Order, bool]:
        """Store a new order, idempotent by ``client_order_id``.

        Returns ``(order, True)`` when created, ``(existing, False)`` when an
        order with that client id already exists (a resubmission): exactly one
        row however many concurrent submissions race. NB: the row is committed
        before this returns, so an acknowledged order is never lost.
        """
        ...

    async def get_order(self, order_id: UUID) -> Order | None: ...

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    async def list_orders(
        self,
        *,
        symbol: str | None = None,
        status: OrderStatus | None = None,
        limit: int = 100,
    ) -> list[Order]:
        """Return orders, newest first, optionally filtered by symbol and status."""
        ...

    async def update_order(self, order: Order) -> Order:
        """Write the order's status, reject reason and update time; return the stored order.

        Raises ``NotFoundError`` if it is unknown. NB: the filled quantity and
        average fill price are not written: only ``record_fill`` moves them,
        so a status change made from an older copy cannot undo a fill.
        """
        ...

    async def record_fill(self, *, fill: Fill, order: Order) -> RecordedFill:
        """Apply a fill of ``order`` to the stored order and position and store all three at once.

        The store reads the order and the symbol's position as stored, under a
        lock held until the commit, and applies the fill to them
        (``trader_api.domain.settle``): concurrent fills of one symbol or one
        order, from any task or replica, end as a serial run would. ``order``
        names the order (its id and client order id must match the stored
        one); its fill fields are not trusted. Returns what was stored; with
        ``recorded=False`` (and no change) when a fill with that id was
        already recorded, so a retried fill is harmless. Raises
        ``NotFoundError`` for an unknown order and ``ConflictError`` for a
        fill that is not the order's or would overfill it. The realized PnL
        the fill adds is kept with it for ``realized_pnl_since``.
        """
        ...

    async def list_fills(
        self, *, order_id: UUID | None = None, symbol: str | None = None, limit: int = 100
    ) -> list[Fill]:
        """Return fills, newest first, optionally of one order or symbol."""
        ...

    async def list_positions(self) -> list[Position]:
        """Return every position (flat ones included), by symbol."""
        ...

    async def get_position(self, symbol: str) -> Position | None: ...

    async def count_open_orders(self, symbol: str | None = None) -> int:
        """Count orders that can still fill (risk: max open orders)."""
        ...

    async def realized_pnl_since(self, since: datetime) -> Decimal:
        """Sum the realized PnL (net of fees) of fills at or after ``since`` (risk: daily loss)."""
        ...

    async def portfolio_state(
        self, *, realized_since: datetime, pending: Sequence[UUID] = ()
    ) -> PortfolioState:
        """Read positions, open orders and realized PnL since ``realized_since`` at once.

        Risk checks every order against all three: one round trip and one
        connection checkout instead of three on the order path. ``seen`` tells
        which ``pending`` orders (approved, maybe not yet committed) the same
        snapshot contains, so none is counted twice or not at all.
        """
        ...

    async def retention_status(self) -> RetentionStatus:
        """Report how klines retention is done (TimescaleDB jobs, or the engine)."""
        ...

    async def ping(self) -> None:
        """Return when the store answers; raise ``StorageUnavailableError`` otherwise."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The limiter's answer: allowed or not, tokens left, and when to retry if not."""

    allowed: bool
    remaining: float
    retry_after_s: float


class RateLimiter(Protocol):
    """A token bucket per key (e.g. client IP), shared by every replica."""

    async def acquire(
        self, key: str, *, rate: float, burst: int, cost: float = 1.0
    ) -> RateDecision:
        """Take ``cost`` tokens from ``key``'s bucket, refilled at ``rate``/s up to ``burst``."""
        ...

    async def ping(self) -> None: ...


class LeaderLease(Protocol):
    """A lease naming the one replica that trades; it expires unless renewed."""

    @property
    def is_leader(self) -> bool:
        """True while this holder believes it owns the lease (until its local TTL elapses)."""
        ...

    async def try_acquire(self) -> bool:
        """Take the lease if free (or renew it if ours); return whether we hold it."""
        ...

    async def renew(self) -> bool:
        """Extend the lease only if still ours; return False (and stop leading) otherwise."""
        ...

    async def release(self) -> None:
        """Give the lease up only if still ours, so a successor can take it at once."""
        ...

    async def holder(self) -> str | None:
        """Return the identity of the current holder, if any."""
        ...


class EventBus(Protocol):
    """Fan-out of engine events (orders, fills, ticks) to every replica's WebSockets."""

    async def publish(self, event: Mapping[str, Any]) -> None:
        """Send a JSON-serializable event to every current subscriber, on every replica."""
        ...

    async def publish_many(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Send several events, in order, in one round trip.

        An order announces itself and commands its execution at once: two
        publishes, one write to Redis.
        """
        ...

    def subscribe(self) -> AbstractAsyncContextManager[AsyncIterator[dict[str, Any]]]:
        """Subscribe; iterate the events published after entering the block.

        ``async with bus.subscribe() as events: async for event in events: ...``.
        NB: a context manager rather than a bare iterator, so the subscription
        is live when the block starts (nothing published after it is missed)
        and is torn down when the block ends.
        """
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
