"""The API's edge (issue 14): hostile input is a 4xx with a reason, never a 5xx, and stores nothing.

Every class of defect is checked on every endpoint that takes a body: the
order and the kill switch.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.types import Message

from trader_api.config import Settings
from trader_api.domain import plain_decimal
from unit.workload.api_support import API_KEY, api_client, eventually, serving

KEY = {"X-API-Key": API_KEY, "content-type": "application/json"}
ORDERS = "/api/v1/orders"
KILL_SWITCH = "/api/v1/risk/kill-switch"
BODY_LIMIT = 4096


@pytest.fixture
async def app() -> AsyncIterator[FastAPI]:
    settings = Settings(
        api_key=SecretStr(API_KEY),
        pod_name="edge-test",
        max_request_body_bytes=BODY_LIMIT,
        rate_limit_per_second=100_000,
        rate_limit_burst=100_000,
    )
    async with serving(settings) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app, client_ip="10.0.0.8") as http:
        yield http


def order_text(quantity: str = '"0.01"', client_order_id: str = '"edge-1"') -> str:
    return (
        f'{{"client_order_id": {client_order_id}, "symbol": "BTCUSDT", "side": "buy",'
        f' "quantity": {quantity}}}'
    )


async def assert_nothing_changed(
    client: httpx.AsyncClient, *, orders: list[dict[str, object]] | None = None
) -> None:
    """The orders are still ``orders`` (none by default), no halt, and the API is ready."""
    assert (await client.get(ORDERS)).json() == (orders or [])
    assert (await client.get("/api/v1/risk")).json()["kill_switch"]["engaged"] is False
    assert (await client.get("/health/ready")).status_code == 200


# -- 1. rejected values that cannot be serialised; no echo ---------------------

HOSTILE_BODIES = [
    (ORDERS, order_text(quantity="NaN"), "NaN is not a JSON number"),
    (ORDERS, order_text(quantity="Infinity"), "Infinity is not a JSON number"),
    (ORDERS, order_text(quantity="-Infinity"), "-Infinity is not a JSON number"),
    (ORDERS, order_text(quantity="1e400"), "digits"),
    (ORDERS, order_text(client_order_id='"\\ud800"'), "lone UTF-16 surrogate"),
    (ORDERS, order_text()[:-1] + ', "\\udfff": 1}', "lone UTF-16 surrogate"),
    (KILL_SWITCH, '{"engaged": NaN, "reason": "x"}', "NaN is not a JSON number"),
    (KILL_SWITCH, '{"engaged": 1e400, "reason": "x"}', "valid boolean"),
    (KILL_SWITCH, '{"engaged": true, "reason": "\\ud800"}', "lone UTF-16 surrogate"),
    (KILL_SWITCH, '{"engaged": true, "reason": "x", "\\ud800": 1}', "lone UTF-16 surrogate"),
]


@pytest.mark.parametrize(("path", "text", "reason"), HOSTILE_BODIES)
async def test_unencodable_values_are_422_with_the_reason_and_change_nothing(
    client: httpx.AsyncClient, path: str, text: str, reason: str
) -> None:
    response = await client.post(path, content=text.encode(), headers=KEY)
    assert response.status_code == 422, response.text
    assert reason in response.text
    assert "input" not in response.json()["detail"][0]
    await assert_nothing_changed(client)


async def test_a_422_never_echoes_the_rejected_input(client: httpx.AsyncClient) -> None:
    huge = "x" * (BODY_LIMIT // 2 - 200)
    body = json.loads(order_text(client_order_id=json.dumps(huge)))
    body[huge] = 1  # an unknown key of that size: the key is part of the location
    response = await client.post(ORDERS, json=body, headers=KEY)
    assert response.status_code == 422
    assert len(response.content) < 1024
    assert huge not in response.text
    locations = [issue["loc"] for issue in response.json()["detail"]]
    assert ["body", "client_order_id"] in locations


# -- 2. datetimes at the edge ----------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00+05:00", "2025-01-01T00:00:00Z"),
        ("2025-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00"),
    ],
)
async def test_datetimes_out_of_range_in_utc_are_422(
    client: httpx.AsyncClient, start: str, end: str
) -> None:
    response = await client.get(
        "/api/v1/klines", params={"symbol": "BTCUSDT", "start": start, "end": end}
    )
    assert response.status_code == 422
    assert "out of range" in response.text


async def test_naive_datetimes_are_422(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/v1/klines", params={"symbol": "BTCUSDT", "start": "2025-01-28T10:30:00"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "start"]


# -- 4. limits: body size, and the key before the body ---------------------------


async def call_raw(
    app: FastAPI, *, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, bytes, int]:
    """Call ``app`` over ASGI; return the status, body and how many chunks it read."""
    pending = list(chunks)
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        read += 1
        if not pending:
            return {"type": "http.request", "body": b"", "more_body": False}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"trader-api"), (b"content-type", b"application/json"), *headers],
        "client": ("10.0.0.8", 40000),
        "server": ("trader-api", 80),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, read


@pytest.mark.parametrize("path", [ORDERS, KILL_SWITCH])
async def test_a_request_without_the_key_is_refused_before_its_body_is_read(
    app: FastAPI, path: str
) -> None:
    status, body, read = await call_raw(
        app, path=path, headers=[(b"content-length", b"2")], chunks=[b"{}"]
    )
    assert (status, read) == (401, 0), body


@pytest.mark.parametrize("path", [ORDERS, KILL_SWITCH])
async def test_a_declared_oversize_body_is_413_before_a_byte_is_read(
    app: FastAPI, path: str
) -> None:
    declared = str(50 * 1024 * 1024).encode()
    status, body, read = await call_raw(
        app, path=path, headers=[(b"content-length", declared)], chunks=[b"{"]
    )
    assert (status, read) == (413, 0)
    assert str(BODY_LIMIT) in json.loads(body)["detail"]


async def test_a_chunked_body_is_counted_as_it_arrives(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    chunks = [b" " * 1024] * 50  # no Content-Length: 50 KiB of whitespace, then never read
    status, _, read = await call_raw(
        app, path=ORDERS, headers=[(b"x-api-key", API_KEY.encode())], chunks=chunks
    )
    assert status == 413
    assert read <= BODY_LIMIT // 1024 + 1
    await assert_nothing_changed(client)


# -- 5. strict booleans on control endpoints -------------------------------------


@pytest.mark.parametrize("engaged", ["yes", "true", 0, 1, None, "1", 1.0])
async def test_the_kill_switch_takes_only_json_booleans(
    client: httpx.AsyncClient, engaged: object
) -> None:
    response = await client.post(
        KILL_SWITCH, json={"engaged": engaged, "reason": "drill"}, headers=KEY
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "engaged"]
    await assert_nothing_changed(client)


# -- 6. decimals are plain -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [("1E-7", "0.0000001"), ("1E+3", "1000"), ("-2.50E-10", "-0.000000000250"), ("0", "0")],
)
def test_plain_decimal_never_uses_exponents(value: str, text: str) -> None:
    assert plain_decimal(Decimal(value)) == text


async def test_small_quantities_are_plain_in_every_answer(client: httpx.AsyncClient) -> None:
    created = await client.post(
        ORDERS, content=order_text(quantity='"0.0000001"').encode(), headers=KEY
    )
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    assert created.json()["quantity"] == "0.0000001"
    filled = await eventually(
        lambda: client.get(f"{ORDERS}/{order_id}"), until=lambda r: r.json()["status"] == "filled"
    )
    assert filled.json()["filled_quantity"] == "0.0000001"
    fills = (await client.get("/api/v1/fills", params={"order_id": order_id})).json()
    positions = (await client.get("/api/v1/positions")).json()
    answers = [filled.text, json.dumps(fills), json.dumps(positions)]
    assert [f["quantity"] for f in fills] == ["0.0000001"]
    assert [p["quantity"] for p in positions] == ["0.0000001"]
    assert not any("E-" in text or "E+" in text for text in answers)


# -- hostile JSON, generated -----------------------------------------------------

_hostile_scalars = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "true", "0"]),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["\\ud800", "\\udfff", "\\ud83d", "x" * 3000, "\\u0000"]).map(
        lambda s: f'"{s}"'
    ),
    st.text(max_size=40).map(json.dumps),
)


@st.composite
def hostile_json(draw: st.DrawFn) -> str:
    """A JSON-ish text: a valid body with one field replaced, extra keys, or deep nesting."""
    shape = draw(st.sampled_from(["order", "kill", "nested", "key"]))
    value = draw(_hostile_scalars)
    if shape == "order":
        field = draw(st.sampled_from(["quantity", "client_order_id", "symbol", "side"]))
        body = json.loads(order_text())
        return json.dumps(body).replace(json.dumps(body[field]), value, 1)
    if shape == "kill":
        field = draw(st.sampled_from(["engaged", "reason"]))
        return '{"engaged": true, "reason": "drill"}'.replace(
            "true" if field == "engaged" else '"drill"', value, 1
        )
    if shape == "nested":
        depth = draw(st.integers(min_value=1, max_value=3000))
        return "[" * depth + value + "]" * depth
    return order_text()[:-1] + f', "\\ud800{draw(st.text(max_size=5))}": {value}}}'


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=hostile_json(), path=st.sampled_from([ORDERS, KILL_SWITCH]))
async def test_hostile_json_is_never_a_server_error_and_stores_nothing(
    client: httpx.AsyncClient, text: str, path: str
) -> None:
    # NB: one app serves every example, and a well-formed body may have stored an order
    # in an earlier one: a refusal must leave the orders as they were before it.
    before = (await client.get(ORDERS)).json()
    response = await client.post(path, content=text.encode("utf-8", "surrogatepass"), headers=KEY)
    assert response.status_code < 500, response.text
    json.loads(response.text)  # every answer is JSON, encodable
    if response.status_code < 300:
        # A well-formed body may pass: then it is an order or a kill-switch change; undo it.
        if path == KILL_SWITCH:
            await client.post(KILL_SWITCH, json={"engaged": False, "reason": "undo"}, headers=KEY)
        return
    # NB: a refusal by the risk manager (a well-formed order it will not take) is
    # stored as a rejected order with its 422 (docs/api.md); any other refusal
    # stores nothing.
    after = (await client.get(ORDERS)).json()
    added = [order for order in after if order not in before]
    assert len(added) <= 1, added
    if added:
        assert response.status_code == 422, response.text
        assert added[0]["status"] == "rejected", added
    await assert_nothing_changed(client, orders=after if added else before)
