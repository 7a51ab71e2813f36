"""Which asyncpg failures mean "the database is unavailable" (503), which are bugs (500),
and which make the pool replace its idle connections.

NB: a fake pool, because asyncpg's client-side protocol failures cannot be
provoked on demand against a real server; the real drop mid-query is in
tests/integration/api/test_dropped_connection.py.
"""

from __future__ import annotations

from typing import cast

import asyncpg
import pytest

from trader_api.storage import StorageUnavailableError
from trader_api.storage.postgres import PostgresStore
from trader_api.storage.protocols import RetentionStatus


class FakeFailingPool:
    """A pool whose every checkout fails with ``error``."""

    def __init__(self, error: BaseException) -> None:
        self._error = error
        self.expired = 0

    async def expire_connections(self) -> None:
        self.expired += 1

    def acquire(self) -> FakeFailingPool:
        return self

    async def __aenter__(self) -> asyncpg.Connection:
        raise self._error

    async def __aexit__(self, *_: object) -> None:
        return None


def _store(pool: FakeFailingPool) -> PostgresStore:
    retention = RetentionStatus(
        backend="postgresql", engine_retention=True, retention_days=90, compress_after_days=None
    )
    return PostgresStore(cast("asyncpg.Pool", pool), retention=retention)


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError("unexpected message from the server"),
        asyncpg.exceptions.ProtocolError("protocol state broken"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionResetError("reset by peer"),
        TimeoutError(),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_lost_or_broken_connection_is_storage_unavailable(error: BaseException) -> None:
    with pytest.raises(StorageUnavailableError, match="database unreachable"):
        await _store(FakeFailingPool(error)).ping()


@pytest.mark.parametrize(
    "error",
    [asyncpg.DataError("invalid input"), asyncpg.UndefinedTableError("no table"), ValueError()],
    ids=lambda error: type(error).__name__,
)
async def test_a_bad_query_or_a_bug_is_not_called_an_outage(error: BaseException) -> None:
    with pytest.raises(type(error)):
        await _store(FakeFailingPool(error)).ping()


@pytest.mark.parametrize(
    ("error", "expired"),
    [
        (asyncpg.InternalClientError("cannot switch to state 11"), 1),
        (asyncpg.ConnectionDoesNotExistError("closed in the middle of operation"), 1),
        (asyncpg.AdminShutdownError("terminating connection"), 1),
        (ConnectionResetError("reset by peer"), 1),
        (TimeoutError(), 0),  # a busy server: reconnecting everything would add load
        (asyncpg.DataError("invalid input"), 0),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
async def test_a_lost_connection_makes_the_pool_replace_its_idle_ones(
    error: BaseException, expired: int
) -> None:
    """After a restart every pooled connection is dead; none may fail one more request."""
    pool = FakeFailingPool(error)
    with pytest.raises(Exception):  # noqa: B017, PT011 - which one is the tests above
        await _store(pool).ping()
    assert pool.expired == expired
