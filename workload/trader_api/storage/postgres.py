"""The production ``Store``: PostgreSQL through an asyncpg pool.

Each method is one statement or one transaction, autocommitted before it
returns: with the server's default ``synchronous_commit = on``, an order is
on disk when ``create_order`` returns, so an acknowledged order is never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import add, attrgetter
from typing import Final
from uuid import UUID

import asyncpg

from trader_api.domain import (
    Fill,
    Interval,
    Kline,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    settle,
)
from trader_api.storage._types import PgConnection
from trader_api.storage.errors import (
    ConflictError,
    NotFoundError,
    StorageUnavailableError,
)
from trader_api.storage.migrate import migrate, migration_lock
from trader_api.storage.protocols import PortfolioState, RecordedFill, RetentionStatus
from trader_api.storage.timescale import KlinesPolicy, apply_timescale, policy_jobs

logger = logging.getLogger(__name__)

_OPEN_STATUSES: Final = tuple(s.value for s in OrderStatus if s.is_open)
_PORTFOLIO_STATE: Final = """
    WITH totals AS (
        SELECT (SELECT count(*) FROM orders WHERE status = ANY($1::text[])) AS open_orders,
               (SELECT COALESCE(sum(realized_pnl), 0) FROM fills WHERE ts >= $2) AS realized,
               (SELECT array_agg(id) FROM orders WHERE id = ANY($3::uuid[])) AS seen
    )
    SELECT totals.open_orders, totals.realized, totals.seen, positions.symbol, positions.quantity,
           positions.average_price, positions.realized_pnl, positions.updated_at
    FROM totals LEFT JOIN positions ON true
    ORDER BY positions.symbol
