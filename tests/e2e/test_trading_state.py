"""The bot's trading state in its status, read by the operator in its pod from real API pods.

Issue 12.5: the operator reads GET /api/v1/risk with the generated read-only key
through the bot's Service; a kill switch engaged by an SRE shows as TradingHalted
and a Degraded phase, and releasing it brings the bot back to Ready. The test
leaves the bot as it found it (kill switch released, Ready).
"""

from __future__ import annotations

from typing import Any

import httpx

from e2e.stack import Bot
from support.kube import eventually

# The operator reads each bot at most every 30 s (TRADERBOT_TRADING_READ_SECONDS);
# a change shows within one read, plus a pass.
READ_BOUND = 30 + 45
KILL_SWITCH = "/api/v1/risk/kill-switch"


def _halted(bot: Bot) -> dict[str, Any] | None:
    for condition in bot.get().get("status", {}).get("conditions") or []:
        if condition["type"] == "TradingHalted":
            found: dict[str, Any] = condition
            return found
    return None


def _condition_is(bot: Bot, status: str, reason: str) -> Any:
    def probe() -> dict[str, Any] | None:
        condition = _halted(bot)
        return (
            condition
            if condition
            and (condition["status"], condition["reason"])
            == (
                status,
                reason,
            )
            else None
        )

    return probe


def test_the_trading_state_is_read_from_real_pods_and_a_kill_switch_halts_the_bot(
    bot: Bot,
) -> None:
    eventually(
        _condition_is(bot, "False", "Trading"),
        what=f"TradingHalted False/Trading; last: {_halted(bot)}",
        timeout=READ_BOUND,
        interval=2.0,
    )
    trading = bot.get()["status"]["trading"]
    api_pods = {p["metadata"]["name"] for p in bot.pods("api")}
    assert trading["observedAt"], trading
    assert trading["killSwitch"] is False, trading
    # NB: a name of a real API pod, though maybe one replaced since the last read (the
    # read is at most 30 s old, and earlier tests restart the API pods).
    assert trading["leader"].startswith(f"{bot.name}-api-"), (trading, api_pods)

    read_key = bot.secret_value(f"{bot.name}-api-read-key", "read-api-key")
    with bot.forward() as forward:
        # The operator's key reads, and cannot trade or halt.
        assert (
            httpx.get(f"{forward.url}/api/v1/risk", headers={"X-API-Key": read_key}).status_code
            == 200
        )
        refused = httpx.post(
            f"{forward.url}{KILL_SWITCH}",
            json={"engaged": True, "reason": "read key"},
            headers={"X-API-Key": read_key},
        )
        assert refused.status_code == 403, refused.text
        engaged = httpx.post(
            f"{forward.url}{KILL_SWITCH}",
            json={"engaged": True, "reason": "e2e drill"},
            headers={"X-API-Key": bot.api_key},
        )
        assert engaged.status_code == 200, engaged.text
    try:
        eventually(
            _condition_is(bot, "True", "KillSwitch"),
            what=f"TradingHalted True/KillSwitch; last: {_halted(bot)}",
            timeout=READ_BOUND,
            interval=2.0,
        )
        assert bot.phase() == "Degraded"
    finally:
        with bot.forward() as forward:
            released = httpx.post(
                f"{forward.url}{KILL_SWITCH}",
                json={"engaged": False, "reason": "e2e drill over"},
                headers={"X-API-Key": bot.api_key},
            )
            assert released.status_code == 200, released.text
    eventually(
        _condition_is(bot, "False", "Trading"),
        what=f"TradingHalted back to False; last: {_halted(bot)}",
        timeout=READ_BOUND,
        interval=2.0,
    )
    bot.wait_phase("Ready")
