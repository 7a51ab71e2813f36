"""SIGTERM under load, the seed's order: refuse new (503), finish in-flight, 1001, exit 0."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from integration.api.api_process import TraderApiProcess
from unit.workload.api_support import API_KEY, eventually

KEY = {"X-API-Key": API_KEY}
WORKERS = 16
GRACE_SECONDS = 10


class Load:
    """Clients that submit orders until the server refuses them, as a load balancer's would."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.acknowledged: list[str] = []
        self.acknowledged_after_sigterm = 0
        self.refused_503 = 0
        self.refused_connect = 0
        self.failures: list[str] = []
        self.sigterm_sent = False

    async def worker(self, index: int) -> None:
        # NB: one connection per request, so a refused connection is never a
        # request the server had accepted (no keep-alive reuse race).
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=30) as http:
            for n in range(2000):
                client_order_id = f"load-{index}-{n}"
                body = {
                    "client_order_id": client_order_id,
                    "symbol": "BTCUSDT",
                    "side": "buy" if n % 2 else "sell",
                    "quantity": "0.001",
                }
                try:
                    response = await http.post("/api/v1/orders", json=body, headers=KEY)
                except httpx.ConnectError:
                    self.refused_connect += 1
                    return
                except httpx.HTTPError as exc:
                    self.failures.append(f"{client_order_id}: {exc!r}")
                    return
                if response.status_code == 503:
                    self.refused_503 += 1
                    return
                if response.status_code != 201:
                    self.failures.append(
                        f"{client_order_id}: {response.status_code} {response.text}"
                    )
                    return
                self.acknowledged.append(client_order_id)
                if self.sigterm_sent:
                    self.acknowledged_after_sigterm += 1


@pytest.mark.timeout(120)
async def test_sigterm_under_load_loses_no_request_closes_sockets_with_1001_and_exits_0(
    trader_api: Callable[..., TraderApiProcess], postgres_url: str
) -> None:
    api = trader_api(
        name="drain",
        SHUTDOWN_GRACE_SECONDS=GRACE_SECONDS,
        RISK_MAX_OPEN_ORDERS=100000,
        RISK_MAX_POSITION_NOTIONAL=10**9,
    )
    async with httpx.AsyncClient() as http:
        await eventually(
            lambda: http.get(f"{api.base_url}/api/v1/risk"),
            until=lambda r: "BTCUSDT" in r.json()["marks"],
        )
    sockets = [await connect(f"ws://127.0.0.1:{api.port}/ws") for _ in range(2)]
    load = Load(api.base_url)
    workers = [asyncio.create_task(load.worker(i)) for i in range(WORKERS)]
    await eventually(_noop, until=lambda _: len(load.acknowledged) >= 100, timeout=30)

    # Hold every order inside the service: lock the orders table until after SIGTERM,
    # so requests are provably in flight when the signal arrives.
    locker = await asyncpg.connect(postgres_url)
    lock = locker.transaction()
    await lock.start()
    await locker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    blocked = await eventually(
        lambda: _waiting_on_locks(locker), until=lambda waiting: waiting >= 1, timeout=15
    )
    api.signal(signal.SIGTERM)
    load.sigterm_sent = True
    sent_at = time.monotonic()
    await eventually(
        _noop,
        until=lambda _: any("refusing new requests" in line for line in api.log_lines()),
    )
    await lock.rollback()
    await locker.close()
    await asyncio.wait_for(asyncio.gather(*workers), timeout=GRACE_SECONDS + 10)

    close_codes = [await _close_code(socket) for socket in sockets]
    exit_code = await asyncio.to_thread(api.wait, GRACE_SECONDS + 10)
    elapsed = time.monotonic() - sent_at

    assert load.failures == []
    assert blocked >= 1
    assert load.acknowledged_after_sigterm >= 1  # requests in flight at SIGTERM finished
    assert load.refused_503 + load.refused_connect == WORKERS
    assert close_codes == [1001, 1001]
    assert exit_code == 0
    assert elapsed < 30
    log = "\n".join(api.log_lines())
    assert "Received SIGTERM: draining" in log
    assert "trader-api exited cleanly" in log

    # Every acknowledged order was committed: a new process on the same database has them all.
    successor = trader_api(name="successor")
    async with httpx.AsyncClient(base_url=successor.base_url, timeout=30) as http:
        stored = (await http.get("/api/v1/orders", params={"limit": 1000})).json()
    stored_ids = {o["client_order_id"] for o in stored}
    assert len(load.acknowledged) <= 1000
    assert set(load.acknowledged) <= stored_ids


async def _noop() -> None:
    return None


async def _waiting_on_locks(conn: asyncpg.Connection) -> int:
    """Count the service's queries stuck behind our lock (they are requests in flight)."""
    waiting: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    return waiting


async def _close_code(socket: ClientConnection) -> int | None:
    """Read until the server closes the socket; return the code it closed with."""
    async with asyncio.timeout(GRACE_SECONDS + 5):
        try:
            while True:
                await socket.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
