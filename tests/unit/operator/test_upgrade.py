"""The upgrade state machine: back up, roll out, roll back on a deadline, never loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from traderbot_operator.desired.api import build_api_deployment
from traderbot_operator.desired.backup import PRE_UPGRADE_LABEL
from traderbot_operator.models import (
    BackupRun,
    BackupRunSpec,
    BackupRunStatus,
    TraderBot,
    TraderBotStatus,
    UpgradeStatus,
    VersionRecord,
)
from traderbot_operator.upgrade import (
    HISTORY_LIMIT,
    UpgradeDecision,
    build_pre_upgrade_backup,
    decide_upgrade,
    pre_upgrade_backup_name,
    record,
    running_version_bot,
    upgrade_condition,
    upgrade_status_fields,
)
from unit.operator.bots import bot as make_bot

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _bot(
    version: str, *, running: str | None, state: UpgradeStatus | None = None, **spec: Any
) -> TraderBot:
    """Return a bot whose spec asks for ``version`` while ``running`` runs."""
    made = make_bot(version=version, **spec)
    status = TraderBotStatus(version=running, upgrade=state)
    return made.model_copy(update={"status": status, "generation": 7})


def _deployment(bot: TraderBot, *, version: str, ready: bool) -> dict[str, Any]:
    """Return the API Deployment of ``version`` as the API server reports it."""
    at_version = bot.model_copy(update={"spec": bot.spec.model_copy(update={"version": version})})
    deployment = build_api_deployment(at_version)
    deployment["metadata"]["generation"] = 3
    replicas = bot.spec.replicas
    deployment["status"] = {
        "observedGeneration": 3,
        "replicas": replicas if ready else replicas + 1,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
    }
    return deployment


def _backup(name: str, phase: str | None, error: str | None = None) -> BackupRun:
    return BackupRun(
        name=name,
        namespace="trading",
        uid="u",
        spec=BackupRunSpec(bot_name="alpha"),
        status=BackupRunStatus.model_validate({"phase": phase, "error": error}),
    )


def _decide(
    bot: TraderBot,
    *,
    deployment: dict[str, Any] | None = None,
    backup: BackupRun | None = None,
    now: datetime = NOW,
) -> UpgradeDecision:
    return decide_upgrade(bot, deployment=deployment, backup=backup, held=False, now=now)


def test_a_first_install_deploys_spec_version_and_records_it_once_ready() -> None:
    bot = _bot("1.0.0", running=None)
    coming = _decide(bot, deployment=_deployment(bot, version="1.0.0", ready=False))
    assert coming.deploy_version == "1.0.0"
    assert coming.history == ()
    assert coming.create_backup is None
    ready = _decide(bot, deployment=_deployment(bot, version="1.0.0", ready=True))
    assert [(r.version, r.outcome) for r in ready.history] == [("1.0.0", "Installed")]
    assert not ready.failed


def test_a_steady_bot_has_nothing_to_do_and_reports_no_failure() -> None:
    bot = _bot("1.0.0", running="1.0.0")
    decision = _decide(bot, deployment=_deployment(bot, version="1.0.0", ready=True))
    assert decision.deploy_version == "1.0.0"
    assert decision.upgrade is None
    assert decision.event is None
    assert (decision.failed, decision.reason) == (False, "UpToDate")


def test_a_version_change_first_asks_for_a_backup_and_keeps_the_old_version() -> None:
    bot = _bot("2.0.0", running="1.0.0")
    decision = _decide(bot, deployment=_deployment(bot, version="1.0.0", ready=True))
    assert decision.deploy_version == "1.0.0"
    assert decision.create_backup == "alpha-pre-upgrade-g7"
    assert decision.upgrade is not None
    assert decision.upgrade.phase == "BackingUp"
    assert (decision.upgrade.from_version, decision.upgrade.target_version) == ("1.0.0", "2.0.0")
    assert decision.event is not None
    assert decision.event[1] == "UpgradeStarted"


def test_the_rollout_waits_while_the_backup_runs_and_starts_once_it_completed() -> None:
    started = _decide(_bot("2.0.0", running="1.0.0"))
    bot = _bot("2.0.0", running="1.0.0", state=started.upgrade)
    name = pre_upgrade_backup_name(bot)
    assert name == "alpha-pre-upgrade-g7"
    waiting = _decide(bot, backup=_backup(name, "Running"))
    assert (waiting.deploy_version, waiting.create_backup) == ("1.0.0", None)
    assert "Running" in waiting.message
    rolling = _decide(bot, backup=_backup(name, "Completed"))
    assert rolling.deploy_version == "2.0.0"
    assert rolling.upgrade is not None
    assert rolling.upgrade.phase == "RollingOut"
    assert rolling.upgrade.started_at == "2026-11-26T12:00:00Z"
    assert rolling.upgrade.backup_name == name


def test_a_failed_backup_holds_the_upgrade_with_a_warning_and_never_rolls_forward() -> None:
    upgrade = UpgradeStatus(
        phase="BackingUp", from_version="1.0.0", target_version="2.0.0", backup_name="b1"
    )
    bot = _bot("2.0.0", running="1.0.0", state=upgrade)
    failed = _decide(bot, backup=_backup("b1", "Failed", "disk full"))
    assert failed.deploy_version == "1.0.0"
    assert (failed.failed, failed.reason) == (True, "PreUpgradeBackupFailed")
    assert "disk full" in failed.message
    assert "delete TraderBotBackup b1" in failed.message
    assert failed.event is not None
    assert failed.event[:2] == ("Warning", "PreUpgradeBackupFailed")
    # The next pass says the same without another Event.
    again = _decide(
        _bot("2.0.0", running="1.0.0", state=failed.upgrade),
        backup=_backup("b1", "Failed", "disk full"),
    )
    assert (again.deploy_version, again.event) == ("1.0.0", None)
    # Deleting the failed backup tries again with a new one of the same name.
    retried = _decide(_bot("2.0.0", running="1.0.0", state=failed.upgrade), backup=None)
    assert retried.create_backup == "b1"
    assert retried.deploy_version == "1.0.0"


def test_without_a_pre_upgrade_backup_the_rollout_starts_at_once() -> None:
    bot = _bot("2.0.0", running="1.0.0", upgrade={"preUpgradeBackup": False})
    decision = _decide(bot)
    assert decision.deploy_version == "2.0.0"
    assert decision.create_backup is None
    assert decision.upgrade is not None
    assert decision.upgrade.phase == "RollingOut"
    off = _decide(_bot("2.0.0", running="1.0.0", backup={"enabled": False}))
    assert (off.deploy_version, off.create_backup) == ("2.0.0", None)


def _rolling(started: datetime, **spec: Any) -> TraderBot:
    upgrade = UpgradeStatus(
        phase="RollingOut",
        from_version="1.0.0",
        target_version="2.0.0",
        backup_name="b1",
        started_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        message="rolling out",
    )
    return _bot("2.0.0", running="1.0.0", state=upgrade, **spec)


def test_ready_new_pods_complete_the_upgrade_and_record_it() -> None:
    bot = _rolling(NOW - timedelta(seconds=30))
    done = _decide(bot, deployment=_deployment(bot, version="2.0.0", ready=True))
    assert done.deploy_version == "2.0.0"
    assert done.upgrade is None
    assert [(r.version, r.outcome) for r in done.history] == [("2.0.0", "Upgraded")]
    assert done.event is not None
    assert done.event[:2] == ("Normal", "Upgraded")


def test_the_old_pods_being_ready_is_not_success() -> None:
    bot = _rolling(NOW - timedelta(seconds=30))
    decision = _decide(bot, deployment=_deployment(bot, version="1.0.0", ready=True))
    assert decision.deploy_version == "2.0.0"
    assert decision.upgrade is not None
    assert decision.upgrade.phase == "RollingOut"


def test_new_pods_not_ready_before_the_deadline_keep_rolling_out() -> None:
    bot = _rolling(NOW - timedelta(seconds=299))
    decision = _decide(bot, deployment=_deployment(bot, version="2.0.0", ready=False))
    assert decision.deploy_version == "2.0.0"
    assert (decision.failed, decision.reason) == (False, "RollingOut")
    assert "2026-11-26T12:00:01Z" in decision.message


def test_new_pods_not_ready_by_the_deadline_roll_back_with_a_warning() -> None:
    bot = _rolling(NOW - timedelta(seconds=60), upgrade={"progressDeadlineSeconds": 60})
    decision = _decide(bot, deployment=_deployment(bot, version="2.0.0", ready=False))
    assert decision.deploy_version == "1.0.0"
    assert decision.upgrade is not None
    assert decision.upgrade.phase == "RolledBack"
    assert (decision.failed, decision.reason) == (True, "RolledBack")
    assert "not Ready within 60s" in decision.message
    assert [(r.version, r.outcome) for r in decision.history] == [("2.0.0", "RolledBack")]
    assert decision.event is not None
    assert decision.event[:2] == ("Warning", "RolledBack")


def test_a_rolled_back_version_is_not_retried_until_spec_version_changes() -> None:
    bot = _rolling(NOW - timedelta(seconds=600))
    rolled_back = _decide(bot, deployment=_deployment(bot, version="2.0.0", ready=False))
    after = _bot("2.0.0", running="1.0.0", state=rolled_back.upgrade)
    later = _decide(
        after,
        deployment=_deployment(after, version="1.0.0", ready=True),
        now=NOW + timedelta(hours=5),
    )
    assert (later.deploy_version, later.create_backup, later.event) == ("1.0.0", None, None)
    assert later.failed
    # A new version starts a new upgrade, with its own backup.
    newer = _bot("2.0.1", running="1.0.0", state=rolled_back.upgrade)
    fresh = _decide(newer.model_copy(update={"generation": 9}))
    assert fresh.create_backup == "alpha-pre-upgrade-g9"
    assert fresh.upgrade is not None
    assert fresh.upgrade.target_version == "2.0.1"


def test_setting_spec_version_back_cancels_the_upgrade_by_hand() -> None:
    upgrade = UpgradeStatus(
        phase="RollingOut", from_version="1.0.0", target_version="2.0.0", started_at="x"
    )
    bot = _bot("1.0.0", running="1.0.0", state=upgrade)
    decision = _decide(bot)
    assert decision.deploy_version == "1.0.0"
    assert decision.upgrade is None
    assert [(r.version, r.outcome) for r in decision.history] == [("2.0.0", "Cancelled")]
    # After a rollback, setting it back acknowledges it: nothing is recorded twice.
    acknowledged = _decide(
        _bot("1.0.0", running="1.0.0", state=upgrade.model_copy(update={"phase": "RolledBack"}))
    )
    assert (acknowledged.upgrade, acknowledged.history, acknowledged.failed) == (None, (), False)


def test_history_keeps_the_last_five_oldest_first() -> None:
    history: tuple[VersionRecord, ...] = ()
    for minor in range(7):
        history = record(history, version=f"1.{minor}.0", outcome="Upgraded", now=NOW)
    assert len(history) == HISTORY_LIMIT
    assert [r.version for r in history] == ["1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0"]


def test_a_restore_hold_freezes_the_upgrade() -> None:
    bot = _rolling(NOW - timedelta(seconds=3600))
    held = decide_upgrade(bot, deployment=None, backup=None, held=True, now=NOW)
    assert held.deploy_version == "2.0.0"
    assert held.upgrade == bot.status.upgrade


def test_the_condition_moves_its_time_only_when_it_flips() -> None:
    steady = _decide(_bot("1.0.0", running="1.0.0"))
    first = upgrade_condition(steady, previous=None, generation=1, now=NOW)
    assert (first["type"], first["status"]) == ("UpgradeFailed", "False")
    later = upgrade_condition(steady, previous=first, generation=1, now=NOW + timedelta(hours=1))
    assert later["lastTransitionTime"] == first["lastTransitionTime"]


def test_status_fields_clear_a_finished_upgrade() -> None:
    steady = _decide(_bot("1.0.0", running="1.0.0"))
    assert upgrade_status_fields(steady) == {"upgrade": None, "versionHistory": []}


def test_the_pre_upgrade_backup_is_labelled_and_follows_the_deletion_policy() -> None:
    kept = build_pre_upgrade_backup(_bot("2.0.0", running="1.0.0"), name="alpha-pre-upgrade-g7")
    assert kept["metadata"]["ownerReferences"] == []
    bot = _bot("2.0.0", running="1.0.0", deletionPolicy="Delete")
    body = build_pre_upgrade_backup(bot, name="alpha-pre-upgrade-g7")
    assert body["kind"] == "TraderBotBackup"
    assert body["metadata"]["labels"][PRE_UPGRADE_LABEL] == "true"
    [owner] = body["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("TraderBot", "alpha", False)
    assert body["spec"]["botName"] == "alpha"


def test_backup_pods_run_the_running_version_not_the_new_one() -> None:
    assert running_version_bot(_bot("2.0.0", running="1.0.0")).spec.version == "1.0.0"
    assert running_version_bot(_bot("2.0.0", running=None)).spec.version == "2.0.0"
