"""The kill switch and strategy switches outlive a restart and reach replicas started later."""

from __future__ import annotations

import functools
from collections.abc import Callable

import httpx
from fastapi import FastAPI

from integration.api.api_process import TraderApiProcess
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


async def test_a_daily_loss_halt_reaches_the_other_replica_as_a_daily_loss_halt(
    trader_api: Callable[..., TraderApiProcess],
) -> None:
    """Both replicas report the halt's cause: the alert for it must not depend on the leader."""
    # NB: the paper exchange's fee on the first fill is already a realized loss above 0.01.
    replicas = [trader_api(name=f"replica-{n}", risk_daily_loss_limit="0.01") for n in ("a", "b")]
    order = {"symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": "0.001"}
    async with httpx.AsyncClient(timeout=10) as http:
        first = await http.post(
            f"{replicas[0].base_url}/api/v1/orders",
            json={**order, "client_order_id": "loss-1"},
            headers=KEY,
        )
        assert first.status_code == 201, first.text
        await eventually(
            lambda: http.get(f"{replicas[0].base_url}/api/v1/orders/{first.json()['id']}"),
            until=lambda r: r.json()["status"] == "filled",
        )
        refused = await http.post(
            f"{replicas[0].base_url}/api/v1/orders",
            json={**order, "client_order_id": "loss-2"},
            headers=KEY,
        )
        assert refused.json()["code"] == "daily_loss_limit"
        for replica in replicas:
            url = f"{replica.base_url}/api/v1/risk"
            risk = await eventually(
                functools.partial(http.get, url),
                until=lambda r: r.json()["kill_switch"]["engaged"] is True,
            )
            assert risk.json()["kill_switch"]["automatic"] is True, replica.name
            text = (await http.get(f"{replica.base_url}/metrics")).text
            assert "\nkill_switch_engaged 1.0\n" in text, replica.name
            assert "\ndaily_loss_limit_halted 1.0\n" in text, replica.name
