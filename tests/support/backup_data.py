"""Helpers for ``trader-backup`` tests: trading data written through the store, rows to compare."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from support.trading_data import make_fill, make_klines, make_order
from trader_api.domain import Side
from trader_api.storage.postgres import PostgresStore

TABLES = ("klines", "orders", "fills", "positions", "schema_migrations")
_ORDER_BY = {
    "klines": "symbol, interval, open_time",
    "orders": "id",
    "fills": "id",
    "positions": "symbol",
    "schema_migrations": "version",
}


@dataclass
class CliResult:
    code: int
    result: dict[str, Any]
    stdout: str
    stderr: str


Cli = Callable[..., CliResult]


async def write_trading_data(url: str) -> None:
    """Fill klines, orders, fills and positions through the real store."""
    store = await PostgresStore.connect(url)
    try:
        await store.insert_klines(make_klines(300) + make_klines(50, symbol="ETHUSDT"))
        for i in range(6):
            order = make_order(quantity="0.5", side=Side.BUY if i % 2 == 0 else Side.SELL)
            await store.create_order(order)
            fill = make_fill(order, price=f"{42000 + i}.5", fee="0.1")
            await store.record_fill(fill=fill, order=order)
        await store.create_order(make_order(client_order_id="resting", limit_price="40000"))
    finally:
        await store.close()


async def snapshot_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: for row-by-row comparison."""
    conn = await asyncpg.connect(url)
    try:
        return {
            table: [
                tuple(r)
                for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY {_ORDER_BY[table]}")  # noqa: S608
            ]
            for table in TABLES
        }
    finally:
        await conn.close()
