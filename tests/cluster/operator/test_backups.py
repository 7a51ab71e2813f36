"""TraderBotBackup on a real API server: on demand, failing, refused, and scheduled runs."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.resources.batch_v1 import CronJob, Job
from lightkube.types import PatchType

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_operator import _create_bot, _events_of, _get, _wait_phase
from support.kube import eventually
from traderbot_operator.kube import TraderBotBackupResource, TraderBotResource

KWOK_FAIL_LABEL = "traderbot.dev/kwok-fail"


def _create_backup(
    kube: Client, namespace: str, name: str, *, bot: str, labels: dict[str, str] | None = None
) -> None:
    body = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotBackup",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"botName": bot},
    }
    kube.create(TraderBotBackupResource.from_dict(body), namespace=namespace)


def _backup_phase(kube: Client, namespace: str, name: str, phase: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = _get(kube, TraderBotBackupResource, name, namespace)
        return body if (body.get("status") or {}).get("phase") == phase else None

    found: dict[str, Any] = eventually(probe, what=f"TraderBotBackup {name} {phase}", timeout=90)
    return found


def test_an_on_demand_backup_runs_a_job_it_owns_and_completes(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha")
    _wait_phase(kube, namespace, "alpha", "Ready")
    _create_backup(kube, namespace, "alpha-now", bot="alpha", labels={"team": "quant"})
    done = _backup_phase(kube, namespace, "alpha-now", "Completed")
    status = done["status"]
    assert status["jobName"] == "alpha-now"
    assert status["scheduled"] is False
    assert status["completionTime"]
    job = _get(kube, Job, "alpha-now", namespace)
    [owner] = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "TraderBotBackup",
        "alpha-now",
        done["metadata"]["uid"],
    )
    assert job["spec"]["template"]["metadata"]["labels"]["team"] == "quant"
    assert "BackupCompleted" in {e.get("reason") for e in _events_of(kube, namespace, "alpha-now")}


def test_a_failing_backup_is_failed_with_a_reason_and_a_warning(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha")
    _wait_phase(kube, namespace, "alpha", "Ready")
    _create_backup(kube, namespace, "alpha-bad", bot="alpha", labels={KWOK_FAIL_LABEL: "true"})
    failed = _backup_phase(kube, namespace, "alpha-bad", "Failed")
    assert "BackoffLimitExceeded" in failed["status"]["error"]
    events = _events_of(kube, namespace, "alpha-bad")
    assert any(e.get("reason") == "BackupFailed" and e.get("type") == "Warning" for e in events)


@pytest.mark.usefixtures("operator")
def test_a_backup_of_a_missing_bot_fails_at_once(kube: Client, namespace: str) -> None:
    _create_backup(kube, namespace, "orphan", bot="nobody")
    failed = _backup_phase(kube, namespace, "orphan", "Failed")
    assert f"TraderBot {namespace}/nobody does not exist" in failed["status"]["error"]
    with pytest.raises(Exception, match="not found"):
        kube.get(Job, "orphan", namespace=namespace)


def test_a_scheduled_run_is_recorded_as_a_traderbotbackup(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha")
    _wait_phase(kube, namespace, "alpha", "Ready")
    cronjob = _get(kube, CronJob, "alpha-backup", namespace)
    template = cronjob["spec"]["jobTemplate"]
    # What the CronJob controller does at 03:00 (and `kubectl create job --from=cronjob/...`).
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "alpha-backup-29440980",
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": "alpha-backup",
                    "uid": cronjob["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": template["spec"],
    }
    kube.create(from_dict(job))
    recorded = _backup_phase(kube, namespace, "alpha-backup-29440980", "Completed")
    assert recorded["status"]["scheduled"] is True
    assert recorded["spec"]["botName"] == "alpha"
    # deletionPolicy Retain (the default) keeps the backups, so the record that names
    # them has no owner: deleting the bot leaves it for a re-created bot to restore.
    assert not recorded["metadata"].get("ownerReferences")


def test_a_failed_scheduled_backup_turns_backup_healthy_false_with_a_warning(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha")
    _wait_phase(kube, namespace, "alpha", "Ready")
    # What the CronJob controller records when a 03:00 run ends without success.
    kube.patch(
        CronJob.Status,
        "alpha-backup",
        {"status": {"lastScheduleTime": "2026-01-28T03:00:00Z"}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )

    def unhealthy() -> dict[str, Any] | None:
        conditions = _get(kube, TraderBotResource, "alpha", namespace)["status"]["conditions"]
        found = next((c for c in conditions if c["type"] == "BackupHealthy"), None)
        return found if found and found["status"] == "False" else None

    condition = eventually(unhealthy, what="BackupHealthy False", timeout=60)
    assert condition["reason"] == "LastRunFailed"
    events = _events_of(kube, namespace, "alpha")
    assert any(e.get("reason") == "BackupFailed" and e.get("type") == "Warning" for e in events)
