"""What only PostgreSQL can show: rows not rewritten, bulk and small paths storing the same."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from support.trading_data import T0, make_klines, with_close
from trader_api.config import Settings
from trader_api.domain import Interval, Kline
from trader_api.services.runtime import open_store
from trader_api.storage.postgres import COPY_THRESHOLD, PostgresStore


async def _row_versions(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT open_time::text AS t, xmin::text AS v FROM klines")
    finally:
        await conn.close()
    return {row["t"]: row["v"] for row in rows}


@pytest.mark.parametrize("count", [3, COPY_THRESHOLD * 2], ids=["small-batch", "bulk"])
async def test_resending_identical_klines_rewrites_no_row(postgres_url: str, count: int) -> None:
    store = await PostgresStore.connect(postgres_url)
    try:
        klines = make_klines(count)
        await store.insert_klines(klines)
        before = await _row_versions(postgres_url)

        assert await store.insert_klines(klines) == count
        assert await _row_versions(postgres_url) == before

        changed = [with_close(klines[0], "1.23"), *klines[1:]]
        await store.insert_klines(changed)
        after = await _row_versions(postgres_url)
    finally:
        await store.close()
    rewritten = {t for t in after if after[t] != before[t]}
    assert len(rewritten) == 1


async def test_the_store_opens_its_whole_pool_at_start_up(postgres_url: str) -> None:
    """The first burst of orders must not pay for new connections' handshakes."""
    config = Settings(database_url=SecretStr(postgres_url), database_pool_size=4)
    store = await open_store(config)
    conn = await asyncpg.connect(postgres_url)
    try:
        opened = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
        await store.close()
    assert opened == 4


_decimals = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12
)
_zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)


@st.composite
def _odd_klines(draw: st.DrawFn) -> list[Kline]:
    """Klines with values that stress a text encoding: exponents, long digits, offsets, micros."""
    count = draw(st.integers(min_value=1, max_value=12))
    seconds = st.integers(-(10**9), 10**9)
    offsets = draw(st.lists(seconds, min_size=count, max_size=count, unique=True))
    # Whole UTC seconds (the encoder's cached path) or anything (its fallback).
    whole_utc_seconds = draw(st.booleans())
    rows: list[Kline] = []
    for offset in offsets:
        low, high = sorted([draw(_decimals), draw(_decimals)])
        at = T0 + timedelta(seconds=offset)
        if not whole_utc_seconds:
            at = at.replace(microsecond=draw(st.integers(0, 999_999))).astimezone(draw(_zones))
        rows.append(
            Kline(
                symbol=draw(st.sampled_from(["BTCUSDT", "ODD\\N\tX", "ÉTH\r\n"])),
                interval=draw(st.sampled_from(list(Interval))),
                open_time=at,
                open=draw(_decimals),
                high=high,
                low=low,
                close=draw(_decimals),
                volume=abs(draw(_decimals)),
            )
        )
    return rows


async def _stored(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(
            "SELECT symbol, interval, open_time, open::text, high::text, low::text,"
            " close::text, volume::text FROM klines WHERE symbol <> 'PAD'"
            " ORDER BY symbol, interval, open_time"
        )
    finally:
        await conn.close()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(odd=_odd_klines())
async def test_bulk_copy_stores_exactly_what_the_parameter_path_stores(
    postgres_url: str, odd: list[Kline]
) -> None:
    """The text COPY encoding is indistinguishable from asyncpg's typed parameters."""
    padding = make_klines(COPY_THRESHOLD, symbol="PAD")
    store = await PostgresStore.connect(postgres_url, max_size=2)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("TRUNCATE klines")
        await store.insert_klines([*odd, *padding])  # bulk: COPY
        via_copy = await _stored(postgres_url)
        await conn.execute("TRUNCATE klines")
        await store.insert_klines(odd)  # small: unnest with typed parameters
        via_parameters = await _stored(postgres_url)
    finally:
        await conn.close()
        await store.close()
    assert via_copy == via_parameters
    assert len(via_copy) == len(odd)
