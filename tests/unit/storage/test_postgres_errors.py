"""Which asyncpg failures mean "the database is unavailable" (503) and which are bugs (500).

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

    def acquire(self) -> FakeFailingPool:
        return self

    async def __aenter__(self) -> asyncpg.Connection:
        raise self._error

    async def __aexit__(self, *_: object) -> None:
        return None


def _store(error: BaseException) -> PostgresStore:
    retention = RetentionStatus(
        backend="postgresql", engine_retention=True, retention_days=90, compress_after_days=None
    )
    return PostgresStore(cast("asyncpg.Pool", FakeFailingPool(error)), retention=retention)


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
        await _store(error).ping()


@pytest.mark.parametrize(
    "error",
    [asyncpg.DataError("invalid input"), asyncpg.UndefinedTableError("no table"), ValueError()],
    ids=lambda error: type(error).__name__,
)
async def test_a_bad_query_or_a_bug_is_not_called_an_outage(error: BaseException) -> None:
    with pytest.raises(type(error)):
        await _store(error).ping()
