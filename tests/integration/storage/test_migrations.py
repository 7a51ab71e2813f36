"""Schema migrations on a real PostgreSQL: once, in order, safe when replicas race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from support.servers import PostgresServer
from trader_api.storage import MigrationError, StorageUnavailableError
from trader_api.storage.migrate import Migration, load_migrations, migrate, schema_version
from trader_api.storage.postgres import PostgresStore


@pytest.fixture
async def conn(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgres_url)
    yield connection
    await connection.close()


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


async def test_migrate_creates_the_seed_tables_and_records_versions(
    conn: asyncpg.Connection,
) -> None:
    applied = await migrate(conn)
    assert [m.version for m in applied] == [m.version for m in load_migrations()]
    assert {"klines", "orders", "fills", "positions", "schema_migrations"} <= await _tables(conn)
    assert await schema_version(conn) == len(load_migrations())


async def test_migrate_twice_applies_nothing_the_second_time(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    assert await migrate(conn) == []
    assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(load_migrations())


async def test_replicas_starting_at_once_migrate_exactly_once(postgres_url: str) -> None:
    connections = [await asyncpg.connect(postgres_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in connections))
    finally:
        for c in connections:
            await c.close()
    applied_counts = sorted(len(r) for r in results)
    assert applied_counts == [0, 0, 0, len(load_migrations())]


async def test_stores_opening_at_once_all_start(postgres_url: str) -> None:
    stores = await asyncio.gather(*(PostgresStore.connect(postgres_url) for _ in range(3)))
    for store in stores:
        await store.ping()
        await store.close()


async def test_an_edited_applied_migration_is_refused(conn: asyncpg.Connection) -> None:
    await migrate(conn)
    first, *rest = load_migrations()
    edited = Migration(first.version, first.name, first.sql + "\n-- edited later\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(conn, [edited, *rest])


async def test_a_failing_migration_leaves_nothing_half_applied(conn: asyncpg.Connection) -> None:
    migrations = load_migrations()
    broken = Migration(len(migrations) + 1, "broken", "CREATE TABLE half_done (v int); SELECT 1/0;")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(conn, [*migrations, broken])
    assert "half_done" not in await _tables(conn)
    assert await schema_version(conn) == len(migrations)
    # The advisory lock was released: another migration run proceeds at once.
    assert await asyncio.wait_for(migrate(conn), timeout=5) == []


async def test_connecting_to_a_stopped_server_is_unavailable(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    postgres_server.stop()
    with pytest.raises(StorageUnavailableError):
        await PostgresStore.connect(postgres_url)


async def test_a_store_reports_outage_and_recovery(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = await PostgresStore.connect(postgres_url)
    try:
        postgres_server.stop()
        with pytest.raises(StorageUnavailableError):
            await store.ping()
        postgres_server.start()
        # Every pooled connection died with the server: none may fail a call now.
        for _ in range(3):
            await asyncio.gather(*(store.ping() for _ in range(10)))
    finally:
        await store.close()
