"""An order committed on the leader goes straight to its executor, not round the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from trader_api.api.app import create_app
from trader_api.config import Settings
from trader_api.services.events import EXECUTE, Event
from trader_api.services.hub import Listener
from trader_api.services.runtime import Runtime
from unit.workload.api_support import API_KEY, eventually, scripted_market

KEY = {"X-API-Key": API_KEY}


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    settings = Settings(api_key=SecretStr(API_KEY), pod_name="handoff")
    runtime = await Runtime.from_settings(settings, market=scripted_market())
    app = create_app(runtime)
    async with app.router.lifespan_context(app):
        await eventually(
            _nothing, until=lambda _: runtime.engine.running and len(runtime.marks) == 2
        )
        yield runtime


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://trader-api") as client:
        yield client


async def _nothing() -> None:
    return None


def collecting(listener: Listener) -> Callable[[], Awaitable[list[Event]]]:
    """Return a probe that moves the listener's events into one growing list and returns it."""
    seen: list[Event] = []

    async def events() -> list[Event]:
        while not listener.queue.empty():
            seen.append(listener.queue.get_nowait())
        return seen

    return events


def order_statuses(events: list[Event], order_id: str) -> list[str]:
    return [
        e["order"]["status"]
        for e in events
        if e["type"] == "order" and e["order"]["id"] == order_id
    ]


def order_body(client_order_id: str) -> dict[str, Any]:
    return {
        "client_order_id": client_order_id,
        "symbol": "BTCUSDT",
        "side": "buy",
        "type": "market",
        "quantity": "0.01",
    }


async def test_the_leader_executes_its_own_order_without_a_bus_command(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    with runtime.hub.listen() as listener:
        events = collecting(listener)
        created = await http.post("/api/v1/orders", json=order_body("h-1"), headers=KEY)
        assert created.status_code == 201
        order_id = created.json()["id"]
        seen = await eventually(events, until=lambda e: "filled" in order_statuses(e, order_id))
    assert order_statuses(seen, order_id) == ["new", "filled"]  # new went out first
    assert not [e for e in seen if e["type"] == EXECUTE]
    assert runtime.orders.committing == set()


async def test_without_a_local_executor_the_order_is_commanded_over_the_bus(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    executor, runtime.orders.local_executor = runtime.orders.local_executor, None
    try:
        with runtime.hub.listen() as listener:
            events = collecting(listener)
            created = await http.post("/api/v1/orders", json=order_body("h-2"), headers=KEY)
            order_id = created.json()["id"]
            seen = await eventually(events, until=lambda e: "filled" in order_statuses(e, order_id))
    finally:
        runtime.orders.local_executor = executor
    assert [e["order_id"] for e in seen if e["type"] == EXECUTE] == [order_id]
    assert order_statuses(seen, order_id) == ["new", "filled"]


async def test_a_full_executor_queue_falls_back_to_the_bus_command(
    runtime: Runtime, http: httpx.AsyncClient
) -> None:
    executor = runtime.orders.local_executor
    assert executor is not None
    refused: list[str] = []

    def full(order: Any, announced: Any) -> bool:
        refused.append(str(order.id))
        return False

    runtime.orders.local_executor = full
    try:
        with runtime.hub.listen() as listener:
            events = collecting(listener)
            created = await http.post("/api/v1/orders", json=order_body("h-3"), headers=KEY)
            order_id = created.json()["id"]
            seen = await eventually(events, until=lambda e: "filled" in order_statuses(e, order_id))
    finally:
        runtime.orders.local_executor = executor
    assert refused == [order_id]
    kinds = [e["type"] for e in seen if e["type"] in ("order", EXECUTE)]
    assert kinds[:2] == ["order", EXECUTE]  # the command follows the order's new event
