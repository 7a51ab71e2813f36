"""Scheduled backup verification: the CronJob and the BackupVerified condition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from traderbot_operator.desired import build_children
from traderbot_operator.desired.backup import build_verify_cronjob
from traderbot_operator.verification import (
    backup_verified,
    failed_run,
    job_name,
    verified_condition,
)
from unit.operator.bots import bot

NOW = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


def _cronjob(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "alpha-verify"}, "status": status}


def test_the_verify_cronjob_runs_trader_backup_verify_weekly_by_default() -> None:
    cronjob = build_verify_cronjob(bot())
    spec = cronjob["spec"]
    assert cronjob["metadata"]["name"] == "alpha-verify"
    assert spec["schedule"] == "0 5 * * 0"
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    [container] = job["template"]["spec"]["containers"]
    assert (container["command"], container["args"]) == (["trader-backup"], ["verify"])
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    # Backup pods' labels: the database NetworkPolicy lets them in.
    assert job["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "backup"


def test_the_schedule_comes_from_the_spec_and_verification_can_be_turned_off() -> None:
    custom = build_verify_cronjob(bot(backup={"verify": {"schedule": "30 4 * * 3"}}))
    assert custom["spec"]["schedule"] == "30 4 * * 3"
    names = {c["metadata"]["name"] for c in build_children(bot())}
    assert "alpha-verify" in names
    off = {
        c["metadata"]["name"] for c in build_children(bot(backup={"verify": {"enabled": False}}))
    }
    assert "alpha-verify" not in off
    no_backups = {c["metadata"]["name"] for c in build_children(bot(backup={"enabled": False}))}
    assert "alpha-verify" not in no_backups


def test_the_last_runs_job_name_is_the_cronjob_controllers() -> None:
    scheduled = "2026-11-29T05:00:00Z"
    minutes = int(datetime(2026, 11, 29, 5, 0, tzinfo=UTC).timestamp() // 60)
    assert job_name(bot(), scheduled) == f"alpha-verify-{minutes}"


def test_no_run_yet_is_unknown() -> None:
    found = backup_verified(bot(), _cronjob(), result=None)
    assert found is not None
    assert (found.status, found.reason) == ("Unknown", "NotRunYet")


def test_a_successful_last_run_is_verified() -> None:
    found = backup_verified(
        bot(),
        _cronjob(
            lastScheduleTime="2026-11-29T05:00:00Z", lastSuccessfulTime="2026-11-29T05:03:00Z"
        ),
        result=None,
    )
    assert found is not None
    assert (found.status, found.reason) == ("True", "Verified")
    assert "2026-11-29T05:03:00Z" in found.message


def test_a_failed_last_run_is_false_with_trader_backups_error() -> None:
    cronjob = _cronjob(
        lastScheduleTime="2026-11-29T05:00:00Z", lastSuccessfulTime="2026-11-22T05:03:00Z"
    )
    job = failed_run(bot(), cronjob)
    assert job == job_name(bot(), "2026-11-29T05:00:00Z")
    found = backup_verified(
        bot(), cronjob, result={"ok": False, "error": "row count of orders: 7 != 9"}
    )
    assert found is not None
    assert (found.status, found.reason) == ("False", "VerificationFailed")
    assert "row count of orders: 7 != 9" in found.message
    assert job in found.message
    assert "2026-11-22T05:03:00Z" in found.message


def test_a_run_that_never_succeeded_and_has_no_result_still_fails() -> None:
    found = backup_verified(bot(), _cronjob(lastScheduleTime="2026-11-29T05:00:00Z"), result=None)
    assert found is not None
    assert found.status == "False"
    assert "last success: never" in found.message


def test_a_running_verification_keeps_the_last_verdict() -> None:
    running = _cronjob(
        lastScheduleTime="2026-11-29T05:00:00Z",
        lastSuccessfulTime="2026-11-22T05:03:00Z",
        active=[{"name": "x"}],
    )
    assert failed_run(bot(), running) is None
    found = backup_verified(bot(), running, result=None)
    assert found is not None
    assert (found.status, found.reason) == ("True", "Verifying")


def test_nothing_is_reported_when_verification_is_off() -> None:
    off = bot(backup={"verify": {"enabled": False}})
    assert backup_verified(off, _cronjob(), result=None) is None
    assert backup_verified(bot(), None, result=None) is None


def test_the_condition_time_moves_only_when_it_flips() -> None:
    found = backup_verified(bot(), _cronjob(), result=None)
    assert found is not None
    first = verified_condition(found, previous=None, generation=1, now=NOW)
    again = verified_condition(found, previous=first, generation=1, now=NOW + timedelta(days=1))
    assert again["lastTransitionTime"] == first["lastTransitionTime"]
    assert first["type"] == "BackupVerified"
