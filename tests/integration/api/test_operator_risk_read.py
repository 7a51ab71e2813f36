"""The operator's risk read against real trader-api processes (PostgreSQL, Redis, loopback HTTP).

Both sides of the contract run for real: two trader-api replicas as the
operator configures them (API_KEY, READ_API_KEY, reads behind a key), and the
operator's own reader (``traderbot_operator.bot_api``) with the read-only key.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from integration.api.api_process import TraderApiProcess
from traderbot_operator import bot_api
from traderbot_operator.trading import ReadTarget, TradingRead, trading_status, verdict
from unit.workload.api_support import API_KEY, eventually

KEY = {"X-API-Key": API_KEY}
# Generated per run, as the operator generates a bot's read-only key.
READ_KEY = secrets.token_urlsafe(32)
STALE_AFTER = timedelta(minutes=2)
# One BTCUSDT fill pays a fee of 10 bps (0.5 at 50000 x 0.01): a realized loss past this
# limit, so the next order's risk check halts trading the way a losing day does.
BOT_ENV = {
    "READ_API_KEY": READ_KEY,
    "READS_REQUIRE_API_KEY": "true",
    "RISK_DAILY_LOSS_LIMIT": "0.1",
    "SYMBOLS": "BTCUSDT",
    "STRATEGIES": json.dumps([]),  # no strategy trades: the test's orders are the only ones
    "MARKET_TICK_SECONDS": "0.2",
}


def order(client_order_id: str) -> dict[str, Any]:
    return {
        "client_order_id": client_order_id,
        "symbol": "BTCUSDT",
        "side": "buy",
        "quantity": "0.01",
    }


async def test_the_operator_reads_the_risk_state_with_a_key_that_cannot_trade(
    trader_api: Callable[..., TraderApiProcess],
) -> None:
    replicas = [trader_api(name=f"alpha-api-{i}", **BOT_ENV) for i in range(2)]
    one, other = (ReadTarget(url=r.base_url, key=READ_KEY) for r in replicas)
    async with bot_api.client() as reader, httpx.AsyncClient(timeout=10) as person:

        async def read(target: ReadTarget) -> TradingRead:
            return await bot_api.read_risk(reader, target=target, within=2)

        first = await eventually(
            lambda: read(one),
            until=lambda r: r.reading is not None and r.reading.leader is not None,
            timeout=15,
        )
        assert first.reading is not None
        assert first.reading.pod == "alpha-api-0"
        assert first.reading.leader in {"alpha-api-0", "alpha-api-1"}
        assert (first.reading.kill_switch.engaged, first.reading.daily_loss_halt) == (False, False)
        assert (first.reading.open_orders, first.reading.realized_pnl_today) == (0, Decimal(0))
        found = verdict(first, now=first.at, stale_after=STALE_AFTER)
        assert found is not None
        assert (found.status, found.reason) == ("False", "Trading")

        # The read-only key opens no mutation; a wrong key opens nothing.
        for path, body in (
            ("/api/v1/risk/kill-switch", {"engaged": True, "reason": "with the read key"}),
            ("/api/v1/orders", order("read-key")),
        ):
            refused = await person.post(
                replicas[1].base_url + path, json=body, headers={"X-API-Key": READ_KEY}
            )
            assert refused.status_code == 403, path
        wrong = await bot_api.read_risk(
            reader, target=ReadTarget(url=replicas[0].base_url, key="wrong"), within=2
        )
        assert wrong.reading is None
        assert wrong.error is not None
        assert "HTTP 403" in wrong.error

        # A person's kill switch, engaged on one replica, reads as such on the other.
        engaged = await person.post(
            f"{replicas[0].base_url}/api/v1/risk/kill-switch",
            json={"engaged": True, "reason": "incident 42"},
            headers=KEY,
        )
        assert engaged.status_code == 200
        halted = await eventually(
            lambda: read(other),
            until=lambda r: r.reading is not None and r.reading.kill_switch.engaged,
        )
        found = verdict(halted, now=halted.at, stale_after=STALE_AFTER)
        assert found is not None
        assert (found.status, found.reason) == ("True", "KillSwitch")
        assert "incident 42" in found.message
        await person.post(
            f"{replicas[0].base_url}/api/v1/risk/kill-switch",
            json={"engaged": False, "reason": "resolved"},
            headers=KEY,
        )
        await eventually(
            lambda: read(other),
            until=lambda r: r.reading is not None and not r.reading.kill_switch.engaged,
        )

        # A losing day: the fee of one fill passes the limit; the next order halts trading.
        placed = await eventually(
            lambda: person.post(
                f"{replicas[0].base_url}/api/v1/orders", json=order("loss-1"), headers=KEY
            ),
            until=lambda r: r.status_code == 201,  # 422 no_price until the first tick
            timeout=15,
        )
        await eventually(
            lambda: person.get(
                f"{replicas[0].base_url}/api/v1/orders/{placed.json()['id']}", headers=KEY
            ),
            until=lambda r: r.json()["status"] == "filled",
            timeout=15,
        )
        refused = await person.post(
            f"{replicas[0].base_url}/api/v1/orders", json=order("loss-2"), headers=KEY
        )
        assert refused.json()["code"] == "daily_loss_limit"
        # NB: read on the replica that did not halt: the halt crossed Redis with its cause.
        by_limit = await eventually(
            lambda: read(other),
            until=lambda r: r.reading is not None and r.reading.daily_loss_halt,
        )
        assert by_limit.reading is not None
        assert by_limit.reading.pod == "alpha-api-1"
        assert by_limit.reading.realized_pnl_today < 0
        found = verdict(by_limit, now=by_limit.at, stale_after=STALE_AFTER)
        assert found is not None
        assert (found.status, found.reason) == ("True", "DailyLossLimit")
        shown = trading_status(
            by_limit, previous=None, now=by_limit.at, refresh=timedelta(minutes=5)
        )
        assert shown is not None
        assert (shown.kill_switch, shown.daily_loss_halt) == (True, True)
        assert shown.realized_pnl_today is not None
        assert shown.realized_pnl_today.startswith("-")

        # An API that is gone fails the read at once, with the reason.
        replicas[1].stop()
        gone = await read(other)
        assert gone.reading is None
        assert gone.error is not None
        assert "ConnectError" in gone.error


async def test_a_read_of_an_api_that_never_answers_ends_at_its_timeout() -> None:
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()  # accepts the connection, never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with bot_api.client() as reader:
            started = time.monotonic()
            read = await bot_api.read_risk(
                reader, target=ReadTarget(url=f"http://127.0.0.1:{port}", key=READ_KEY), within=0.5
            )
            elapsed = time.monotonic() - started
    finally:
        done.set()
        server.close()
        await server.wait_closed()
    assert read.reading is None
    assert read.error is not None
    assert "no answer within 0.5s" in read.error
    assert elapsed < 2
    assert datetime.now(UTC) - read.at < timedelta(seconds=5)
