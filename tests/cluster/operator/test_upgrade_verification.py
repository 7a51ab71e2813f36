"""The backup-verification CronJob on a real API server: built from the spec, not a backup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lightkube import Client
from lightkube.resources.batch_v1 import CronJob, Job
from lightkube.types import PatchType

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_backups import job_from_cronjob
from cluster.operator.test_operator import _create_bot, _get, _wait_phase, _wait_timer_passes
from support.kube import eventually
from traderbot_operator.kube import TraderBotBackupResource, TraderBotResource

KWOK_FAIL = "traderbot.dev/kwok-fail"


def _backup_records(kube: Client, namespace: str) -> list[str]:
    resource: Any = TraderBotBackupResource  # a generic resource: its to_dict is untyped
    return [b.to_dict()["metadata"]["name"] for b in kube.list(resource, namespace=namespace)]


def test_a_verification_run_is_not_recorded_as_a_backup(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha", {"backup": {"verify": {"schedule": "15 4 * * 1"}}})
    _wait_phase(kube, namespace, "alpha", "Ready")
    cronjob = _get(kube, CronJob, "alpha-verify", namespace)
    assert cronjob["spec"]["schedule"] == "15 4 * * 1"
    template = cronjob["spec"]["jobTemplate"]
    assert template["spec"]["template"]["spec"]["containers"][0]["args"] == ["verify"]
    job_from_cronjob(kube, namespace, cronjob="alpha-verify", name="alpha-verify-29440980")
    eventually(
        lambda: (_get(kube, Job, "alpha-verify-29440980", namespace).get("status") or {}).get(
            "succeeded"
        ),
        what="the verification Job succeeded",
        timeout=60,
    )
    _wait_timer_passes(operator, 2)
    assert _backup_records(kube, namespace) == []


def _verified(kube: Client, namespace: str, status: str) -> dict[str, Any] | None:
    conditions = _get(kube, TraderBotResource, "alpha", namespace)["status"]["conditions"]
    found = next((c for c in conditions if c["type"] == "BackupVerified"), None)
    return found if found is not None and found["status"] == status else None


def _scheduled_at(kube: Client, namespace: str, when: datetime) -> str:
    """Record a scheduled run on the verify CronJob as its controller does; return the Job name.

    NB: the controller names the Job after the scheduled minute; BackupVerified finds
    a failed run's Job (and its trader-backup error) by that name.
    """
    kube.patch(
        CronJob.Status,
        "alpha-verify",
        {"status": {"lastScheduleTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    return f"alpha-verify-{int(when.timestamp() // 60)}"


def test_backup_verified_follows_verification_runs_true_then_false_on_a_failure(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    # A schedule that does not fire during the test: the runs are started here.
    _create_bot(kube, namespace, "alpha", {"backup": {"verify": {"schedule": "0 5 1 1 *"}}})
    _wait_phase(kube, namespace, "alpha", "Ready")
    assert _verified(kube, namespace, "Unknown") is not None
    minute = datetime.now(UTC).replace(second=0, microsecond=0)

    good = _scheduled_at(kube, namespace, minute - timedelta(minutes=10))
    job_from_cronjob(kube, namespace, cronjob="alpha-verify", name=good)
    verified = eventually(
        lambda: _verified(kube, namespace, "True"), what="BackupVerified True", timeout=90
    )
    assert verified["reason"] == "Verified"

    # The next run is scheduled after that success (the controller's minutes are whole).
    next_minute = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    bad = _scheduled_at(kube, namespace, next_minute)
    job_from_cronjob(
        kube, namespace, cronjob="alpha-verify", name=bad, pod_labels={KWOK_FAIL: "true"}
    )
    failed = eventually(
        lambda: _verified(kube, namespace, "False"), what="BackupVerified False", timeout=90
    )
    assert failed["reason"] == "VerificationFailed"
    assert f"(Job {bad}) failed" in failed["message"]
    assert "no result reported" in failed["message"]  # the fake pod printed no JSON line
