"""TraderBotRestore decides each step from data: refuse early, stop the API first, never loop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest
import yaml

from traderbot_operator.desired.backup import (
    build_backup_cronjob,
    build_restore_job,
    build_verify_cronjob,
    redis_data_claim,
)
from traderbot_operator.desired.redis import build_redis_statefulset
from traderbot_operator.models import (
    BackupRun,
    BackupRunSpec,
    BackupRunStatus,
    RestoreRun,
    RestoreRunSpec,
    RestoreRunStatus,
    TraderBotStatus,
)
from traderbot_operator.reconcile import (
    Outcome,
    compute_status,
)
from traderbot_operator.runs import (
    hold_change,
    newest_completed_backup,
    redis_held,
    restore_decision,
    restore_refusal,
)
from unit.operator.bots import bot
from unit.operator.crd_schema import ROOT, model_mismatches

CRD = yaml.safe_load((ROOT / "crds" / "traderbot.dev_traderbotrestores.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
NOW = datetime(2026, 1, 28, 12, 0, tzinfo=UTC)
LOCATION = "/backups/alpha/alpha-20260128T030000Z"


def _restore(*, phase: str | None = None, what: str = "database") -> RestoreRun:
    return RestoreRun(
        name="undo",
        namespace="trading",
        uid="restore-uid",
        labels={"ticket": "ops-42"},
        spec=RestoreRunSpec.model_validate(
            {"botName": "alpha", "backupName": "nightly", "what": what}
        ),
        status=RestoreRunStatus.model_validate({"phase": phase} if phase else {}),
    )


def _backup(**status: Any) -> BackupRun:
    return BackupRun(
        name="nightly",
        namespace="trading",
        uid="backup-uid",
        spec=BackupRunSpec(bot_name="alpha", redis=False),
        status=BackupRunStatus.model_validate(
            {"phase": "Completed", "location": LOCATION, **status}
        ),
    )


def _job(condition: str | None, **fields: Any) -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True", **fields}] if condition else []
    return {
        "metadata": {"name": "undo"},
        "status": {"active": 0 if condition else 1, "conditions": conditions},
    }


@pytest.mark.parametrize(
    ("model", "path"), [(RestoreRunSpec, "spec"), (RestoreRunStatus, "status")]
)
def test_models_have_the_crd_fields(model: Any, path: str) -> None:
    assert model_mismatches(model, SCHEMA["properties"][path], path) == []


@pytest.mark.parametrize(
    ("backup", "what", "reason"),
    [
        (None, "database", "TraderBotBackup trading/nightly does not exist"),
        (_backup(phase="Failed"), "database", "only a Completed backup can be restored"),
        (_backup(location=None), "database", "has no recorded location"),
        (_backup(), "redis", "TraderBotBackup nightly holds no Redis snapshot"),
        (_backup(), "both", "TraderBotBackup nightly holds no Redis snapshot"),
        (
            _backup(completionTime="2025-12-01T03:00:00Z"),
            "database",
            "more than spec.backup.retentionDays (30) days ago",
        ),
    ],
)
def test_a_restore_that_cannot_work_is_refused_before_anything_is_touched(
    backup: BackupRun | None, what: str, reason: str
) -> None:
    refusal = restore_refusal(_restore(what=what), bot=bot(), backup=backup, now=NOW)
    assert refusal is not None
    assert reason in refusal
    decision = restore_decision(
        _restore(what=what), refusal=refusal, api_pods=1, job=None, result=None, now=NOW
    )
    assert decision.status["phase"] == "Failed"
    assert decision.hold_api is False
    assert decision.start_job is False


def test_a_backup_of_another_bot_is_refused() -> None:
    other = _backup().model_copy(update={"spec": BackupRunSpec(bot_name="bravo")})
    assert "is a backup of bravo, not of alpha" in (
        restore_refusal(_restore(), bot=bot(), backup=other, now=NOW) or ""
    )


def test_the_api_is_stopped_before_the_restore_job_starts() -> None:
    waiting = restore_decision(_restore(), refusal=None, api_pods=2, job=None, result=None, now=NOW)
    assert (waiting.status["phase"], waiting.hold_api, waiting.start_job) == (
        "StoppingApi",
        True,
        False,
    )
    ready = restore_decision(
        _restore(phase="StoppingApi"), refusal=None, api_pods=0, job=None, result=None, now=NOW
    )
    assert (ready.status["phase"], ready.hold_api, ready.start_job) == ("Restoring", True, True)
    assert ready.status["apiStoppedAt"] == "2026-01-28T12:00:00Z"


def test_a_completed_restore_releases_the_api_and_says_so() -> None:
    done = restore_decision(
        _restore(phase="Restoring"),
        refusal=None,
        api_pods=0,
        job=_job("Complete", lastTransitionTime="2026-01-28T12:03:00Z"),
        result={"ok": True, "action": "restore"},
        now=NOW,
    )
    assert (done.status["phase"], done.hold_api) == ("Completed", False)
    assert done.status["restoredAt"] == "2026-01-28T12:03:00Z"
    assert done.event is not None
    assert done.event[1] == "RestoreCompleted"


def test_a_restore_refused_by_trader_backup_starts_the_api_again() -> None:
    # trader-backup checks the manifest, checksums and target before writing, and a
    # reported failure (a pruned folder, a bad checksum) leaves the database as it was.
    failed = restore_decision(
        _restore(phase="Restoring"),
        refusal=None,
        api_pods=0,
        job=_job("Failed", reason="BackoffLimitExceeded"),
        result={"ok": False, "error": "backup folder alpha-20260128T030000Z does not exist"},
        now=NOW,
    )
    assert (failed.status["phase"], failed.hold_api) == ("Failed", False)
    assert "before the data was changed" in failed.status["message"]
    assert "does not exist" in failed.status["message"]


def test_a_completed_job_without_a_result_is_not_a_verified_restore() -> None:
    unverified = restore_decision(
        _restore(phase="Restoring"),
        refusal=None,
        api_pods=0,
        job=_job("Complete"),
        result=None,
        now=NOW,
    )
    assert (unverified.status["phase"], unverified.hold_api) == ("Failed", True)
    assert "without reporting a result" in unverified.status["message"]


def test_a_failed_restore_keeps_the_api_stopped_and_is_not_retried() -> None:
    failed = restore_decision(
        _restore(phase="Restoring"),
        refusal=None,
        api_pods=0,
        job=_job("Failed", reason="BackoffLimitExceeded"),
        result=None,
        now=NOW,
    )
    assert (failed.status["phase"], failed.hold_api) == ("Failed", True)
    assert "BackoffLimitExceeded" in failed.status["message"]
    assert "delete this TraderBotRestore" in failed.status["message"]
    again = restore_decision(
        _restore(phase="Failed"), refusal=None, api_pods=0, job=None, result=None, now=NOW
    )
    assert (again.start_job, again.hold_api, again.event) == (False, True, None)


def test_the_restore_job_runs_trader_backup_restore_once_with_the_backup_location() -> None:
    job = build_restore_job(bot(), restore=_restore(what="both"), location=LOCATION)
    kubernetes_validate.validate(job, "1.34.0", strict=True)
    assert job["spec"]["backoffLimit"] == 0
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["trader-backup"]
    assert container["args"] == ["restore", LOCATION, "--what", "both"]
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "backup"  # NetworkPolicies admit it
    assert labels["ticket"] == "ops-42"


def test_a_held_bot_reports_why_its_api_is_stopped() -> None:
    status = compute_status(
        bot(), observed={}, outcome=Outcome(held_by=("undo", "Restoring")), now=NOW
    )
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (status["phase"], ready["reason"]) == ("Progressing", "ApiHeldForRestore")
    assert "TraderBotRestore undo" in ready["message"]
    failed = compute_status(
        bot(), observed={}, outcome=Outcome(held_by=("undo", "Failed")), now=NOW
    )
    assert failed["phase"] == "Degraded"


def test_a_second_restore_is_refused_while_another_holds_the_bot() -> None:
    refusal = restore_refusal(_restore(), bot=bot(), backup=_backup(), holder="earlier", now=NOW)
    assert refusal is not None
    assert "TraderBotRestore earlier holds TraderBot alpha already" in refusal
    assert restore_refusal(_restore(), bot=bot(), backup=_backup(), holder="undo", now=NOW) is None


def test_a_restore_releases_only_its_own_hold() -> None:
    assert hold_change("earlier", restore="undo", hold=False) == (False, "earlier")
    assert hold_change("undo", restore="undo", hold=False) == (True, None)
    assert hold_change(None, restore="undo", hold=False) == (False, None)
    assert hold_change(None, restore="undo", hold=True) == (True, "undo")
    assert hold_change("undo", restore="undo", hold=True) == (False, "undo")


def test_a_restore_of_a_paused_or_failed_bot_is_refused_instead_of_waiting_forever() -> None:
    paused = restore_refusal(_restore(), bot=bot(paused=True), backup=_backup(), now=NOW)
    assert "is paused (spec.paused)" in (paused or "")
    failed_bot = bot().model_copy(update={"status": TraderBotStatus(phase="Failed")})
    failed = restore_refusal(_restore(), bot=failed_bot, backup=_backup(), now=NOW)
    assert "is Failed" in (failed or "")


def test_a_backup_within_retention_may_be_restored() -> None:
    recent = _backup(completionTime="2026-01-20T03:00:00Z")
    assert restore_refusal(_restore(), bot=bot(), backup=recent, now=NOW) is None


def test_the_newest_backup_is_restorable_whatever_its_age_as_retention_spares_it() -> None:
    old = _backup(completionTime="2025-12-01T03:00:00Z")
    older = old.model_copy(
        update={
            "name": "older",
            "status": BackupRunStatus(phase="Completed", completion_time="2025-11-01T03:00:00Z"),
        }
    )
    failed_later = old.model_copy(
        update={
            "name": "failed-later",
            "status": BackupRunStatus(phase="Failed", completion_time="2026-01-27T03:00:00Z"),
        }
    )
    newest = newest_completed_backup([older, old, failed_later], bot="alpha")
    assert newest == "nightly"
    assert (
        restore_refusal(_restore(), bot=bot(), backup=old, newest_completed=newest, now=NOW) is None
    )


def test_a_backup_marked_pruned_is_refused_whatever_its_age() -> None:
    marked = _backup(
        completionTime="2026-01-20T03:00:00Z",
        prunedAt="2026-01-27T03:01:00Z",
        prunedBy="alpha-backup-29440980",
    )
    refusal = restore_refusal(_restore(), bot=bot(), backup=marked, now=NOW) or ""
    assert "files were deleted by retention at 2026-01-27T03:01:00Z" in refusal
    assert "alpha-backup-29440980" in refusal


def _redis_backup(**status: Any) -> BackupRun:
    return _backup(**status).model_copy(update={"spec": BackupRunSpec(bot_name="alpha")})


def test_a_redis_restore_of_a_bot_without_a_redis_volume_is_refused_up_front() -> None:
    volatile = bot(redis={"persistence": False})
    for what in ("redis", "both"):
        refusal = restore_refusal(
            _restore(what=what), bot=volatile, backup=_redis_backup(), now=NOW
        )
        assert "spec.redis.persistence false" in (refusal or "")
    # The database alone needs no Redis volume.
    assert restore_refusal(_restore(), bot=volatile, backup=_redis_backup(), now=NOW) is None
    assert (
        restore_refusal(_restore(what="both"), bot=bot(), backup=_redis_backup(), now=NOW) is None
    )


def test_a_redis_only_restore_needs_no_database_dump() -> None:
    snapshot_only = _redis_backup().model_copy(
        update={"spec": BackupRunSpec(bot_name="alpha", database=False)}
    )
    assert restore_refusal(_restore(what="redis"), bot=bot(), backup=snapshot_only, now=NOW) is None
    refusal = restore_refusal(_restore(what="both"), bot=bot(), backup=snapshot_only, now=NOW)
    assert "holds no database dump" in (refusal or "")


def test_a_redis_restore_waits_for_the_redis_pod_too_before_the_job() -> None:
    waiting = restore_decision(
        _restore(phase="StoppingApi", what="both"),
        refusal=None,
        api_pods=0,
        redis_pods=1,
        job=None,
        result=None,
        now=NOW,
    )
    assert (waiting.status["phase"], waiting.hold_api, waiting.start_job) == (
        "StoppingApi",
        True,
        False,
    )
    assert "1 Redis pod(s)" in waiting.status["message"]
    ready = restore_decision(
        _restore(phase="StoppingApi", what="both"),
        refusal=None,
        api_pods=0,
        redis_pods=0,
        job=None,
        result=None,
        now=NOW,
    )
    assert (ready.status["phase"], ready.start_job) == ("Restoring", True)
    assert ready.status["message"] == "API and Redis stopped; restore Job started"


def test_after_a_redis_restore_redis_starts_before_the_api() -> None:
    restored = _job("Complete", lastTransitionTime="2026-01-28T12:03:00Z")
    starting = restore_decision(
        _restore(phase="Restoring", what="redis"),
        refusal=None,
        api_pods=0,
        job=restored,
        result={"ok": True},
        redis_ready=False,
        now=NOW,
    )
    assert (starting.status["phase"], starting.hold_api, starting.event) == (
        "StartingRedis",
        True,
        None,
    )
    assert starting.status["restoredAt"] == "2026-01-28T12:03:00Z"
    done = restore_decision(
        RestoreRun.model_validate(
            {**_restore(what="redis").model_dump(), "status": starting.status}
        ),
        refusal=None,
        api_pods=0,
        job=restored,
        result={"ok": True},
        redis_ready=True,
        now=NOW,
    )
    assert (done.status["phase"], done.hold_api) == ("Completed", False)
    assert done.status["restoredAt"] == "2026-01-28T12:03:00Z"


def test_redis_is_held_until_the_restore_job_ends_and_after_a_failure() -> None:
    assert [
        redis_held(what="both", phase=phase)
        for phase in ("Pending", "StoppingApi", "Restoring", "StartingRedis", "Failed")
    ] == [True, True, True, False, True]
    assert not redis_held(what="database", phase="Restoring")


def test_a_held_redis_statefulset_has_zero_replicas() -> None:
    assert build_redis_statefulset(bot())["spec"]["replicas"] == 1
    assert build_redis_statefulset(bot(), stopped=True)["spec"]["replicas"] == 0


def test_a_redis_restore_job_mounts_the_redis_claim_and_says_how_redis_loads() -> None:
    job = build_restore_job(bot(), restore=_restore(what="redis"), location=LOCATION)
    kubernetes_validate.validate(job, "1.34.0", strict=True)
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["REDIS_DATA_DIR"], env["REDIS_APPENDONLY"]) == ("/redis-data", "true")
    claims = {
        v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]
    }
    assert claims["redis-data"] == redis_data_claim(bot())
    # The claim the StatefulSet controller makes: <template>-<statefulset>-<ordinal>.
    statefulset = build_redis_statefulset(bot())
    [template] = statefulset["spec"]["volumeClaimTemplates"]
    assert redis_data_claim(bot()) == (
        f"{template['metadata']['name']}-{statefulset['metadata']['name']}-0"
    )
    assert {"name": "redis-data", "mountPath": "/redis-data"} in container["volumeMounts"]
    # It writes Redis's files as Redis's user (hostPath volumes ignore fsGroup), and
    # re-owns no volume (no fsGroup: the backup volume is only read).
    security = pod["securityContext"]
    redis_security = build_redis_statefulset(bot())["spec"]["template"]["spec"]["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (
        redis_security["runAsUser"],
        redis_security["runAsGroup"],
    )
    assert "fsGroup" not in security
    assert security["runAsNonRoot"] is True
    database_only = build_restore_job(bot(), restore=_restore(), location=LOCATION)
    assert database_only["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001
    assert "REDIS_DATA_DIR" not in {
        e["name"] for e in database_only["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_a_restore_whose_bot_is_paused_before_its_pods_stopped_ends_untouched() -> None:
    abandoned = restore_decision(
        _restore(phase="StoppingApi"),
        refusal=None,
        api_pods=1,
        job=None,
        result=None,
        paused=True,
        now=NOW,
    )
    assert (abandoned.status["phase"], abandoned.hold_api, abandoned.start_job) == (
        "Failed",
        False,
        False,
    )
    assert "nothing was restored" in abandoned.status["message"]
    assert abandoned.event is not None
    assert abandoned.event[:2] == ("Warning", "RestoreAbandoned")
    # Once the Job runs, pausing changes nothing: the restore follows through.
    running = restore_decision(
        _restore(phase="Restoring"),
        refusal=None,
        api_pods=0,
        job=_job(None),
        result=None,
        paused=True,
        now=NOW,
    )
    assert running.status["phase"] == "Restoring"


def test_a_restore_waits_for_running_backup_jobs_to_end_and_says_why() -> None:
    waiting = restore_decision(
        _restore(phase="StoppingApi"),
        refusal=None,
        api_pods=0,
        backup_jobs=("alpha-backup-29440980", "by-hand"),
        job=None,
        result=None,
        now=NOW,
    )
    assert (waiting.status["phase"], waiting.start_job) == ("StoppingApi", False)
    message = waiting.status["message"]
    assert "waiting for backup Job(s) alpha-backup-29440980, by-hand to end" in message
    assert "half-restored data as the newest backup" in message


def test_backups_are_suspended_while_a_restore_holds_the_bot_and_the_status_says_why() -> None:
    model = bot()
    held = build_backup_cronjob(model, held=True)
    assert held["spec"]["suspend"] is True
    assert build_verify_cronjob(model, held=True)["spec"]["suspend"] is True
    assert build_backup_cronjob(model)["spec"]["suspend"] is False
    status = compute_status(
        model,
        observed={("batch/v1", "CronJob", "alpha-backup"): held},
        outcome=Outcome(held_by=("undo", "Restoring")),
        now=NOW,
    )
    scheduled = next(c for c in status["conditions"] if c["type"] == "BackupScheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "HeldForRestore")
