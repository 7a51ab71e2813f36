"""Both stores answer extreme but valid datetimes the same (issue 14): 200, or 422 with a reason."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from trader_api.config import Settings
from unit.workload.api_support import API_KEY, api_client, serving

RANGES = [
    ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"),
    ("0001-01-01T00:00:00+05:00", "2025-01-01T00:00:00Z"),
    ("2025-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00"),
    ("0001-01-01T23:59:59+23:59", "9999-12-31T00:00:00-23:59"),
]


@pytest.fixture
async def embedded_client() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(api_key=SecretStr(API_KEY), pod_name="edge-embedded")
    async with serving(settings) as app, api_client(app, client_ip="10.0.0.5") as http:
        yield http


async def answers(client: httpx.AsyncClient) -> list[tuple[int, str]]:
    found = []
    for start, end in RANGES:
        response = await client.get(
            "/api/v1/klines", params={"symbol": "BTCUSDT", "start": start, "end": end}
        )
        found.append((response.status_code, response.text))
    return found


async def test_postgres_and_the_embedded_store_agree_on_extreme_datetimes(
    client: httpx.AsyncClient, embedded_client: httpx.AsyncClient
) -> None:
    on_postgres = await answers(client)
    assert on_postgres == await answers(embedded_client)
    assert [status for status, _ in on_postgres] == [200, 422, 422, 200]
    assert all("out of range" in text for status, text in on_postgres if status == 422)
