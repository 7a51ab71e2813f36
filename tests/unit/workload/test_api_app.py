"""The embedded trader-api as a client sees it: the seed's probes, /metrics and /api/v1."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from trader_api import __version__
from trader_api.config import Settings
from unit.workload.api_support import (
    API_KEY,
    SEED_METRIC_FAMILIES,
    api_client,
    eventually,
    serving,
)

KEY = {"X-API-Key": API_KEY}
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def embedded_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"api_key": SecretStr(API_KEY), "pod_name": "unit-test"}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings() -> Settings:
    return embedded_settings()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with serving(settings) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app, client_ip="10.0.0.7") as http:
        yield http


def market_order(client_order_id: str = "c-1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_order_id": client_order_id,
        "symbol": "BTCUSDT",
        "side": "buy",
        "type": "market",
        "quantity": "0.01",
    }
    body.update(overrides)
    return body


# -- the seed's probes -------------------------------------------------------


async def test_health_is_the_seed_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "version": __version__}


async def test_ready_lists_every_component_and_says_embedded_for_in_memory_stores(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert RFC3339_UTC.match(body["timestamp"])
    assert body["components"] == {
        "strategy_engine": "healthy",
        "risk_manager": "healthy",
        "executor": "healthy",
        "database": "embedded",
        "redis": "embedded",
    }


async def test_ready_is_503_while_draining_and_other_requests_are_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await app.state.lifecycle.drain(grace_seconds=1)
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["reason"] == "shutting down"
    refused = await client.get("/api/v1/orders")
    assert refused.status_code == 503
    assert refused.headers["connection"] == "close"
    assert (await client.get("/health")).status_code == 200


async def test_metrics_exposes_the_seed_series_with_route_templates(
    client: httpx.AsyncClient,
) -> None:
    await client.get(f"/api/v1/orders/{uuid.uuid4()}")
    await client.get("/no/such/path")
    text = (await client.get("/metrics")).text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in SEED_METRIC_FAMILIES:
        assert name in families, name
    paths = {
        sample.labels["path"]
        for sample in families["http_requests"].samples
        if sample.name == "http_requests_total"
    }
    assert "/api/v1/orders/{order_id}" in paths
    assert "<unmatched>" in paths
    assert not any(re.search(r"[0-9a-f]{8}-", path) for path in paths)
    leader = next(s for s in families["leader"].samples)
    assert leader.value == 1


# -- auth ----------------------------------------------------------------------


async def test_mutations_need_the_api_key(client: httpx.AsyncClient) -> None:
    missing = await client.post("/api/v1/orders", json=market_order())
    assert missing.status_code == 401
    assert missing.json() == {"detail": "missing X-API-Key header"}
    wrong = await client.post("/api/v1/orders", json=market_order(), headers={"X-API-Key": "x"})
    assert wrong.status_code == 403
    assert (await client.get("/api/v1/orders")).json() == []


@pytest.mark.parametrize("settings", [embedded_settings(api_key=None)])
async def test_without_a_configured_key_every_mutation_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/v1/orders", json=market_order(), headers=KEY)
    assert response.status_code == 401
    assert "no API key is configured" in response.json()["detail"]
    assert (await client.get("/api/v1/orders")).status_code == 200


@pytest.mark.parametrize("settings", [embedded_settings(reads_require_api_key=True)])
async def test_reads_can_require_the_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/positions")).status_code == 401
    assert (await client.get("/api/v1/positions", headers=KEY)).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200


READ_ONLY = {"X-API-Key": "read-" + API_KEY[::-1]}


@pytest.mark.parametrize(
    "settings",
    [embedded_settings(read_api_key=SecretStr(READ_ONLY["X-API-Key"]), reads_require_api_key=True)],
)
async def test_the_read_only_key_opens_reads_and_no_mutation(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/risk", headers=READ_ONLY)).status_code == 200
    assert (await client.get("/api/v1/positions", headers=READ_ONLY)).status_code == 200
    for path, body in (
        ("/api/v1/orders", market_order("ro")),
        ("/api/v1/risk/kill-switch", {"engaged": False, "reason": "not with this key"}),
    ):
        refused = await client.post(path, json=body, headers=READ_ONLY)
        assert refused.status_code == 403, path
        assert "read-only key" in refused.json()["detail"]
    assert (await client.get("/api/v1/orders", headers=READ_ONLY)).json() == []
    # The full key still opens both.
    assert (await client.get("/api/v1/risk", headers=KEY)).status_code == 200
    placed = await client.post("/api/v1/orders", json=market_order("full"), headers=KEY)
    assert placed.status_code == 201
    wrong = await client.get("/api/v1/risk", headers={"X-API-Key": "neither"})
    assert (wrong.status_code, wrong.json()["detail"]) == (403, "invalid API key")


@pytest.mark.parametrize(
    "settings",
    [
        embedded_settings(
            api_key=None, read_api_key=SecretStr(READ_ONLY["X-API-Key"]), reads_require_api_key=True
        )
    ],
)
async def test_a_read_only_key_alone_opens_reads_and_leaves_mutations_closed(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/v1/risk", headers=READ_ONLY)).status_code == 200
    refused = await client.post("/api/v1/orders", json=market_order(), headers=READ_ONLY)
    assert refused.status_code == 401
    assert "no API key is configured" in refused.json()["detail"]


# -- orders --------------------------------------------------------------------


async def test_a_market_order_is_committed_then_filled_by_the_leader(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/v1/orders", json=market_order(), headers=KEY)
    assert created.status_code == 201
    order = created.json()
    assert order["status"] == "new"
    assert order["quantity"] == "0.01"
    filled = await eventually(
        lambda: client.get(f"/api/v1/orders/{order['id']}"),
        until=lambda r: r.json()["status"] == "filled",
    )
    assert filled.json()["filled_quantity"] == "0.01"
    fills = (await client.get("/api/v1/fills", params={"order_id": order["id"]})).json()
    assert len(fills) == 1
    positions = (await client.get("/api/v1/positions")).json()
    assert [(p["symbol"], p["quantity"]) for p in positions] == [("BTCUSDT", "0.01")]


async def test_resubmitting_a_client_order_id_returns_the_first_order(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/api/v1/orders", json=market_order("dup"), headers=KEY)
    again = await client.post("/api/v1/orders", json=market_order("dup"), headers=KEY)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert len((await client.get("/api/v1/orders")).json()) == 1


async def test_reusing_a_client_order_id_for_another_order_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/v1/orders", json=market_order("dup"), headers=KEY)
    other = await client.post("/api/v1/orders", json=market_order("dup", side="sell"), headers=KEY)
    assert other.status_code == 409
    assert "already used for a different order" in other.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (market_order(quantity="-1"), "greater than 0"),
        (market_order(quantity="NaN"), "finite"),
        (market_order(symbol="btc usdt"), "pattern"),
        (market_order(side="hold"), "'buy' or 'sell'"),
        (market_order(type="limit"), "a limit order needs limit_price"),
        (market_order(limit_price="100"), "a market order takes no limit_price"),
        (market_order(extra="field"), "Extra inputs are not permitted"),
        (market_order(client_order_id=""), "at least 1 character"),
    ],
)
async def test_bad_orders_get_422_and_store_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], fragment: str
) -> None:
    response = await client.post("/api/v1/orders", json=body, headers=KEY)
    assert response.status_code == 422
    assert fragment in response.text
    assert (await client.get("/api/v1/orders")).json() == []


async def test_an_unknown_symbol_is_422_and_stores_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/orders", json=market_order(symbol="DOGEUSDT"), headers=KEY
    )
    assert response.status_code == 422
    assert "DOGEUSDT" in response.json()["detail"]
    assert (await client.get("/api/v1/orders")).json() == []


async def test_a_risk_rejection_is_422_with_the_code_and_the_order_is_stored_rejected(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/v1/orders", json=market_order("big", quantity="1"), headers=KEY
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "max_order_notional"
    assert body["order"]["status"] == "rejected"
    stored = (await client.get("/api/v1/orders", params={"status": "rejected"})).json()
    assert [o["client_order_id"] for o in stored] == ["big"]
    again = await client.post("/api/v1/orders", json=market_order("big", quantity="1"), headers=KEY)
    assert again.status_code == 422
    assert again.json()["order"]["id"] == body["order"]["id"]


async def test_a_resting_limit_order_can_be_cancelled_once(client: httpx.AsyncClient) -> None:
    body = market_order("rest", type="limit", limit_price="40000")
    order = (await client.post("/api/v1/orders", json=body, headers=KEY)).json()
    await eventually(
        lambda: client.get(f"/api/v1/orders/{order['id']}"),
        until=lambda r: r.json()["status"] == "open",
    )
    cancelled = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=KEY)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await client.delete(f"/api/v1/orders/{order['id']}", headers=KEY)
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]


async def test_unknown_and_malformed_order_ids(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/api/v1/orders/{uuid.uuid4()}")
    assert missing.status_code == 404
    cancel = await client.post(f"/api/v1/orders/{uuid.uuid4()}/cancel", headers=KEY)
    assert cancel.status_code == 404
    assert (await client.get("/api/v1/orders/not-a-uuid")).status_code == 422


# -- risk and strategies -----------------------------------------------------


async def test_the_kill_switch_rejects_new_orders_until_released(
    client: httpx.AsyncClient,
) -> None:
    engaged = await client.post(
        "/api/v1/risk/kill-switch", json={"engaged": True, "reason": "drill"}, headers=KEY
    )
    assert engaged.json()["engaged"] is True
    refused = await client.post("/api/v1/orders", json=market_order("k1"), headers=KEY)
    assert refused.status_code == 422
    assert refused.json()["code"] == "kill_switch"
    state = (await client.get("/api/v1/risk")).json()
    assert state["kill_switch"]["reason"] == "drill"
    await client.post(
        "/api/v1/risk/kill-switch", json={"engaged": False, "reason": "done"}, headers=KEY
    )
    accepted = await client.post("/api/v1/orders", json=market_order("k2"), headers=KEY)
    assert accepted.status_code == 201


def _gauge(text: str, name: str) -> float:
    [family] = [f for f in text_string_to_metric_families(text) if f.name == name]
    [sample] = family.samples
    return sample.value


async def test_metrics_follow_the_kill_switch_a_person_engages(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    assert (_gauge(before, "kill_switch_engaged"), _gauge(before, "daily_loss_limit_halted")) == (
        0,
        0,
    )
    await client.post(
        "/api/v1/risk/kill-switch", json={"engaged": True, "reason": "drill"}, headers=KEY
    )
    engaged = (await client.get("/metrics")).text
    assert _gauge(engaged, "kill_switch_engaged") == 1
    assert _gauge(engaged, "daily_loss_limit_halted") == 0
    await client.post(
        "/api/v1/risk/kill-switch", json={"engaged": False, "reason": "done"}, headers=KEY
    )
    assert _gauge((await client.get("/metrics")).text, "kill_switch_engaged") == 0


async def test_metrics_say_when_the_daily_loss_limit_halted_trading() -> None:
    # NB: the paper exchange's fee on the first fill is already a realized loss above 0.01.
    settings = embedded_settings(risk_daily_loss_limit=Decimal("0.01"))
    async with serving(settings) as app, api_client(app, client_ip="10.0.0.8") as client:
        order = (await client.post("/api/v1/orders", json=market_order("b1"), headers=KEY)).json()
        await eventually(
            lambda: client.get(f"/api/v1/orders/{order['id']}"),
            until=lambda r: r.json()["status"] == "filled",
        )
        refused = await client.post("/api/v1/orders", json=market_order("b2"), headers=KEY)
        assert refused.json()["code"] == "daily_loss_limit"
        text = (await client.get("/metrics")).text
        assert _gauge(text, "kill_switch_engaged") == 1
        assert _gauge(text, "daily_loss_limit_halted") == 1
        await client.post(
            "/api/v1/risk/kill-switch", json={"engaged": False, "reason": "reviewed"}, headers=KEY
        )
        text = (await client.get("/metrics")).text
        assert (_gauge(text, "kill_switch_engaged"), _gauge(text, "daily_loss_limit_halted")) == (
            0,
            0,
        )


async def test_risk_reports_the_configured_limits(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/risk")).json()
    assert body["limits"] == {
        "max_order_notional": "10000",
        "max_position_notional": "50000",
        "max_open_orders": 20,
        "daily_loss_limit": "5000",
    }
    assert body["marks"] == {"BTCUSDT": "50000", "ETHUSDT": "3000"}


async def test_risk_says_which_pod_answered_which_leads_and_why_trading_halted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    body = (await client.get("/api/v1/risk")).json()
    # The embedded replica is the only one: it answers and leads.
    assert (body["pod"], body["leader"]) == ("unit-test", "unit-test")
    assert (body["kill_switch"]["engaged"], body["daily_loss_halt"]) == (False, False)
    assert (body["open_orders"], body["realized_pnl_today"]) == (0, "0")

    await client.post(
        "/api/v1/risk/kill-switch", json={"engaged": True, "reason": "drill"}, headers=KEY
    )
    manual = (await client.get("/api/v1/risk")).json()
    assert (manual["kill_switch"]["engaged"], manual["daily_loss_halt"]) == (True, False)
    await client.post(
        "/api/v1/risk/kill-switch", json={"engaged": False, "reason": "done"}, headers=KEY
    )
    # NB: what the risk manager does when the realized loss reaches the limit
    # (tests/unit/workload/test_risk.py drives it through a losing portfolio).
    runtime = app.state.runtime
    runtime.risk.halt("realized loss today 5000 reached the daily loss limit 5000", automatic=True)
    halted = (await client.get("/api/v1/risk")).json()
    assert (halted["kill_switch"]["engaged"], halted["daily_loss_halt"]) == (True, True)
    assert halted["kill_switch"]["automatic"] is True


async def test_strategies_can_be_disabled_and_enabled(client: httpx.AsyncClient) -> None:
    names = [s["name"] for s in (await client.get("/api/v1/strategies")).json()]
    assert names == ["btc-sma", "eth-rsi"]
    disabled = await client.post("/api/v1/strategies/btc-sma/disable", headers=KEY)
    assert disabled.json()["enabled"] is False
    listed = {s["name"]: s["enabled"] for s in (await client.get("/api/v1/strategies")).json()}
    assert listed == {"btc-sma": False, "eth-rsi": True}
    assert (await client.post("/api/v1/strategies/btc-sma/enable", headers=KEY)).json()["enabled"]
    unknown = await client.post("/api/v1/strategies/nope/enable", headers=KEY)
    assert unknown.status_code == 404


async def test_klines_query_validates_the_range(client: httpx.AsyncClient) -> None:
    ok = await client.get("/api/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m"})
    assert ok.status_code == 200
    assert ok.json() == []
    backwards = await client.get(
        "/api/v1/klines",
        params={
            "symbol": "BTCUSDT",
            "start": "2025-01-28T10:30:00Z",
            "end": "2025-01-28T10:00:00Z",
        },
    )
    assert backwards.status_code == 422
    assert backwards.json()["detail"] == [
        {"loc": ["query", "end"], "msg": "start must be before end", "type": "value_error"}
    ]
    bad_interval = await client.get(
        "/api/v1/klines", params={"symbol": "BTCUSDT", "interval": "7m"}
    )
    assert bad_interval.status_code == 422


# -- rate limiting -------------------------------------------------------------


@pytest.mark.parametrize(
    "settings", [embedded_settings(rate_limit_per_second=0.5, rate_limit_burst=2)]
)
async def test_a_throttled_client_gets_429_with_retry_after_and_is_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trader_api")
    statuses = [(await client.get("/api/v1/orders")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    throttled = await client.get("/api/v1/orders")
    assert int(throttled.headers["retry-after"]) >= 1
    records = [r for r in caplog.records if r.getMessage() == "Rate limit exceeded"]
    assert records
    assert records[0].client_ip == "10.0.0.7"  # type: ignore[attr-defined]  # set via extra=
    assert (await client.get("/health/ready")).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'http_requests_total{method="GET",path="/api/v1/orders",status="429"}' in text


@pytest.mark.parametrize(
    "settings", [embedded_settings(rate_limit_per_second=0.5, rate_limit_burst=2)]
)
async def test_a_throttled_client_can_still_engage_the_kill_switch(
    client: httpx.AsyncClient,
) -> None:
    while (await client.get("/api/v1/orders")).status_code != 429:
        pass
    halted = await client.post(
        "/api/v1/risk/kill-switch", json={"engaged": True, "reason": "drill"}, headers=KEY
    )
    assert halted.status_code == 200
    assert halted.json()["engaged"] is True
    refused = await client.post("/api/v1/risk/kill-switch", json={"engaged": False, "reason": "x"})
    assert refused.status_code == 401
    assert (await client.get("/api/v1/orders")).status_code == 429


@pytest.mark.parametrize("settings", [embedded_settings(risk_max_open_orders=5)])
async def test_concurrent_orders_never_exceed_max_open_orders(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/orders",
                json=market_order(f"burst-{i}", type="limit", limit_price="1000"),
                headers=KEY,
            )
            for i in range(20)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 5 + [422] * 15
    assert {r.json()["code"] for r in responses if r.status_code == 422} == {"max_open_orders"}
