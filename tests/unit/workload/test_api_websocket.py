"""/ws: orders and fills stream as typed JSON; bad filters refused; shutdown closes with 1001."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.websockets import WebSocketDisconnect

from trader_api.api.app import create_app
from trader_api.config import Settings
from trader_api.services.runtime import Runtime
from unit.workload.api_support import API_KEY, scripted_market


@pytest.fixture
def app() -> FastAPI:
    settings = Settings(api_key=SecretStr(API_KEY), pod_name="ws-test")
    runtime = asyncio.run(Runtime.from_settings(settings, market=scripted_market()))
    return create_app(runtime)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as http:
        yield http


def test_an_order_and_its_fill_stream_to_the_socket(client: TestClient) -> None:
    with client.websocket_connect("/ws?types=order,fill") as socket:
        response = client.post(
            "/api/v1/orders",
            json={"client_order_id": "ws-1", "symbol": "ETHUSDT", "side": "sell", "quantity": "1"},
            headers={"X-API-Key": API_KEY},
        )
        assert response.status_code == 201
        seen: list[dict[str, Any]] = []
        while not any(e["type"] == "order" and e["order"]["status"] == "filled" for e in seen):
            seen.append(socket.receive_json())
    assert {e["type"] for e in seen} == {"order", "fill"}
    fill = next(e["fill"] for e in seen if e["type"] == "fill")
    assert (fill["symbol"], fill["side"], fill["quantity"]) == ("ETHUSDT", "sell", "1")
    statuses = [e["order"]["status"] for e in seen if e["type"] == "order"]
    assert statuses[0] == "new"
    assert statuses[-1] == "filled"


def test_an_unknown_event_type_is_refused_with_1008(client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as refused:  # noqa: SIM117 - the connect is what fails
        with client.websocket_connect("/ws?types=order,gossip") as socket:
            socket.receive_json()
    assert refused.value.code == 1008


def test_shutdown_closes_open_sockets_with_1001(app: FastAPI, client: TestClient) -> None:
    with client.websocket_connect("/ws?types=order") as socket:
        drain = functools.partial(app.state.lifecycle.drain, grace_seconds=2)
        assert client.portal is not None
        assert client.portal.call(drain) is True
        message = socket.receive()
    assert message == {"type": "websocket.close", "code": 1001, "reason": "server shutting down"}
