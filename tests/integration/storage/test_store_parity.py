"""Property: the memory twin answers klines queries exactly as PostgreSQL does."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.trading_data import T0
from trader_api.domain import Interval, Kline
from trader_api.storage import MemoryStore
from trader_api.storage.postgres import PostgresStore

_SYMBOLS = ("BTCUSDT", "ETHUSDT")
_INTERVALS = (Interval.M1, Interval.M5)
_prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**6), places=8)
_times = st.integers(min_value=0, max_value=40).map(lambda m: T0 + timedelta(minutes=m))


@st.composite
def klines(draw: st.DrawFn) -> Kline:
    low = draw(_prices)
    return Kline(
        symbol=draw(st.sampled_from(_SYMBOLS)),
        interval=draw(st.sampled_from(_INTERVALS)),
        open_time=draw(_times),
        open=low,
        high=low + draw(_prices),
        low=low,
        close=low + draw(_prices) / 2,
        volume=draw(_prices),
    )


queries = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(_SYMBOLS),
        "interval": st.sampled_from(_INTERVALS),
        "start": st.none() | _times,
        "end": st.none() | _times,
        "limit": st.integers(min_value=0, max_value=50),
    }
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(st.lists(klines(), max_size=30), max_size=4),
    asked=st.lists(queries, max_size=6),
    cutoff=st.none() | _times,
)
async def test_memory_and_postgres_agree_on_klines(
    postgres_url: str,
    batches: list[list[Kline]],
    asked: list[dict[str, object]],
    cutoff: datetime | None,
) -> None:
    conn = await asyncpg.connect(postgres_url)
    postgres = await PostgresStore.connect(postgres_url, min_size=1, max_size=2)
    memory = MemoryStore()
    try:
        await conn.execute("TRUNCATE klines")
        for batch in batches:
            assert await postgres.insert_klines(batch) == await memory.insert_klines(batch)
        if cutoff is not None:
            deleted = await postgres.delete_klines_before(cutoff)
            assert deleted == await memory.delete_klines_before(cutoff)
        for query in asked:
            expected = await memory.query_klines(**query)  # type: ignore[arg-type]  # drawn from typed strategies
            assert await postgres.query_klines(**query) == expected  # type: ignore[arg-type]  # same
    finally:
        await postgres.close()
        await conn.close()
