"""What only PostgreSQL can show: rows not rewritten, bulk and small paths alike."""

from __future__ import annotations

import asyncpg
import pytest

from support.trading_data import make_klines, with_close
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
