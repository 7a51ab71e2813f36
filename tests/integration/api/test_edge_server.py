"""The edge of a real trader-api process (issue 14): WebSocket refusals, head and body limits, logs.

One process on PostgreSQL and Redis, logging at ``trace``, for the module;
the last test reads everything it logged.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from integration.api.api_process import TraderApiProcess
from support.servers import PostgresServer, RedisServer
from unit.workload.api_support import API_KEY

KEY = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def edge_api(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> Iterator[TraderApiProcess]:
    postgres_server.start()
    redis_server.start()
    database = postgres_server.create_database()
    process = TraderApiProcess(
        name="edge",
        env={
            "DATABASE_URL": postgres_server.url(database),
            "REDIS_URL": redis_server.url(),
            "API_KEY": API_KEY,
            "READS_REQUIRE_API_KEY": "true",
            "LOG_LEVEL": "trace",
            "ACCESS_LOG": "true",
        },
    ).start()
    yield process
    process.stop()
    postgres_server.drop_database(database)


def refusal(url: str, **headers: str) -> tuple[int, str]:
    """Open ``url`` and return the close code and reason the server ends the socket with."""
    with pytest.raises(ConnectionClosed) as closed:  # noqa: SIM117 - the receive is what fails
        with connect(url, additional_headers=headers, open_timeout=10) as socket_:
            socket_.recv(timeout=10)
    received = closed.value.rcvd
    assert received is not None, "closed without a close frame"
    return received.code, received.reason


@pytest.mark.parametrize(
    ("query", "headers", "reason"),
    [
        (f"?api_key={API_KEY}", {}, "missing X-API-Key header"),
        ("", {"X-API-Key": "wrong"}, "invalid API key"),
        ("?types=order,gossip", KEY, "unknown types ['gossip']"),
    ],
)
def test_refused_sockets_close_with_1008_and_the_reason(
    edge_api: TraderApiProcess, query: str, headers: dict[str, str], reason: str
) -> None:
    code, text = refusal(f"ws://127.0.0.1:{edge_api.port}/ws{query}", **headers)
    assert (code, text.split(";")[0]) == (1008, reason.split(";", maxsplit=1)[0])


def test_an_accepted_socket_streams(edge_api: TraderApiProcess) -> None:
    with connect(
        f"ws://127.0.0.1:{edge_api.port}/ws?types=tick", additional_headers=KEY
    ) as socket_:
        assert '"type": "tick"' in str(socket_.recv(timeout=15)).replace('":"', '": "')


@pytest.mark.parametrize(
    "headers",
    [
        {f"x-filler-{i}": "a" for i in range(150)},
        {"x-filler": "a" * 100_000},
    ],
    ids=["150 headers", "a 100 kB header"],
)
def test_oversize_heads_are_431(edge_api: TraderApiProcess, headers: dict[str, str]) -> None:
    response = httpx.get(f"{edge_api.base_url}/api/v1/positions", headers={**headers, **KEY})
    assert response.status_code == 431
    assert "detail" in response.json()
    assert httpx.get(f"{edge_api.base_url}/health/ready").status_code == 200


def test_a_declared_oversize_body_is_refused_before_it_is_sent(
    edge_api: TraderApiProcess,
) -> None:
    """No key, 50 MiB announced, not a byte sent: the 413 comes back at once."""
    with socket.create_connection(("127.0.0.1", edge_api.port), timeout=10) as raw:
        raw.sendall(
            b"POST /api/v1/orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 52428800\r\n\r\n"
        )
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in answer.lower()


def test_no_configured_secret_is_in_any_log_line(edge_api: TraderApiProcess) -> None:
    """Last in the module: the process logged every test above at ``trace``."""
    httpx.get(f"{edge_api.base_url}/api/v1/orders?api_key={API_KEY}", headers=KEY)
    passwords = [
        unquote(urlsplit(edge_api.env[name]).password or "")
        for name in ("DATABASE_URL", "REDIS_URL")
    ]
    secrets = [API_KEY, *passwords]
    assert all(len(secret) >= 8 for secret in secrets)
    lines = edge_api.log_lines()
    assert any("WebSocket /ws" in line for line in lines)  # the handshake lines were logged
    assert [line for line in lines if any(secret in line for secret in secrets)] == []
