"""Records of pruned backups, and which backup Jobs a restore waits for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from traderbot_operator.desired.backup import (
    BACKUP_RUN_LABEL,
    PRE_UPGRADE_LABEL,
    RESTORE_RUN_LABEL,
    SCHEDULED_LABEL,
)
from traderbot_operator.models import BackupRun, BackupRunSpec, BackupRunStatus
from traderbot_operator.runs import (
    PrunedRecords,
    outlived_retention,
    pruned_records,
    running_backup_jobs,
)

RETENTION = 30


def _record(
    name: str,
    *,
    completed: str | None,
    label: str | None = None,
    bot: str = "alpha",
    phase: str = "Completed",
    pruned_at: str | None = None,
    started: str | None = None,
) -> BackupRun:
    """A TraderBotBackup of ``bot`` whose backup folder is named after the record."""
    return BackupRun(
        name=name,
        namespace="trading",
        uid=f"{name}-uid",
        labels={} if label is None else {label: "true"},
        spec=BackupRunSpec(bot_name=bot),
        status=BackupRunStatus.model_validate(
            {
                "phase": phase,
                "startTime": started or completed,
                "completionTime": completed,
                "location": None if phase != "Completed" else f"/backups/{bot}-{name}",
                "prunedAt": pruned_at,
            }
        ),
    )


# The run that just completed and pruned, on 2026-03-10; the others are older.
PRUNING = _record("nightly-0310", completed="2026-03-10T03:01:00Z", label=SCHEDULED_LABEL)
OLD_SCHEDULED = _record("nightly-0101", completed="2026-01-01T03:01:00Z", label=SCHEDULED_LABEL)
OLD_PRE_UPGRADE = _record("pre-0102", completed="2026-01-02T10:00:00Z", label=PRE_UPGRADE_LABEL)
OLD_ON_DEMAND = _record("by-hand-0103", completed="2026-01-03T10:00:00Z")
RECENT = _record("nightly-0301", completed="2026-03-01T03:01:00Z", label=SCHEDULED_LABEL)
ALL = [OLD_SCHEDULED, OLD_PRE_UPGRADE, OLD_ON_DEMAND, RECENT, PRUNING]


def _folder(run: BackupRun) -> str:
    return (run.status.location or "").rsplit("/", 1)[-1]


def _result(**fields: Any) -> dict[str, Any]:
    return {"ok": True, "action": "backup", "location": PRUNING.status.location, **fields}


def test_reported_folders_delete_operator_records_and_mark_user_records() -> None:
    pruned = [_folder(OLD_SCHEDULED), _folder(OLD_PRE_UPGRADE), _folder(OLD_ON_DEMAND)]
    decision = pruned_records(
        ALL, pruning=PRUNING, result=_result(pruned=pruned), retention_days=RETENTION
    )
    assert decision == PrunedRecords(
        delete=("nightly-0101", "pre-0102"),
        mark=("by-hand-0103",),
    )


def test_only_the_reported_folders_count_whatever_the_records_age() -> None:
    decision = pruned_records(
        ALL,
        pruning=PRUNING,
        result=_result(pruned=[_folder(OLD_PRE_UPGRADE), ".staging-alpha-x"]),
        retention_days=RETENTION,
    )
    assert decision == PrunedRecords(delete=("pre-0102",))


def test_no_report_or_an_empty_one_touches_nothing() -> None:
    for result in (_result(), _result(pruned=[]), None):
        assert (
            pruned_records(ALL, pruning=PRUNING, result=result, retention_days=RETENTION)
            == PrunedRecords()
        )


def test_a_shed_report_falls_back_to_the_programs_age_rule() -> None:
    decision = pruned_records(
        ALL, pruning=PRUNING, result=_result(truncated=["pruned"]), retention_days=RETENTION
    )
    # RECENT (9 days old) stays; the three from January are past 30 days.
    assert decision == PrunedRecords(
        delete=("nightly-0101", "pre-0102"),
        mark=("by-hand-0103",),
    )


def test_the_age_rule_counts_from_the_pruning_runs_start_not_its_end() -> None:
    # Completed 30 days and 1 hour before the run *ended*, but less than 30 days
    # before it *started* (a 2-hour backup): trader-backup may not have pruned it.
    long_run = _record(
        "nightly-long",
        completed="2026-03-10T05:00:00Z",
        started="2026-03-10T03:00:00Z",
        label=SCHEDULED_LABEL,
    )
    edge = _record("nightly-edge", completed="2026-02-08T04:00:00Z", label=SCHEDULED_LABEL)
    decision = pruned_records(
        [edge, long_run], pruning=long_run, result=_result(truncated=["pruned"]), retention_days=30
    )
    assert decision == PrunedRecords()


def test_the_newest_completed_record_is_never_pruned() -> None:
    # The pruning run's own record may not be Completed in the list yet: the newest
    # Completed one is then an old record, which retention spares as well.
    running = _record(
        "nightly-now", completed=None, phase="Running", started="2026-03-10T03:00:00Z"
    )
    listed = [OLD_SCHEDULED, OLD_ON_DEMAND, running]
    for result in (
        _result(truncated=["pruned"]),
        _result(pruned=[_folder(OLD_SCHEDULED), _folder(OLD_ON_DEMAND)]),
    ):
        decision = pruned_records(listed, pruning=running, result=result, retention_days=RETENTION)
        assert decision == PrunedRecords(delete=("nightly-0101",)), result


def test_failed_marked_and_other_bots_records_are_left_alone() -> None:
    failed = _record("failed-0101", completed="2026-01-01T03:00:00Z", phase="Failed")
    marked = _record(
        "by-hand-0104", completed="2026-01-04T10:00:00Z", pruned_at="2026-02-04T03:00:00Z"
    )
    other = _record("nightly-0105", completed="2026-01-05T03:00:00Z", bot="beta")
    decision = pruned_records(
        [failed, marked, other, PRUNING],
        pruning=PRUNING,
        result=_result(truncated=["pruned"]),
        retention_days=RETENTION,
    )
    assert decision == PrunedRecords()


def test_a_job_that_ended_before_retention_gets_no_record_again() -> None:
    now = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    old = {"status": {"completionTime": "2026-02-01T03:00:00Z"}}
    recent = {"status": {"completionTime": "2026-03-09T03:00:00Z"}}
    assert outlived_retention(old, retention_days=RETENTION, now=now)
    assert not outlived_retention(recent, retention_days=RETENTION, now=now)
    assert not outlived_retention({"status": {}}, retention_days=RETENTION, now=now)


def _backup_job(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    cronjob: str | None = None,
    ended: str | None = None,
) -> dict[str, Any]:
    owners = [] if cronjob is None else [{"kind": "CronJob", "name": cronjob}]
    conditions = [] if ended is None else [{"type": ended, "status": "True"}]
    return {
        "metadata": {"name": name, "labels": labels or {}, "ownerReferences": owners},
        "status": {"conditions": conditions},
    }


def test_a_restore_waits_for_every_running_backup_job_of_the_bot() -> None:
    jobs = [
        _backup_job("alpha-backup-1", cronjob="alpha-backup"),
        _backup_job("by-hand", labels={BACKUP_RUN_LABEL: "by-hand"}),
        _backup_job("pre-upgrade-0-2-0", labels={BACKUP_RUN_LABEL: "pre-upgrade-0-2-0"}),
        _backup_job("alpha-backup-0", cronjob="alpha-backup", ended="Complete"),
        _backup_job("failed-by-hand", labels={BACKUP_RUN_LABEL: "x"}, ended="Failed"),
        _backup_job("alpha-verify-1", cronjob="alpha-verify"),
        _backup_job("undo", labels={RESTORE_RUN_LABEL: "undo"}),
    ]
    assert running_backup_jobs(jobs, backup_cronjob="alpha-backup") == [
        "alpha-backup-1",
        "by-hand",
        "pre-upgrade-0-2-0",
    ]
    assert running_backup_jobs([], backup_cronjob="alpha-backup") == []
