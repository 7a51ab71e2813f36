"""Orders through the API on PostgreSQL: committed first, idempotent, cancellable, validated."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
from fastapi import FastAPI

from support.servers import RedisServer
from unit.workload.api_support import API_KEY, eventually

KEY = {"X-API-Key": API_KEY}


def order(client_order_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_order_id": client_order_id,
        "symbol": "BTCUSDT",
        "side": "buy",
        "quantity": "0.02",
    }
    body.update(overrides)
    return body


async def test_an_order_is_stored_filled_and_moves_the_position(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/v1/orders", json=order("pg-1"), headers=KEY)
    assert created.status_code == 201
    order_id = created.json()["id"]
    filled = await eventually(
        lambda: client.get(f"/api/v1/orders/{order_id}"),
        until=lambda r: r.json()["status"] == "filled",
    )
    assert filled.json()["filled_quantity"] == "0.02"
    listed = (await client.get("/api/v1/orders", params={"symbol": "BTCUSDT"})).json()
    assert [o["id"] for o in listed] == [order_id]
    positions = (await client.get("/api/v1/positions")).json()
    assert [(p["symbol"], p["quantity"]) for p in positions] == [("BTCUSDT", "0.02")]


async def test_concurrent_resubmissions_make_exactly_one_order(
    client: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(
        *(client.post("/api/v1/orders", json=order("race"), headers=KEY) for _ in range(10))
    )
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    order_id = responses[0].json()["id"]
    await eventually(
        lambda: client.get(f"/api/v1/orders/{order_id}"),
        until=lambda r: r.json()["status"] == "filled",
    )
    fills = (await client.get("/api/v1/fills", params={"order_id": order_id})).json()
    assert len(fills) == 1


async def test_bad_requests_change_nothing(client: httpx.AsyncClient) -> None:
    bad = [
        order("b1", quantity="0"),
        order("b2", symbol="NOPEUSDT"),
        order("b3", type="limit"),
        {"client_order_id": "b4"},
    ]
    for body in bad:
        response = await client.post("/api/v1/orders", json=body, headers=KEY)
        assert response.status_code == 422, body
    unauthorized = await client.post("/api/v1/orders", json=order("b5"))
    assert unauthorized.status_code == 401
    assert (await client.get("/api/v1/orders")).json() == []
    assert (await client.get("/api/v1/positions")).json() == []


async def test_a_risk_rejection_is_stored_rejected_with_its_reason(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/v1/orders", json=order("huge", quantity="5"), headers=KEY)
    assert response.status_code == 422
    assert response.json()["code"] == "max_order_notional"
    stored = (await client.get("/api/v1/orders", params={"status": "rejected"})).json()
    assert len(stored) == 1
    assert stored[0]["reject_reason"].startswith("max_order_notional: ")


async def test_cancel_a_resting_order_and_not_a_filled_one(client: httpx.AsyncClient) -> None:
    resting = (
        await client.post(
            "/api/v1/orders",
            json=order("limit-1", type="limit", limit_price="1000"),
            headers=KEY,
        )
    ).json()
    await eventually(
        lambda: client.get(f"/api/v1/orders/{resting['id']}"),
        until=lambda r: r.json()["status"] == "open",
    )
    cancelled = await client.delete(f"/api/v1/orders/{resting['id']}", headers=KEY)
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")

    market = (await client.post("/api/v1/orders", json=order("mkt-1"), headers=KEY)).json()
    await eventually(
        lambda: client.get(f"/api/v1/orders/{market['id']}"),
        until=lambda r: r.json()["status"] == "filled",
    )
    refused = await client.post(f"/api/v1/orders/{market['id']}/cancel", headers=KEY)
    assert refused.status_code == 409
    assert "filled" in refused.json()["detail"]


async def test_an_order_taken_while_redis_is_down_is_committed_and_filled_exactly_once(
    client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    redis_server.stop()
    created = await client.post("/api/v1/orders", json=order("during-outage"), headers=KEY)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    redis_server.start()
    filled = await eventually(
        lambda: client.get(f"/api/v1/orders/{order_id}"),
        until=lambda r: r.json()["status"] == "filled",
        timeout=20,
    )
    assert filled.json()["filled_quantity"] == "0.02"
    fills = (await client.get("/api/v1/fills", params={"order_id": order_id})).json()
    assert len(fills) == 1


async def test_concurrent_orders_never_exceed_max_open_orders(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    app.state.runtime.risk.limits = replace(app.state.runtime.risk.limits, max_open_orders=5)
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/orders",
                json=order(f"burst-{i}", type="limit", limit_price="1000"),
                headers=KEY,
            )
            for i in range(20)
        )
    )
    refusals = [r.text for r in responses if r.status_code != 201][:3]
    assert sorted(r.status_code for r in responses) == [201] * 5 + [422] * 15, refusals
    open_orders = (await client.get("/api/v1/risk")).json()["open_orders"]
    assert open_orders == 5
