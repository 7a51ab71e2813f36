"""The kill switch and strategy switches outlive a restart and reach replicas started later."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from trader_api.api.app import create_app
from trader_api.config import Settings
from trader_api.services.runtime import Runtime
from unit.workload.api_support import API_KEY, eventually, scripted_market

KEY = {"X-API-Key": API_KEY}


async def test_a_replica_started_later_keeps_the_kill_switch_and_strategy_switches(
    client: httpx.AsyncClient, service_settings: Settings
) -> None:
    engaged = await client.post(
        "/api/v1/risk/kill-switch", json={"engaged": True, "reason": "incident 42"}, headers=KEY
    )
    assert engaged.status_code == 200
    disabled = await client.post("/api/v1/strategies/eth-rsi/disable", headers=KEY)
    assert disabled.status_code == 200

    later = await Runtime.from_settings(
        service_settings.model_copy(update={"pod_name": "restarted"}), market=scripted_market()
    )
    app: FastAPI = create_app(later)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://later") as other:
            risk = (await other.get("/api/v1/risk")).json()
            assert risk["kill_switch"]["engaged"] is True
            assert risk["kill_switch"]["reason"] == "incident 42"
            strategies = {
                s["name"]: s["enabled"] for s in (await other.get("/api/v1/strategies")).json()
            }
            assert strategies == {"btc-sma": True, "eth-rsi": False}
            refused = await other.post(
                "/api/v1/orders",
                json={
                    "client_order_id": "x",
                    "symbol": "BTCUSDT",
                    "side": "buy",
                    "quantity": "0.01",
                },
                headers=KEY,
            )
            assert refused.status_code == 422
            assert refused.json()["code"] == "kill_switch"

            released = await other.post(
                "/api/v1/risk/kill-switch",
                json={"engaged": False, "reason": "resolved"},
                headers=KEY,
            )
            assert released.json()["engaged"] is False
    # Released on one replica, released on the others (over the bus) and for the next start.
    await eventually(
        lambda: client.get("/api/v1/risk"),
        until=lambda r: r.json()["kill_switch"]["engaged"] is False,
    )
