"""BackupHealthy's second branch: no scheduled backup succeeded within 2 schedule periods."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from traderbot_operator.desired.backup import build_backup_cronjob
from traderbot_operator.models import TraderBot
from traderbot_operator.reconcile import Outcome, compute_status
from traderbot_operator.schedule import backup_overdue, due_before
from unit.operator.bots import bot

NOW = datetime(2026, 1, 28, 10, 30, tzinfo=UTC)
CRONJOB = ("batch/v1", "CronJob", "alpha-backup")


def _overdue(
    schedule: str, *, created: str, last_success: str | None, zone: str = "Etc/UTC"
) -> bool:
    return (
        backup_overdue(
            schedule=schedule, time_zone=zone, created=created, last_success=last_success, now=NOW
        )
        is not None
    )


@pytest.mark.parametrize(
    ("last_success", "overdue"),
    [
        ("2026-01-28T03:02:00Z", False),  # this morning's run
        ("2026-01-27T03:02:00Z", False),  # yesterday's: one period missed, not two
        ("2026-01-26T03:02:00Z", True),  # nothing since the 27th 03:00 or the 28th 03:00
        (None, True),
    ],
)
def test_a_daily_schedule_is_overdue_after_two_runs_without_success(
    last_success: str | None, overdue: bool
) -> None:
    assert _overdue("0 3 * * *", created="2026-01-01T00:00:00Z", last_success=last_success) is (
        overdue
    )


@pytest.mark.parametrize(
    ("last_success", "overdue"),
    [("2026-01-28T09:00:30Z", False), ("2026-01-28T08:59:59Z", True)],
)
def test_an_hourly_schedule_is_overdue_after_two_hours_without_success(
    last_success: str, overdue: bool
) -> None:
    # Due at 10:00 and 09:00: a success at or after 09:00 counts.
    assert _overdue("0 * * * *", created="2026-01-01T00:00:00Z", last_success=last_success) is (
        overdue
    )


def test_a_cronjob_younger_than_two_periods_is_never_overdue() -> None:
    assert not _overdue("0 3 * * *", created="2026-01-27T03:00:01Z", last_success=None)
    assert not _overdue("0 * * * *", created="2026-01-28T09:30:00Z", last_success=None)
    assert _overdue("0 * * * *", created="2026-01-28T08:59:00Z", last_success=None)


def test_the_schedule_runs_in_its_time_zone() -> None:
    # 03:00 in New York is 08:00 UTC in January: at 10:30 UTC the 28th's run is due already.
    assert due_before("0 3 * * *", time_zone="America/New_York", now=NOW, count=2) == [
        datetime(2026, 1, 28, 8, 0, tzinfo=UTC),
        datetime(2026, 1, 27, 8, 0, tzinfo=UTC),
    ]
    # A success at 07:30 UTC on the 27th predates the 27th's run (08:00 UTC): overdue there,
    # while in UTC (runs at 03:00) it is after the 27th's run.
    assert _overdue(
        "0 3 * * *",
        created="2026-01-01T00:00:00Z",
        last_success="2026-01-27T07:30:00Z",
        zone="America/New_York",
    )
    assert not _overdue(
        "0 3 * * *", created="2026-01-01T00:00:00Z", last_success="2026-01-27T07:30:00Z"
    )


def test_a_schedule_that_cannot_be_evaluated_is_not_judged() -> None:
    assert due_before("not a schedule", time_zone="Etc/UTC", now=NOW, count=2) == []
    assert due_before("0 3 * * *", time_zone="Mars/Olympus", now=NOW, count=2) == []
    assert due_before("@daily", time_zone="Etc/UTC", now=NOW, count=1) == [
        datetime(2026, 1, 28, 0, 0, tzinfo=UTC)
    ]


def _health(model: TraderBot, cronjob: dict[str, Any]) -> dict[str, Any]:
    status = compute_status(model, observed={CRONJOB: cronjob}, outcome=Outcome(), now=NOW)
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == "BackupHealthy")
    return found


def _cronjob(model: TraderBot, *, created: str, **status: Any) -> dict[str, Any]:
    cronjob = build_backup_cronjob(model)
    cronjob["metadata"]["creationTimestamp"] = created
    cronjob["status"] = status
    return cronjob


def test_backup_healthy_turns_false_when_no_run_succeeded_within_two_periods() -> None:
    model = bot()
    # The CronJob's runs never even started (no lastScheduleTime): not "no run yet" forever.
    silent = _health(model, _cronjob(model, created="2026-01-20T00:00:00Z"))
    assert (silent["status"], silent["reason"]) == ("False", "NoRecentSuccess")
    assert "since 2026-01-27T03:00:00+0000" in silent["message"]
    assert "last success: never" in silent["message"]
    stale = _health(
        model,
        _cronjob(
            model,
            created="2026-01-20T00:00:00Z",
            lastScheduleTime="2026-01-25T03:00:00Z",
            lastSuccessfulTime="2026-01-25T03:01:00Z",
        ),
    )
    assert (stale["status"], stale["reason"]) == ("False", "NoRecentSuccess")
    young = _health(model, _cronjob(model, created="2026-01-28T00:00:00Z"))
    assert (young["status"], young["reason"]) == ("True", "NoRunYet")


def test_a_suspended_or_running_backup_is_not_called_overdue() -> None:
    suspended_bot = bot(backup={"suspend": True})
    suspended = _health(suspended_bot, _cronjob(suspended_bot, created="2026-01-20T00:00:00Z"))
    assert suspended["reason"] == "NoRunYet"
    model = bot()
    running = _health(
        model,
        _cronjob(
            model,
            created="2026-01-20T00:00:00Z",
            lastScheduleTime="2026-01-28T03:00:00Z",
            active=[{"name": "alpha-backup-29490000"}],
        ),
    )
    assert (running["status"], running["reason"]) == ("True", "Running")
