"""The engine as the service runs it: klines -> strategies -> risk -> paper fills; retention."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from trader_api.api.app import create_app
from trader_api.config import Settings
from trader_api.domain import Interval, Kline
from trader_api.marketdata import KLINE_CSV_COLUMNS
from trader_api.services.runtime import Runtime
from trader_api.strategy import StrategyConfig
from unit.workload.api_support import API_KEY, eventually, scripted_market

# Recent enough that the engine's klines retention (90 days) keeps them.
START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
ZIGZAG = [10, 10, 10, 10, 12, 14, 16, 14, 12, 10, 8, 10, 12, 14, 16]


def replayed_klines() -> list[Kline]:
    return [
        Kline(
            symbol="BTCUSDT",
            interval=Interval.M1,
            open_time=START + timedelta(minutes=i),
            open=Decimal(close),
            high=Decimal(close),
            low=Decimal(close),
            close=Decimal(close),
            volume=Decimal(1),
        )
        for i, close in enumerate(ZIGZAG)
    ]


SMA = StrategyConfig(
    name="t-sma",
    kind="sma_crossover",
    symbol="BTCUSDT",
    interval=Interval.M1,
    params={"fast": 2, "slow": 3, "quantity": "0.5"},
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        api_key=SecretStr(API_KEY), strategies=(SMA,), symbols=("BTCUSDT",), pod_name="engine"
    )
    runtime = await Runtime.from_settings(settings, market=scripted_market(replayed_klines()))
    app = create_app(runtime)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine") as http,
    ):
        yield http


async def test_replayed_klines_become_signals_orders_and_fills(client: httpx.AsyncClient) -> None:
    orders = await eventually(
        lambda: _strategy_orders(client),
        until=lambda found: len(found) >= 2 and all(o["status"] == "filled" for o in found),
    )
    assert {o["side"] for o in orders} == {"buy", "sell"}
    assert all(o["strategy"] == "t-sma" for o in orders)
    klines = (await client.get("/api/v1/klines", params={"symbol": "BTCUSDT", "limit": 100})).json()
    assert [k["close"] for k in klines] == [str(c) for c in ZIGZAG]
    metrics = (await client.get("/metrics")).text
    assert 'signals_total{strategy="t-sma"}' in metrics
    assert 'fills_total{side="buy"}' in metrics


async def _strategy_orders(client: httpx.AsyncClient) -> list[dict[str, object]]:
    found: list[dict[str, object]] = (await client.get("/api/v1/orders")).json()
    return found


async def test_the_engine_drops_klines_older_than_the_retention() -> None:
    settings = Settings(pod_name="retention", klines_retention_days=30)
    runtime = await Runtime.from_settings(settings, market=scripted_market())
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    old, recent = (
        Kline("BTCUSDT", Interval.M1, at, *(Decimal(1),) * 5)
        for at in (now - timedelta(days=31), now - timedelta(days=29))
    )
    await runtime.store.insert_klines([old, recent])
    app = create_app(runtime)
    async with app.router.lifespan_context(app):
        remaining = await eventually(
            lambda: runtime.store.query_klines(symbol="BTCUSDT", interval=Interval.M1),
            until=lambda klines: len(klines) == 1,
        )
    assert remaining == [recent]


async def test_a_kline_csv_replays_through_the_real_feed(tmp_path: Path) -> None:
    csv_path = tmp_path / "klines.csv"
    rows = [",".join(KLINE_CSV_COLUMNS)] + [
        f"BTCUSDT,1m,{k.open_time.isoformat()},{k.open},{k.high},{k.low},{k.close},{k.volume}"
        for k in replayed_klines()
    ]
    csv_path.write_text("\n".join(rows) + "\n")
    settings = Settings(
        api_key=SecretStr(API_KEY),
        strategies=(SMA,),
        symbols=("BTCUSDT",),
        market_replay_csv=csv_path,
        market_speed=60_000,  # a minute of klines per millisecond
        pod_name="replay",
    )
    runtime = await Runtime.from_settings(settings)
    app = create_app(runtime)
    async with app.router.lifespan_context(app):
        klines = await eventually(
            lambda: runtime.store.query_klines(symbol="BTCUSDT", interval=Interval.M1),
            until=lambda found: len(found) == len(ZIGZAG),
        )
        orders = await eventually(
            runtime.store.list_orders,
            until=lambda found: len(found) >= 2 and all(o.status.is_terminal for o in found),
        )
    assert [k.close for k in klines] == [Decimal(c) for c in ZIGZAG]
    assert {o.strategy for o in orders} == {"t-sma"}
