"""The trading state from data alone: a risk read -> status.trading, TradingHalted, phase.

The reads themselves (HTTP against a real trader-api) are in
tests/integration/api/test_operator_risk_read.py; the kwok cluster test checks
that a bot whose API cannot be read still converges Ready.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from traderbot_operator import metrics
from traderbot_operator.models import TraderBot, TraderBotStatus
from traderbot_operator.reconcile import (
    ObjectKey,
    Outcome,
    compute_status,
    status_changed,
    trading_target,
)
from traderbot_operator.trading import (
    KillSwitchReading,
    ReadTarget,
    RiskReading,
    TradingPolicy,
    TradingRead,
    TradingReads,
    metric_values,
    verdict,
)
from unit.operator.bots import bot
from unit.operator.test_reconcile import _running

NOW = datetime(2026, 1, 28, 10, 30, tzinfo=UTC)
POLICY = TradingPolicy(stale_after=timedelta(seconds=150), refresh=timedelta(seconds=300))


def reading(
    *,
    engaged: bool = False,
    daily_loss: bool = False,
    reason: str | None = None,
    pnl: str = "12.5",
    open_orders: int = 2,
    leader: str = "alpha-api-7d9f-abcde",
    pod: str = "alpha-api-7d9f-abcde",
) -> RiskReading:
    return RiskReading(
        kill_switch=KillSwitchReading(
            engaged=engaged,
            reason=reason,
            since=NOW - timedelta(minutes=10) if engaged else None,
            automatic=daily_loss,
        ),
        daily_loss_halt=daily_loss,
        open_orders=open_orders,
        realized_pnl_today=Decimal(pnl),
        leader=leader,
        pod=pod,
    )


def read(at: datetime = NOW, **kwargs: Any) -> TradingRead:
    return TradingRead(at=at, reading=reading(**kwargs))


def failed(error: str, at: datetime = NOW) -> TradingRead:
    return TradingRead(at=at, error=error)


def status_of(model: TraderBot, last: TradingRead | None, *, now: datetime = NOW) -> dict[str, Any]:
    return compute_status(
        model,
        observed=_running(model),
        outcome=Outcome(),
        now=now,
        trading=last,
        trading_policy=POLICY,
    )


def with_status(model: TraderBot, status: dict[str, Any]) -> TraderBot:
    return model.model_copy(update={"status": TraderBotStatus.model_validate(status)})


def condition(status: dict[str, Any], type_: str = "TradingHalted") -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == type_)
    return found


# --- the verdict ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "expected", "fragment"),
    [
        (read(), ("False", "Trading"), "new orders are accepted"),
        (read(engaged=True, reason="incident 42"), ("True", "KillSwitch"), "incident 42"),
        (
            read(engaged=True, daily_loss=True, reason="realized loss today 5001 reached"),
            ("True", "DailyLossLimit"),
            "realized loss today 5001 reached",
        ),
        (
            failed("GET http://alpha-api.trading.svc:3000/api/v1/risk: ConnectError: refused"),
            ("Unknown", "ReadFailed"),
            "ConnectError: refused",
        ),
        (read(at=NOW - timedelta(seconds=151)), ("Unknown", "Stale"), "last read at"),
    ],
)
def test_the_verdict_names_why_trading_stopped_or_why_it_is_unknown(
    last: TradingRead, expected: tuple[str, str], fragment: str
) -> None:
    found = verdict(last, now=NOW, stale_after=POLICY.stale_after)
    assert found is not None
    assert (found.status, found.reason) == expected
    assert fragment in found.message


def test_a_halted_bot_is_degraded_not_ready_with_its_components_still_ready() -> None:
    model = bot()
    status = status_of(model, read(engaged=True, reason="incident 42"))
    assert status["phase"] == "Degraded"
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "TradingHalted")
    assert "incident 42" in ready["message"]
    assert condition(status, "ApiReady")["status"] == "True"
    assert condition(status)["status"] == "True"
    assert status["trading"] == {
        "killSwitch": True,
        "dailyLossHalt": False,
        "haltReason": "incident 42",
        "haltedSince": "2026-01-28T10:20:00Z",
        "realizedPnlToday": "12.5",
        "openOrders": 2,
        "leader": "alpha-api-7d9f-abcde",
        "pod": "alpha-api-7d9f-abcde",
        "observedAt": "2026-01-28T10:30:00Z",
    }
    released = status_of(with_status(model, status), read(at=NOW + timedelta(seconds=30)))
    assert released["phase"] == "Ready"
    assert (condition(released)["status"], condition(released)["reason"]) == ("False", "Trading")
    assert condition(released)["lastTransitionTime"] == "2026-01-28T10:30:00Z"
    assert released["trading"]["killSwitch"] is False
    assert "haltReason" not in released["trading"]


def test_an_unreadable_api_leaves_the_bot_ready_with_trading_halted_unknown() -> None:
    model = bot()
    status = status_of(model, failed("GET http://alpha-api.trading.svc:3000/api/v1/risk: timeout"))
    assert status["phase"] == "Ready"
    found = condition(status)
    assert (found["status"], found["reason"]) == ("Unknown", "ReadFailed")
    assert "alpha-api.trading.svc:3000/api/v1/risk: timeout" in found["message"]
    assert status["trading"] == {
        "error": "GET http://alpha-api.trading.svc:3000/api/v1/risk: timeout"
    }


def test_a_failed_read_keeps_the_last_good_values_and_says_why() -> None:
    model = bot()
    good = status_of(model, read(pnl="-40"))
    after = status_of(with_status(model, good), failed("no answer within 2s"))
    assert after["trading"]["realizedPnlToday"] == "-40"
    assert after["trading"]["observedAt"] == good["trading"]["observedAt"]
    assert after["trading"]["error"] == "no answer within 2s"
    again = status_of(with_status(model, after), read(pnl="-40", at=NOW + timedelta(seconds=60)))
    assert "error" not in again["trading"]


def test_after_an_operator_restart_the_condition_stays_until_the_first_read() -> None:
    model = bot()
    halted = status_of(model, read(engaged=True, reason="incident 42"))
    later = NOW + timedelta(hours=1)
    restarted = status_of(with_status(model, halted), None, now=later)
    assert condition(restarted) == condition(halted)
    assert restarted["phase"] == "Degraded"
    assert not status_changed(halted, restarted)


# --- when the status is written --------------------------------------------------------


def test_a_read_that_changes_nothing_writes_nothing() -> None:
    model = bot()
    first = status_of(model, read())
    second = status_of(with_status(model, first), read(at=NOW + timedelta(seconds=30)))
    assert not status_changed(first, second)


def test_moving_numbers_are_written_at_most_once_per_refresh_period() -> None:
    model = bot()
    first = status_of(model, read(pnl="10", open_orders=1))
    soon = NOW + timedelta(seconds=60)
    within = status_of(with_status(model, first), read(at=soon, pnl="11", open_orders=3), now=soon)
    assert not status_changed(first, within)
    late = NOW + timedelta(seconds=300)
    refreshed = status_of(
        with_status(model, first), read(at=late, pnl="11", open_orders=3), now=late
    )
    assert status_changed(first, refreshed)
    assert (refreshed["trading"]["realizedPnlToday"], refreshed["trading"]["openOrders"]) == (
        "11",
        3,
    )
    assert refreshed["trading"]["observedAt"] == "2026-01-28T10:35:00Z"


def test_a_halt_or_a_new_leader_is_written_at_once_another_answering_pod_is_not() -> None:
    model = bot()
    first = status_of(model, read())
    soon = NOW + timedelta(seconds=30)
    other_pod = status_of(with_status(model, first), read(at=soon, pod="alpha-api-x"), now=soon)
    assert not status_changed(first, other_pod)
    new_leader = status_of(with_status(model, first), read(at=soon, leader="alpha-api-x"), now=soon)
    assert new_leader["trading"]["leader"] == "alpha-api-x"
    halted = status_of(
        with_status(model, first), read(at=soon, engaged=True, reason="drill"), now=soon
    )
    assert status_changed(first, halted)
    assert halted["phase"] == "Degraded"


def test_the_same_read_error_twice_writes_nothing_new() -> None:
    model = bot()
    first = status_of(model, failed("refused"))
    soon = NOW + timedelta(seconds=30)
    second = status_of(with_status(model, first), failed("refused", at=soon), now=soon)
    assert not status_changed(first, second)


# --- where and how often the poller reads -------------------------------------------


TARGET = ReadTarget(url="http://alpha-api.trading.svc:3000", key="read-key")
KEY = ("trading", "alpha")


def test_each_bot_is_read_at_most_once_per_interval_and_never_twice_at_once() -> None:
    reads = TradingReads(interval=30)
    reads.target(KEY, TARGET)
    assert reads.due(100.0) == [(KEY, TARGET)]
    assert reads.due(100.5) == []  # being read
    reads.record(KEY, read())
    assert reads.due(129.9) == []  # read less than 30 s ago
    assert reads.due(130.0) == [(KEY, TARGET)]
    reads.record(KEY, failed("refused"))
    assert reads.due(131.0) == []  # a failure waits the same interval: no retry storm
    assert reads.last(KEY) == failed("refused")


def test_a_bot_without_a_ready_api_is_not_read_and_a_gone_bot_is_forgotten() -> None:
    reads = TradingReads(interval=30)
    reads.target(KEY, None)
    assert reads.due(100.0) == []
    reads.target(KEY, TARGET)
    assert reads.due(100.0) == [(KEY, TARGET)]
    reads.forget(KEY)
    assert reads.record(KEY, read()) is None
    assert reads.last(KEY) is None
    assert list(reads.keys()) == []


def test_a_moved_api_is_read_at_the_next_tick() -> None:
    reads = TradingReads(interval=30)
    reads.target(KEY, TARGET)
    reads.due(100.0)
    reads.record(KEY, read())
    reads.target(KEY, ReadTarget(url="http://alpha-api.trading.svc:8080", key="read-key"))
    assert [k for k, _ in reads.due(101.0)] == [KEY]


def test_the_poller_reads_only_a_bot_with_a_ready_api_pod_and_its_read_only_key() -> None:
    model = bot()
    observed: dict[ObjectKey, dict[str, Any] | None] = _running(model)
    found = trading_target(model, observed=observed)
    assert found is not None
    assert found.url == "http://alpha-api.trading.svc:3000"
    secret = observed[("v1", "Secret", "alpha-api-read-key")]
    assert secret is not None
    assert found.key == base64.b64decode(secret["data"]["read-api-key"]).decode()
    stopped = dict(observed)
    deployment = stopped[("apps/v1", "Deployment", "alpha-api")]
    assert deployment is not None
    stopped[("apps/v1", "Deployment", "alpha-api")] = {**deployment, "status": {"replicas": 1}}
    assert trading_target(model, observed=stopped) is None
    keyless = {k: v for k, v in observed.items() if k != ("v1", "Secret", "alpha-api-read-key")}
    assert trading_target(model, observed=keyless) is None


# --- metrics ----------------------------------------------------------------------------


def _sample(name: str, bot_name: str = "metrics-bot") -> float | None:
    return metrics.REGISTRY.get_sample_value(name, {"namespace": "trading", "bot": bot_name})


def test_metrics_follow_each_read_and_go_with_the_bot() -> None:
    values = metric_values(read(engaged=True, daily_loss=True, reason="x", pnl="-5001"))
    metrics.set_trading(namespace="trading", bot="metrics-bot", values=values)
    assert _sample("traderbot_operator_trading_halted") == 1
    assert _sample("traderbot_operator_trading_daily_loss_halt") == 1
    assert _sample("traderbot_operator_trading_kill_switch") == 0
    assert _sample("traderbot_operator_trading_realized_pnl_today") == -5001
    assert _sample("traderbot_operator_trading_open_orders") == 2
    assert _sample("traderbot_operator_trading_read_ok") == 1
    metrics.set_trading(namespace="trading", bot="metrics-bot", values=metric_values(failed("x")))
    assert _sample("traderbot_operator_trading_read_ok") == 0
    assert _sample("traderbot_operator_trading_halted") is None  # no stale numbers
    metrics.drop_trading(namespace="trading", bot="metrics-bot")
    assert _sample("traderbot_operator_trading_read_ok") is None