"""
_KLINE_COLUMNS: Final = (
    "symbol",
    "interval",
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
)
# From this many rows on, COPY beats one multi-row INSERT (bench/storage_ingest.py).
COPY_THRESHOLD: Final = 256

_ORDER_COLUMNS: Final = (
    "id, client_order_id, symbol, side, type, quantity, limit_price, status, filled_quantity, "
    "average_fill_price, strategy, reject_reason, created_at, updated_at"
)
_FILL_COLUMNS: Final = "id, order_id, symbol, side, quantity, price, fee, ts"
INSERT_ORDER: Final = f"""
INSERT INTO orders ({_ORDER_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (client_order_id) DO NOTHING
"""  # noqa: S608  # column list is a constant, values are parameters

_LOCK_SYMBOL: Final = "SELECT pg_advisory_xact_lock(hashtext('traderbot.position:' || $1))"
_ORDER_COLUMNS_OF_O: Final = ", ".join(f"o.{name.strip()}" for name in _ORDER_COLUMNS.split(","))
_READ_FOR_FILL: Final = f"""
SELECT {_ORDER_COLUMNS_OF_O},
       p.quantity AS position_quantity, p.average_price AS position_average_price,
       p.realized_pnl AS position_realized_pnl, p.updated_at AS position_updated_at,
       EXISTS (SELECT 1 FROM fills WHERE fills.id = $3) AS fill_recorded
FROM orders o LEFT JOIN positions p ON p.symbol = $2
WHERE o.id = $1
FOR UPDATE OF o
"""  # noqa: S608  # column list is a constant, values are parameters
# NB: the statements of a WITH all run, whatever the outer statement reads.
_WRITE_FILL: Final = f"""
WITH fill AS (
    INSERT INTO fills ({_FILL_COLUMNS}, realized_pnl)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
), settled_order AS (
    UPDATE orders SET status = $10, filled_quantity = $11, average_fill_price = $12,
                      updated_at = $13
    WHERE id = $2
)
INSERT INTO positions (symbol, quantity, average_price, realized_pnl, updated_at)
VALUES ($3, $14, $15, $16, $17)
ON CONFLICT (symbol) DO UPDATE SET
    quantity = EXCLUDED.quantity, average_price = EXCLUDED.average_price,
    realized_pnl = EXCLUDED.realized_pnl, updated_at = EXCLUDED.updated_at
"""  # noqa: S608  # column list is a constant, values are parameters

_UPSERT_FROM_UNNEST: Final = """
INSERT INTO klines (symbol, interval, open_time, open, high, low, close, volume)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::numeric[], $5::numeric[],
                     $6::numeric[], $7::numeric[], $8::numeric[])
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
    close = EXCLUDED.close, volume = EXCLUDED.volume
WHERE (klines.open, klines.high, klines.low, klines.close, klines.volume)
    IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
"""

_STAGE_TABLE: Final = "klines_stage"
_CREATE_STAGE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS klines_stage (LIKE klines) ON COMMIT DELETE ROWS"
)
_UPSERT_FROM_STAGE: Final = """
INSERT INTO klines (symbol, interval, open_time, open, high, low, close, volume)
SELECT symbol, interval, open_time, open, high, low, close, volume FROM klines_stage
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
    open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
    close = EXCLUDED.close, volume = EXCLUDED.volume
WHERE (klines.open, klines.high, klines.low, klines.close, klines.volume)
    IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
"""

# Errors meaning "the server is not there (now)", as opposed to a bug or bad data.
_UNAVAILABLE: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    # The client's protocol state broke (e.g. a connection dropped mid-message):
    # the next connection works, so it is an outage, not a bug of the request.
    asyncpg.InternalClientError,
)

# Of those, the ones that mean the connection itself is gone (not a timeout of
# a busy server, where reconnecting everything would only add load).
_CONNECTION_LOST: Final = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


@contextlib.contextmanager
def _unavailable_as_storage_error() -> Iterator[None]:
    try:
        yield
    except asyncpg.PostgresError as exc:
        if isinstance(exc, _UNAVAILABLE):
            raise StorageUnavailableError(f"database unreachable: {exc}") from exc
        raise
    except _UNAVAILABLE as exc:
        raise StorageUnavailableError(f"database unreachable: {exc}") from exc


async def _keep_session(_: asyncpg.Connection) -> None:
    """Return a connection to the pool without asyncpg's reset query.

    NB: asyncpg still rolls back an open transaction first; the store never
    changes session state (no SET, LISTEN or session advisory lock on pooled
    connections), so the reset query would only add a round trip per call.
    """


def _kline(row: asyncpg.Record) -> Kline:
    return Kline(
        symbol=row["symbol"],
        interval=Interval(row["interval"]),
        open_time=row["open_time"],
        open=row["open"],
        high=row["high"],
        low=row["low"],
        close=row["close"],
        volume=row["volume"],
    )


def _order(row: asyncpg.Record) -> Order:
    return Order(
        id=row["id"],
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        type=OrderType(row["type"]),
        quantity=row["quantity"],
        limit_price=row["limit_price"],
        status=OrderStatus(row["status"]),
        filled_quantity=row["filled_quantity"],
        average_fill_price=row["average_fill_price"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        strategy=row["strategy"],
        reject_reason=row["reject_reason"],
    )


def _fill(row: asyncpg.Record) -> Fill:
    return Fill(
        id=row["id"],
        order_id=row["order_id"],
        symbol=row["symbol"],
        side=Side(row["side"]),
        quantity=row["quantity"],
        price=row["price"],
        fee=row["fee"],
        ts=row["ts"],
    )


def _position(row: asyncpg.Record) -> Position:
    return Position(
        symbol=row["symbol"],
        quantity=row["quantity"],
        average_price=row["average_price"],
        realized_pnl=row["realized_pnl"],
        updated_at=row["updated_at"],
    )


def insert_order_args(order: Order) -> tuple[object, ...]:
    """Return ``order`` as the parameters of ``INSERT_ORDER``, in ``_ORDER_COLUMNS`` order."""
    return (
        order.id,
        order.client_order_id,
        order.symbol,
        order.side.value,
        order.type.value,
        order.quantity,
        order.limit_price,
        order.status.value,
        order.filled_quantity,
        order.average_fill_price,
        order.strategy,
        order.reject_reason,
        order.created_at,
        order.updated_at,
    )


def _affected(status: str) -> int:
    """Return the row count of a command tag such as ``UPDATE 3`` or ``INSERT 0 5``."""
    return int(status.rsplit(" ", 1)[-1])


def _dedupe(klines: Iterable[Kline]) -> list[Kline]:
    """Keep the last kline per key: one INSERT cannot touch the same row twice."""
    return list({(k.symbol, k.interval, k.open_time): k for k in klines}.values())


_COPY_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


_COPY_CHUNK_ROWS: Final = 1000

_symbol_of: Final = attrgetter("symbol")
_interval_of: Final = attrgetter("interval")
_open_time_of: Final = attrgetter("open_time")
_tzinfo_of: Final = attrgetter("tzinfo")
_microsecond_of: Final = attrgetter("microsecond")
_time_of_day_of: Final = attrgetter("hour", "minute", "second")
# Texts of the days and times of day seen lately (klines are interval-aligned,
# so a few thousand at most); cleared when they grow past this.
_TIME_TEXT_CACHE_MAX: Final = 4096
_day_text: dict[int, str] = {}
_time_of_day_text: dict[tuple[int, int, int], str] = {}
_decimal_fields: Final = tuple(
    attrgetter(name) for name in ("open", "high", "low", "close", "volume")
)


async def _copy_chunks(klines: Sequence[Kline]) -> AsyncIterator[bytes]:
    """Encode a batch for COPY chunk by chunk.

    NB: the server ingests one chunk while the next is encoded here, instead
    of idling until the whole batch is encoded.
    """
    for start in range(0, len(klines), _COPY_CHUNK_ROWS):
        yield _copy_text(klines[start : start + _COPY_CHUNK_ROWS])


def _copy_symbols(klines: Sequence[Kline]) -> Iterable[str]:
    """Return the symbol column, escaped for COPY only when a symbol needs it."""
    symbols = list(map(_symbol_of, klines))
    escaped = {symbol: symbol.translate(_COPY_ESCAPES) for symbol in set(symbols)}
    if all(symbol == text for symbol, text in escaped.items()):
        return symbols
    return map(escaped.__getitem__, symbols)


def _copy_times(klines: Sequence[Kline]) -> Iterable[str]:
    """Return the ``open_time`` column as ``datetime.isoformat`` writes it, cheaply.

    ``isoformat`` is the dearest step of the encoding (about 1 µs a row).
    Kline times are whole UTC seconds on an interval grid, so the same days
    and times of day recur: the text is put together from the cached text of
    the day and of the time of day. Any other batch (another zone,
    microseconds, naive) takes ``isoformat`` itself.

    NB: the caches are plain module dicts, filled and read without awaiting,
    so tasks of one event loop cannot interleave in them.
    """
    times = list(map(_open_time_of, klines))
    if any(map(_microsecond_of, times)) or any(tz is not UTC for tz in set(map(_tzinfo_of, times))):
        return map(datetime.isoformat, times)
    days = list(map(datetime.toordinal, times))
    times_of_day = list(map(_time_of_day_of, times))
    if len(_day_text) > _TIME_TEXT_CACHE_MAX or len(_time_of_day_text) > _TIME_TEXT_CACHE_MAX:
        _day_text.clear()
        _time_of_day_text.clear()
    for day in set(days).difference(_day_text):
        _day_text[day] = f"{date.fromordinal(day).isoformat()}T"
    for hms in set(times_of_day).difference(_time_of_day_text):
        hour, minute, second = hms
        _time_of_day_text[hms] = f"{hour:02d}:{minute:02d}:{second:02d}+00:00"
    return map(
        add, map(_day_text.__getitem__, days), map(_time_of_day_text.__getitem__, times_of_day)
    )


def _copy_text(klines: Sequence[Kline]) -> bytes:
    """Encode klines in COPY's text format.

    Why column by column: every step is a C-level ``map`` (attribute getter,
    ``str``, ``datetime.isoformat``), then ``zip`` and ``str.join`` build the
    lines, so no Python bytecode runs per row; that is about a quarter cheaper
    than one f-string per row (bench/storage_ingest.py, ``encode_cpu_s``).

    NB: text COPY with ``str(Decimal)`` is several times faster than asyncpg's
    binary encoding of ``numeric``, and exact (PostgreSQL reads the exponent
    form ``1E+2`` too). ``Interval`` is a ``StrEnum``, so it joins as its
    value. Only the symbol is free text, so only it is escaped.
    """
    columns = (
        _copy_symbols(klines),
        map(_interval_of, klines),
        _copy_times(klines),
        *(map(str, map(field, klines)) for field in _decimal_fields),
    )
    lines = "\n".join(map("\t".join, zip(*columns, strict=True)))
    return (lines + "\n").encode()


class PostgresStore:
    """A ``Store`` on PostgreSQL (TimescaleDB when the server offers it).

    Build it with ``await PostgresStore.connect(url)``: that opens the pool,
    applies migrations and sets up the klines policies.
    """

    def __init__(self, pool: asyncpg.Pool, *, retention: RetentionStatus) -> None:
        self._pool = pool
        self._retention = retention

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        min_size: int | None = None,
        max_size: int = 10,
        policy: KlinesPolicy | None = None,
        command_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
    ) -> PostgresStore:
        """Open a pool on ``url``, migrate the schema and apply the klines policies.

        The pool opens ``min_size`` connections at once (default: all
        ``max_size``), so no request pays for a new connection's handshake.
        Raises ``StorageUnavailableError`` when the server cannot be reached.
        """
        policy = policy or KlinesPolicy()
        with _unavailable_as_storage_error():
            # A connection of its own for the schema work: the session advisory
            # lock it takes can never leak into the pool, even if cancelled.
            admin = await asyncpg.connect(url, timeout=connect_timeout_s)
            try:
                async with migration_lock(admin):
                    await migrate(admin)
                    retention = await apply_timescale(admin, policy)
            finally:
                await admin.close()
            pool = await asyncpg.create_pool(
                url,
                min_size=max_size if min_size is None else min_size,
                max_size=max_size,
                command_timeout=command_timeout_s,
                timeout=connect_timeout_s,
                reset=_keep_session,
            )
        logger.info("storage: postgresql ready; %s", retention.summary)
        return cls(pool, retention=retention)

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[PgConnection]:
        """Check a connection out; on an outage, have the pool replace every idle one.

        NB: a server restart or a network cut kills all pooled connections at
        once, but each one only shows it when next used: without the expiry,
        every one of them would fail one more request after the server is back.
        """
        try:
            with _unavailable_as_storage_error():
                async with self._pool.acquire() as conn:
                    yield conn
        except StorageUnavailableError as exc:
            if isinstance(exc.__cause__, _CONNECTION_LOST):
                await self._pool.expire_connections()
            raise

    async def insert_klines(self, klines: Iterable[Kline]) -> int:
        batch = klines if isinstance(klines, Sequence) else list(klines)
        if not batch:
            return 0
        async with self._conn() as conn:
            if len(batch) < COPY_THRESHOLD:
                unique = _dedupe(batch)
                await self._upsert_unnest(conn, unique)
                return len(unique)
            return await self._upsert_copy(conn, batch)

    @staticmethod
    async def _upsert_unnest(conn: PgConnection, klines: Sequence[Kline]) -> None:
        """Upsert a small batch in one multi-row statement (one round trip)."""
        await conn.execute(
            _UPSERT_FROM_UNNEST,
            [k.symbol for k in klines],
            [k.interval.value for k in klines],
            [k.open_time for k in klines],
            [k.open for k in klines],
            [k.high for k in klines],
            [k.low for k in klines],
            [k.close for k in klines],
            [k.volume for k in klines],
        )

    @staticmethod
    async def _upsert_copy(conn: PgConnection, klines: Sequence[Kline]) -> int:
        """Upsert a large batch with COPY; return how many distinct klines it wrote.

        Appending new candles is the common case, so COPY goes straight into
        ``klines`` first, as one autocommitted statement: one round trip, no
        BEGIN/SAVEPOINT/RELEASE/COMMIT around it, and all or nothing like any
        statement. If any row already exists, or a key repeats within the
        batch (unique violation), nothing of it was written and the
        deduplicated batch goes through a staging table and
        ``INSERT .. ON CONFLICT DO UPDATE`` in one transaction instead.
        """
        try:
            await conn.copy_to_table(
                "klines", source=_copy_chunks(klines), columns=_KLINE_COLUMNS, format="text"
            )
        except asyncpg.UniqueViolationError:
            pass  # some rows exist: upsert below
        else:
            return len(klines)
        unique = _dedupe(klines)
        async with conn.transaction():
            await conn.execute(_CREATE_STAGE)
            await conn.copy_to_table(
                _STAGE_TABLE, source=_copy_chunks(unique), columns=_KLINE_COLUMNS, format="text"
            )
            await conn.execute(_UPSERT_FROM_STAGE)
        return len(unique)

    async def query_klines(
        self,
        *,
        symbol: str,
        interval: Interval,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[Kline]:
        if limit <= 0:
            return []
        async with self._conn() as conn:
            rows = await conn.fetch(
                """
                SELECT * FROM (
                    SELECT symbol, interval, open_time, open, high, low, close, volume
                    FROM klines
                    WHERE symbol = $1 AND interval = $2
                      AND ($3::timestamptz IS NULL OR open_time >= $3)
                      AND ($4::timestamptz IS NULL OR open_time < $4)
                    ORDER BY open_time DESC
                    LIMIT $5
                ) newest ORDER BY open_time
                """,
                symbol,
                interval.value,
                start,
                end,
                limit,
            )
        return [_kline(row) for row in rows]

    async def delete_klines_before(self, before: datetime) -> int:
        async with self._conn() as conn:
            status = await conn.execute("DELETE FROM klines WHERE open_time < $1", before)
        return _affected(status)

    async def create_order(self, order: Order) -> tuple[Order, bool]:
        """Insert ``order`` unless its client order id exists; one round trip when new.

        The new-order path is a single autocommitted statement, prepared once
        per connection (asyncpg's statement cache), with nothing to send back
        but its command tag. The stored row equals ``order`` (every column is
        written from it; ``numeric`` and microsecond timestamps are exact), so
        decoding a ``RETURNING`` row would only cost client CPU on the hot
        path (about a third of the store's CPU per order, measured). A
        resubmission costs a second round trip to read the first order.
        """
        async with self._conn() as conn:
            try:
                status = await conn.execute(INSERT_ORDER, *insert_order_args(order))
            except asyncpg.UniqueViolationError as exc:
                raise ConflictError(
                    f"order id {order.id} already used by another client order id"
                ) from exc
            if _affected(status) == 1:
                return order, True
            # NB: ON CONFLICT waited for the racing insert to commit; this new
            # statement's snapshot sees it.
            existing = await conn.fetchrow(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE client_order_id = $1",  # noqa: S608
                order.client_order_id,
            )
        if (
            existing is None
        ):  # pragma: no cover - a row that conflicted cannot vanish unless deleted
            raise ConflictError(f"order {order.client_order_id} conflicted but is gone")
        return _order(existing), False

    async def get_order(self, order_id: UUID) -> Order | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = $1",  # noqa: S608
                order_id,
            )
        return None if row is None else _order(row)

    async def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE client_order_id = $1",  # noqa: S608
                client_order_id,
            )
        return None if row is None else _order(row)

    async def list_orders(
        self,
        *,
        symbol: str | None = None,
        status: OrderStatus | None = None,
        limit: int = 100,
    ) -> list[Order]:
        if limit <= 0:
            return []
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"""
                SELECT {_ORDER_COLUMNS} FROM orders
                WHERE ($1::text IS NULL OR symbol = $1) AND ($2::text IS NULL OR status = $2)
                ORDER BY created_at DESC, id DESC
                LIMIT $3
                """,  # noqa: S608
                symbol,
                None if status is None else status.value,
                limit,
            )
        return [_order(row) for row in rows]

    async def update_order(self, order: Order) -> Order:
        """Write ``order``'s status, reject reason and update time; return the stored order.

        NB: the filled quantity and average price are left alone: only
        ``record_fill`` moves them, under the order's row lock, so a status
        written from an older copy of the order cannot undo a fill.
        """
        async with self._conn() as conn:
            row = await conn.fetchrow(
                f"""
                UPDATE orders SET status = $3, reject_reason = $4, updated_at = $5
                WHERE id = $1 AND client_order_id = $2
                RETURNING {_ORDER_COLUMNS}
                """,  # noqa: S608
                order.id,
                order.client_order_id,
                order.status.value,
                order.reject_reason,
                order.updated_at,
            )
            if row is not None:
                return _order(row)
            stored = await conn.fetchval(
                "SELECT client_order_id FROM orders WHERE id = $1", order.id
            )
        if stored is None:
            raise NotFoundError(f"order {order.id} not found")
        raise ConflictError(f"order {order.id} has client id {stored}")

    async def record_fill(self, *, fill: Fill, order: Order) -> RecordedFill:
        """Settle ``fill`` against the rows as stored, under locks, in one transaction.

        Five round trips: BEGIN, the symbol's lock, one read (the order row,
        locked, its position and whether the fill is known), one write (fill,
        order and position in one statement), COMMIT.

        NB: the lock is a transaction advisory lock on the symbol because a
        row lock cannot cover a position that does not exist yet; it must be
        its own statement, so the read after it takes a snapshot that sees
        the fill committed by the previous holder. ``FOR UPDATE`` on the order
        also makes ``update_order`` (a cancel) wait for the fill's commit.
        """
        async with self._conn() as conn, conn.transaction():
            await conn.execute(_LOCK_SYMBOL, fill.symbol)
            row = await conn.fetchrow(_READ_FOR_FILL, order.id, fill.symbol, fill.id)
            if row is None:
                raise NotFoundError(f"order {order.id} not found")
            stored = _order(row)
            if stored.client_order_id != order.client_order_id:
                raise ConflictError(f"order {order.id} has client id {stored.client_order_id}")
            position = (
                None
                if row["position_updated_at"] is None
                else Position(
                    symbol=fill.symbol,
                    quantity=row["position_quantity"],
                    average_price=row["position_average_price"],
                    realized_pnl=row["position_realized_pnl"],
                    updated_at=row["position_updated_at"],
                )
            )
            if row["fill_recorded"]:
                return RecordedFill(
                    order=stored,
                    position=position or Position.flat(fill.symbol, at=fill.ts),
                    recorded=False,
                )
            try:
                settled = settle(fill, order=stored, position=position)
            except ValueError as exc:
                raise ConflictError(str(exc)) from exc
            after, moved = settled.order, settled.position
            try:
                await conn.execute(
                    _WRITE_FILL,
                    fill.id,
                    fill.order_id,
                    fill.symbol,
                    fill.side.value,
                    fill.quantity,
                    fill.price,
                    fill.fee,
                    fill.ts,
                    settled.realized_pnl,
                    after.status.value,
                    after.filled_quantity,
                    after.average_fill_price,
                    after.updated_at,
                    moved.quantity,
                    moved.average_price,
                    moved.realized_pnl,
                    moved.updated_at,
                )
            except asyncpg.UniqueViolationError as exc:
                raise ConflictError(f"fill id {fill.id} already used by another fill") from exc
            except asyncpg.CheckViolationError as exc:
                raise ConflictError(f"fill {fill.id} rejected by the schema: {exc}") from exc
        return RecordedFill(order=after, position=moved, recorded=True)

    async def list_fills(
        self, *, order_id: UUID | None = None, symbol: str | None = None, limit: int = 100
    ) -> list[Fill]:
        if limit <= 0:
            return []
        async with self._conn() as conn:
            rows = await conn.fetch(
                f"""
                SELECT {_FILL_COLUMNS} FROM fills
                WHERE ($1::uuid IS NULL OR order_id = $1) AND ($2::text IS NULL OR symbol = $2)
                ORDER BY ts DESC, id DESC
                LIMIT $3
                """,  # noqa: S608
                order_id,
                symbol,
                limit,
            )
        return [_fill(row) for row in rows]

    async def list_positions(self) -> list[Position]:
        async with self._conn() as conn:
            rows = await conn.fetch("SELECT * FROM positions ORDER BY symbol")
        return [_position(row) for row in rows]

    async def get_position(self, symbol: str) -> Position | None:
        async with self._conn() as conn:
            row = await conn.fetchrow("SELECT * FROM positions WHERE symbol = $1", symbol)
        return None if row is None else _position(row)

    async def count_open_orders(self, symbol: str | None = None) -> int:
        async with self._conn() as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM orders "
                "WHERE status = ANY($1::text[]) AND ($2::text IS NULL OR symbol = $2)",
                list(_OPEN_STATUSES),
                symbol,
            )
        return count

    async def realized_pnl_since(self, since: datetime) -> Decimal:
        async with self._conn() as conn:
            total: Decimal = await conn.fetchval(
                "SELECT COALESCE(sum(realized_pnl), 0) FROM fills WHERE ts >= $1", since
            )
        return total

    async def portfolio_state(
        self, *, realized_since: datetime, pending: Sequence[UUID] = ()
    ) -> PortfolioState:
        """Read the risk inputs in one statement: one snapshot, one round trip.

        NB: every position row carries the two aggregates; with no position
        the LEFT JOIN still yields one row, its position columns NULL.
        """
        async with self._conn() as conn:
            rows = await conn.fetch(
                _PORTFOLIO_STATE, list(_OPEN_STATUSES), realized_since, list(pending)
            )
        first = rows[0]
        return PortfolioState(
            positions=tuple(_position(row) for row in rows if row["symbol"] is not None),
            open_orders=first["open_orders"],
            realized_pnl=first["realized"],
            seen=frozenset(first["seen"] or ()),
        )

    async def retention_status(self) -> RetentionStatus:
        if self._retention.backend != "timescaledb":
            return self._retention
        async with self._conn() as conn:
            jobs = await policy_jobs(conn)
        self._retention = RetentionStatus(
            backend=self._retention.backend,
            engine_retention=False,
            retention_days=self._retention.retention_days,
            compress_after_days=self._retention.compress_after_days,
            jobs=tuple(jobs),
        )
        return self._retention

    async def ping(self) -> None:
        async with self._conn() as conn:
            await conn.fetchval("SELECT 1")

    async def close(self) -> None:
        """Close the pool, waiting briefly for queries in flight, then forcing it."""
        try:
            await asyncio.wait_for(self._pool.close(), timeout=10)
        except TimeoutError:
            self._pool.terminate()
