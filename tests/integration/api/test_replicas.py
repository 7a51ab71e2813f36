"""Two trader-api processes on one database and one Redis: one trades, both stream everything."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from integration.api.api_process import TraderApiProcess
from unit.workload.api_support import API_KEY, eventually

KEY = {"X-API-Key": API_KEY}
FAST_MARKET = {
    "SYMBOLS": "BTCUSDT",
    "STRATEGIES": json.dumps(
        [
            {
                "name": "fast-sma",
                "kind": "sma_crossover",
                "symbol": "BTCUSDT",
                "interval": "1m",
                "params": {"fast": 2, "slow": 3, "quantity": "0.001"},
            }
        ]
    ),
    # One simulated minute per second: a 1m kline closes every second.
    "MARKET_SPEED": "60",
    "MARKET_TICK_SECONDS": "10",
}


async def is_leader(http: httpx.AsyncClient, replica: TraderApiProcess) -> bool:
    text = (await http.get(f"{replica.base_url}/metrics")).text
    return "\nleader 1.0\n" in f"\n{text}"


async def leaders(http: httpx.AsyncClient, replicas: list[TraderApiProcess]) -> list[bool]:
    return [await is_leader(http, replica) for replica in replicas]


async def events_about(
    socket: ClientConnection, order_id: str, *, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Read the socket until the events about ``order_id`` satisfy ``until`` (10 s deadline)."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while not until(seen):
            event = json.loads(await socket.recv())
            about = event.get("order", {}).get("id") or event.get("fill", {}).get("order_id")
            if about == order_id:
                seen.append(event)
    return seen


def filled_with_a_fill(events: list[dict[str, Any]]) -> bool:
    kinds = {(e["type"], e.get("order", {}).get("status")) for e in events}
    return ("order", "filled") in kinds and ("fill", None) in kinds


async def test_one_leader_trades_every_socket_sees_every_event_and_the_lease_moves(
    trader_api: Callable[..., TraderApiProcess],
) -> None:
    replicas = [
        trader_api(name="replica-a", **FAST_MARKET),
        trader_api(name="replica-b", **FAST_MARKET),
    ]
    async with httpx.AsyncClient(timeout=10) as http:
        flags = await eventually(
            lambda: leaders(http, replicas), until=lambda f: sorted(f) == [False, True]
        )
        leader, follower = (replicas[0], replicas[1]) if flags[0] else (replicas[1], replicas[0])

        sockets = [await connect(f"ws://127.0.0.1:{r.port}/ws?types=order,fill") for r in replicas]
        try:
            # The follower prices orders with the leader's ticks, received over Redis.
            await eventually(
                lambda: http.get(f"{follower.base_url}/api/v1/risk"),
                until=lambda r: "BTCUSDT" in r.json()["marks"],
            )
            created = await http.post(
                f"{follower.base_url}/api/v1/orders",
                json={
                    "client_order_id": "via-follower",
                    "symbol": "BTCUSDT",
                    "side": "buy",
                    "quantity": "0.01",
                },
                headers=KEY,
            )
            assert created.status_code == 201
            order_id = created.json()["id"]
            for socket in sockets:
                await events_about(socket, order_id, until=filled_with_a_fill)
        finally:
            for socket in sockets:
                await socket.close()

        # Strategies trade on the leader only: every order filled exactly once.
        strategy_orders = await eventually(
            lambda: _strategy_orders(http, follower),
            until=lambda orders: any(o["status"] == "filled" for o in orders),
            timeout=30,
        )
        for placed in strategy_orders:
            if placed["status"] == "filled":
                fills = (
                    await http.get(
                        f"{follower.base_url}/api/v1/fills", params={"order_id": placed["id"]}
                    )
                ).json()
                assert len(fills) == 1, placed
        assert not [line for line in follower.log_lines() if '"message": "Signal"' in line]

        resting = await http.post(
            f"{leader.base_url}/api/v1/orders",
            json={
                "client_order_id": "resting",
                "symbol": "BTCUSDT",
                "side": "buy",
                "type": "limit",
                "limit_price": "1000",
                "quantity": "0.01",
            },
            headers=KEY,
        )
        resting_id = resting.json()["id"]
        await eventually(
            lambda: http.get(f"{leader.base_url}/api/v1/orders/{resting_id}"),
            until=lambda r: r.json()["status"] == "open",
        )

        # Killing the leader (no clean release) moves the lease once it expires.
        leader.signal(signal.SIGKILL)
        leader.wait(timeout=10)
        await eventually(lambda: is_leader(http, follower), until=bool, timeout=15)
        # The new leader's exchange holds the dead leader's resting order again.
        await eventually(
            _noop,
            until=lambda _: any(
                "Restored resting order" in line and resting_id in line
                for line in follower.log_lines()
            ),
        )
        after = await http.post(
            f"{follower.base_url}/api/v1/orders",
            json={
                "client_order_id": "after-failover",
                "symbol": "BTCUSDT",
                "side": "sell",
                "quantity": "0.01",
            },
            headers=KEY,
        )
        assert after.status_code == 201
        await eventually(
            lambda: http.get(f"{follower.base_url}/api/v1/orders/{after.json()['id']}"),
            until=lambda r: r.json()["status"] == "filled",
        )


async def _strategy_orders(
    http: httpx.AsyncClient, replica: TraderApiProcess
) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = (
        await http.get(f"{replica.base_url}/api/v1/orders", params={"limit": 1000})
    ).json()
    return [o for o in orders if o["strategy"] == "fast-sma"]


async def _noop() -> None:
    return None
