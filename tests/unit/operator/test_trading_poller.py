"""The poller asks for a bot's pass only when TradingHalted would move, and survives its bugs.

The reads are scripted (the HTTP side runs for real in
tests/integration/api/test_operator_risk_read.py) and the pass is recorded
instead of run (tests/cluster/operator/test_trading_state.py runs both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import kopf
import pytest

from traderbot_operator import bot_api, metrics
from traderbot_operator.handlers import traderbot as handlers
from traderbot_operator.trading import (
    KillSwitchReading,
    ReadTarget,
    RiskReading,
    TradingRead,
    TradingReads,
)
from unit.operator.fake_kube import FakeKube
from unit.workload.api_support import eventually

KEY = ("trading", "poller-bot")
TARGET = ReadTarget(url="http://poller-bot-api.trading.svc:3000", key="read-key")


def ok(*, engaged: bool = False) -> Callable[[], TradingRead]:
    def make() -> TradingRead:
        return TradingRead(
            at=datetime.now(UTC),
            reading=RiskReading(
                kill_switch=KillSwitchReading(engaged=engaged, reason="drill" if engaged else None),
                open_orders=0,
                realized_pnl_today=Decimal(0),
            ),
        )

    return make


def failing(error: str) -> Callable[[], TradingRead]:
    return lambda: TradingRead(at=datetime.now(UTC), error=error)


def crashing() -> TradingRead:
    raise RuntimeError("a bug in the reader")


async def test_a_pass_is_asked_for_only_when_the_verdict_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script: list[Callable[[], TradingRead]] = [
        ok(),  # the first read: a pass (nothing shown yet)
        ok(),  # the same: none
        ok(engaged=True),  # a halt: a pass
        failing("ConnectError: refused"),  # a failure: a pass
        failing("no answer within 2s"),  # another failure: none (the drift pass shows it)
        crashing,  # an operator bug: recorded as a failed read, the loop goes on; none
        ok(),  # trading again: a pass
    ]
    served: list[TradingRead] = []
    passes: list[str] = []

    async def scripted_read(
        http: httpx.AsyncClient, *, target: ReadTarget, within: float
    ) -> TradingRead:
        assert target == TARGET
        # NB: past the script the bot goes on trading: a verdict that does not move.
        read = (script.pop(0) if script else ok())()
        served.append(read)
        return read

    async def recorded_pass(
        memo: Any, *, namespace: str, name: str, trigger: str, **_: Any
    ) -> None:
        assert (namespace, name) == KEY
        passes.append(trigger)

    monkeypatch.setattr(bot_api, "read_risk", scripted_read)
    monkeypatch.setattr(handlers, "_reconcile", recorded_pass)
    monkeypatch.setattr(handlers, "TRADING_TICK_SECONDS", 0.005)
    state = FakeKube().state()
    state.trading = TradingReads(interval=0.02)
    state.trading.target(KEY, TARGET)
    async with httpx.AsyncClient() as unused:
        state.bot_http = unused
        memo = kopf.Memo()
        memo.state = state
        poller = asyncio.create_task(handlers.read_trading(memo))
        try:
            await eventually(lambda: _now(len(passes)), until=lambda n: n >= 4 and not script)
            await asyncio.sleep(0.1)  # any pass wrongly asked for after the last read lands too
        finally:
            state.closing = True
            await asyncio.wait_for(poller, timeout=5)
    assert passes == ["trading"] * 4
    last = state.trading.last(KEY)
    assert last is not None
    assert last.reading is not None
    labels = {"namespace": KEY[0], "bot": KEY[1]}
    assert metrics.REGISTRY.get_sample_value("traderbot_operator_trading_read_ok", labels) == 1
    metrics.drop_trading(namespace=KEY[0], bot=KEY[1])


async def _now(value: int) -> int:
    return value
