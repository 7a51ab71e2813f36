"""In-process store for the embedded mode: same semantics as PostgreSQL, nothing persisted.

NB: every method does its reads and writes without awaiting in between, so on
one event loop each call is atomic, as a transaction would be.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from trader_api.domain import Fill, Interval, Kline, Order, OrderStatus, Position, settle
from trader_api.storage.errors import ConflictError, NotFoundError, StorageUnavailableError
from trader_api.storage.protocols import PortfolioState, RecordedFill, RetentionStatus


@dataclass(frozen=True, slots=True)
class _FillRow:
    fill: Fill
    realized_pnl: Decimal


class MemoryStore:
    """A ``Store`` in dictionaries: for ``trader-api`` without ``DATABASE_URL`` and for tests."""

    def __init__(self, *, retention_days: int = 90) -> None:
        self._retention_days = retention_days
        # (symbol, interval) -> sorted open times, and the klines by open time.
        self._kline_times: dict[tuple[str, Interval], list[datetime]] = {}
        self._klines: dict[tuple[str, Interval], dict[datetime, Kline]] = {}
        self._orders: dict[UUID, Order] = {}
        self._order_ids_by_client_id: dict[str, UUID] = {}
        self._fills: dict[UUID, _FillRow] = {}
        self._positions: dict[str, Position] = {}
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StorageUnavailableError("memory store is closed")

    async def insert_klines(self, klines: Iterable[Kline]) -> int:
        self._check_open()
        written: set[tuple[str, Interval, datetime]] = set()
        for kline in klines:
            series = (kline.symbol, kline.interval)
            by_time = self._klines.setdefault(series, {})
            if kline.open_time not in by_time:
                bisect.insort(self._kline_times.setdefault(series, []), kline.open_time)
            by_time[kline.open_time] = kline
            written.add((*series, kline.open_time))
        return len(written)

    async def query_klines(
        self,
        *,
        symbol: str,
        interval: Interval,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[Kline]:
        self._check_open()
        if limit <= 0:
            return []
        series = (symbol, interval)
        times = self._kline_times.get(series, [])
        low = bisect.bisect_left(times, start) if start is not None else 0
        high = bisect.bisect_left(times, end) if end is not None else len(times)
        low = max(low, high - limit)
        by_time = self._klines[series] if times else {}
        return [by_time[t] for t in times[low:high]]

    async def delete_klines_before(self, before: datetime) -> int:
        self._check_open()
        deleted = 0
        for series, times in self._kline_times.items():
            cut = bisect.bisect_left(times, before)
            by_time = self._klines[series]
            for open_time in times[:cut]:
                del by_time[open_time]
            del times[:cut]
            deleted += cut
        return deleted

    async def create_order(self, order: Order) -> tuple[Order, bool]:
        self._check_open()
        existing_id = self._order_ids_by_client_id.get(order.client_order_id)
        if existing_id is not None:
            return self._orders[existing_id], False
        if order.id in self._orders:
            raise ConflictError(f"order id {order.id} already used by another client order id")
        self._orders[order.id] = order
        self._order_ids_by_client_id[order.client_order_id] = order.id
        return order, True

    async def get_order(self, order_id: UUID) -> Order | None:
        self._check_open()
        return self._orders.get(order_id)

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        self._check_open()
        order_id = self._order_ids_by_client_id.get(client_order_id)
        return None if order_id is None else self._orders[order_id]

    async def list_orders(
        self,
        *,
        symbol: str | None = None,
        status: OrderStatus | None = None,
        limit: int = 100,
    ) -> list[Order]:
        self._check_open()
        matching = [
            order
            for order in self._orders.values()
            if (symbol is None or order.symbol == symbol)
            and (status is None or order.status is status)
        ]
        matching.sort(key=lambda o: (o.created_at, str(o.id)), reverse=True)
        return matching[: max(limit, 0)]

    def _stored(self, order: Order) -> Order:
        """Return the stored copy of ``order``; refuse an unknown id or another client id."""
        stored = self._orders.get(order.id)
        if stored is None:
            raise NotFoundError(f"order {order.id} not found")
        if stored.client_order_id != order.client_order_id:
            raise ConflictError(f"order {order.id} has client id {stored.client_order_id}")
        return stored

    async def update_order(self, order: Order) -> Order:
        self._check_open()
        stored = self._stored(order)
        updated = replace(
            stored,
            status=order.status,
            reject_reason=order.reject_reason,
            updated_at=order.updated_at,
        )
        self._orders[order.id] = updated
        return updated

    async def record_fill(self, *, fill: Fill, order: Order) -> RecordedFill:
        self._check_open()
        stored = self._stored(order)
        position = self._positions.get(fill.symbol)
        if fill.id in self._fills:
            return RecordedFill(
                order=stored,
                position=position or Position.flat(fill.symbol, at=fill.ts),
                recorded=False,
            )
        try:
            settled = settle(fill, order=stored, position=position)
        except ValueError as exc:
            raise ConflictError(str(exc)) from exc
        self._orders[order.id] = settled.order
        self._fills[fill.id] = _FillRow(fill, settled.realized_pnl)
        self._positions[fill.symbol] = settled.position
        return RecordedFill(order=settled.order, position=settled.position, recorded=True)

    async def list_fills(
        self, *, order_id: UUID | None = None, symbol: str | None = None, limit: int = 100
    ) -> list[Fill]:
        self._check_open()
        matching = [
            row.fill
            for row in self._fills.values()
            if (order_id is None or row.fill.order_id == order_id)
            and (symbol is None or row.fill.symbol == symbol)
        ]
        matching.sort(key=lambda f: (f.ts, str(f.id)), reverse=True)
        return matching[: max(limit, 0)]

    async def list_positions(self) -> list[Position]:
        self._check_open()
        return [self._positions[s] for s in sorted(self._positions)]

    async def get_position(self, symbol: str) -> Position | None:
        self._check_open()
        return self._positions.get(symbol)

    async def count_open_orders(self, symbol: str | None = None) -> int:
        self._check_open()
        return sum(
            1
            for order in self._orders.values()
            if order.status.is_open and (symbol is None or order.symbol == symbol)
        )

    async def realized_pnl_since(self, since: datetime) -> Decimal:
        self._check_open()
        return sum(
            (row.realized_pnl for row in self._fills.values() if row.fill.ts >= since),
            Decimal(0),
        )

    async def portfolio_state(
        self, *, realized_since: datetime, pending: Sequence[UUID] = ()
    ) -> PortfolioState:
        return PortfolioState(
            positions=tuple(await self.list_positions()),
            open_orders=await self.count_open_orders(),
            realized_pnl=await self.realized_pnl_since(realized_since),
            seen=frozenset(order_id for order_id in pending if order_id in self._orders),
        )

    async def retention_status(self) -> RetentionStatus:
        return RetentionStatus(
            backend="memory",
            engine_retention=True,
            retention_days=self._retention_days,
            compress_after_days=None,
            detail="in-process store, nothing persisted",
        )

    async def ping(self) -> None:
        self._check_open()

    async def close(self) -> None:
        self._closed = True
