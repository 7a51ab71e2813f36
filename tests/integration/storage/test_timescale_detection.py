"""TimescaleDB detection on plain PostgreSQL, and the Timescale SQL as the server parses it."""

from __future__ import annotations

import asyncpg
import pytest

from trader_api.storage.migrate import migrate
from trader_api.storage.timescale import (
    InstalledPolicies,
    KlinesPolicy,
    apply_timescale,
    hypertable_statements,
    policy_statements,
    timescale_available,
)


async def test_plain_postgresql_reports_engine_retention(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await migrate(conn)
        assert not await timescale_available(conn)
        status = await apply_timescale(conn, KlinesPolicy(retention_days=30))
    finally:
        await conn.close()
    assert status.backend == "postgresql"
    assert status.engine_retention
    assert status.retention_days == 30
    assert status.summary == (
        "timescaledb: unavailable, engine retention active (extension not installed on the server)"
    )


async def test_every_timescale_statement_is_valid_sql(postgres_url: str) -> None:
    """Without the extension, each statement must fail for a missing object, never for syntax."""
    statements = [
        *hypertable_statements(KlinesPolicy())[1:],  # the CREATE EXTENSION itself needs it
        *policy_statements(KlinesPolicy(), InstalledPolicies(1, 1)),
    ]
    conn = await asyncpg.connect(postgres_url)
    try:
        await migrate(conn)
        for sql, args in statements:
            with pytest.raises(asyncpg.PostgresError) as caught:
                await conn.execute(sql, *args)
            assert not isinstance(caught.value, asyncpg.PostgresSyntaxError), sql
            assert isinstance(
                caught.value,
                asyncpg.UndefinedFunctionError | asyncpg.InvalidParameterValueError,
            ), f"{sql}: {caught.value!r}"
    finally:
        await conn.close()
