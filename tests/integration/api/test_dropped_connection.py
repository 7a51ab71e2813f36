"""A database connection dropped under a request: 503 with Retry-After (never a 500), then back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from support.servers import PostgresServer, SeverableProxy
from trader_api.config import Settings
from unit.workload.api_support import API_KEY, api_client, eventually, serving

# Only list_orders sends this; the engine's own reads of orders do not.
_LISTING_QUERY = "%ORDER BY created_at DESC, id DESC%"


@pytest.fixture
async def proxy(postgres_server: PostgresServer) -> AsyncIterator[SeverableProxy]:
    severable = SeverableProxy(target_port=postgres_server.port)
    await severable.start()
    yield severable
    await severable.close()


@pytest.fixture
async def client_via_proxy(
    proxy: SeverableProxy, postgres_server: PostgresServer, postgres_database: str, redis_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    direct = postgres_server.url(postgres_database)
    settings = Settings(
        database_url=SecretStr(direct.replace(f":{postgres_server.port}/", f":{proxy.port}/")),
        redis_url=SecretStr(redis_url),
        api_key=SecretStr(API_KEY),
        pod_name="dropped-connection",
        database_pool_size=3,
    )
    async with (
        serving(settings) as application,
        api_client(application, client_ip="10.0.0.9") as http,
    ):
        yield http


async def test_a_connection_dropped_mid_query_is_503_and_the_next_request_reconnects(
    client_via_proxy: httpx.AsyncClient, proxy: SeverableProxy, postgres_url: str
) -> None:
    assert (await client_via_proxy.get("/api/v1/orders")).status_code == 200
    admin = await asyncpg.connect(postgres_url)  # straight to the server, not via the proxy
    try:
        # Hold the listing inside the server, so the drop lands mid-query.
        locked = admin.transaction()
        await locked.start()
        await admin.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        listing = asyncio.create_task(client_via_proxy.get("/api/v1/orders"))
        await eventually(
            lambda: admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND query LIKE $1",
                _LISTING_QUERY,
            ),
            until=lambda waiting: waiting >= 1,
        )
        assert proxy.sever() > 0
        dropped = await listing
        await locked.rollback()
    finally:
        await admin.close()

    assert dropped.status_code == 503
    assert dropped.headers["Retry-After"] == "1"
    assert dropped.json()["detail"].startswith("temporarily unavailable: database unreachable")
    assert (await client_via_proxy.get("/api/v1/orders")).status_code == 200
