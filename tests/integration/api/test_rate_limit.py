"""Rate limits live in Redis: one client's budget is shared by every replica."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

import httpx
import pytest

from trader_api.api.app import create_app
from trader_api.config import Settings
from trader_api.services.runtime import Runtime
from unit.workload.api_support import scripted_market


async def test_a_client_throttled_on_one_replica_is_throttled_on_the_other(
    service_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trader_api")
    settings = service_settings.model_copy(
        update={"rate_limit_per_second": 0.1, "rate_limit_burst": 3}
    )
    async with AsyncExitStack() as stack:
        clients = []
        apps = []
        for name in ("replica-a", "replica-b"):
            runtime = await Runtime.from_settings(
                settings.model_copy(update={"pod_name": name}), market=scripted_market()
            )
            app = create_app(runtime)
            apps.append(app)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 5555))
            clients.append(
                await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url=f"http://{name}")
                )
            )
        a, b = clients
        statuses = [(await client.get("/api/v1/strategies")).status_code for client in (a, b, a, b)]
        assert statuses == [200, 200, 200, 429]
        another_ip = httpx.ASGITransport(app=apps[1], client=("192.0.2.11", 5555))
        async with httpx.AsyncClient(transport=another_ip, base_url="http://replica-b") as c:
            assert (await c.get("/api/v1/strategies")).status_code == 200
    throttled = [r for r in caplog.records if r.getMessage() == "Rate limit exceeded"]
    assert [r.client_ip for r in throttled] == ["192.0.2.10"]  # type: ignore[attr-defined]  # set via extra=
