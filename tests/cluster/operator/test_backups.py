"""TraderBotBackup on a real API server: on demand, failing, refused, and scheduled runs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.resources.batch_v1 import CronJob, Job
from lightkube.types import PatchType

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_operator import _create_bot, _events_of, _get, _wait_phase
from support.kube import eventually
from traderbot_operator.desired.common import Names
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


def run_phase(kube: Client, resource: Any, namespace: str, name: str, phase: str) -> dict[str, Any]:
    """Wait until a run resource (TraderBotBackup, TraderBotRestore) reaches ``phase``."""

    def probe() -> dict[str, Any] | None:
        body = _get(kube, resource, name, namespace)
        return body if (body.get("status") or {}).get("phase") == phase else None

    found: dict[str, Any] = eventually(probe, what=f"{name} {phase}", timeout=90)
    return found


def _backup_phase(kube: Client, namespace: str, name: str, phase: str) -> dict[str, Any]:
    return run_phase(kube, TraderBotBackupResource, namespace, name, phase)


def wait_event(kube: Client, namespace: str, name: str, *, reason: str, type_: str) -> None:
    """Wait until ``name`` has an Event of ``reason`` and ``type_``.

    NB: the operator writes a run's status first and its Event after, so the phase
    alone does not promise that the Event is there yet.
    """
    eventually(
        lambda: any(
            e.get("reason") == reason and e.get("type") == type_
            for e in _events_of(kube, namespace, name)
        ),
        what=f"{type_} Event {reason} on {name}",
        timeout=30,
    )


def job_from_cronjob(
    kube: Client,
    namespace: str,
    *,
    cronjob: str,
    name: str,
    pod_labels: dict[str, str] | None = None,
    pod_annotations: dict[str, str] | None = None,
    suspend: bool = False,
    run: str | None = None,
) -> None:
    """Start a Job from a CronJob's jobTemplate, owned by it, as its controller does.

    Also what ``kubectl create job --from=cronjob/...`` does: a CronJob cannot be
    fired on demand, so this is how a test runs one now. ``pod_labels`` go onto
    the pod template (``traderbot.dev/kwok-fail: "true"`` makes the run fail);
    ``pod_annotations`` too (``traderbot.dev/kwok-result`` is the result it reports);
    ``suspend`` keeps the Job from starting its pod (a run that is still going).
    With ``run`` the Job is instead that TraderBotBackup's (labelled with it, not
    owned by the CronJob), as the operator makes for an on-demand backup.
    """
    live = _get(kube, CronJob, cronjob, namespace)
    template = copy.deepcopy(live["spec"]["jobTemplate"])
    pod_metadata = template["spec"]["template"].setdefault("metadata", {})
    pod_metadata["labels"] = {**(pod_metadata.get("labels") or {}), **(pod_labels or {})}
    if pod_annotations:
        pod_metadata["annotations"] = {**(pod_metadata.get("annotations") or {}), **pod_annotations}
    owner = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": cronjob,
        "uid": live["metadata"]["uid"],
        "controller": True,
    }
    job_labels = dict(template["metadata"]["labels"])
    if run is not None:
        job_labels["traderbot.dev/backup"] = run
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": job_labels,
            "ownerReferences": [] if run is not None else [owner],
        },
        "spec": {**template["spec"], "suspend": suspend},
    }
    kube.create(from_dict(job))


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
    wait_event(kube, namespace, "alpha-now", reason="BackupCompleted", type_="Normal")


def test_a_failing_backup_is_failed_with_a_reason_and_a_warning(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha")
    _wait_phase(kube, namespace, "alpha", "Ready")
    _create_backup(kube, namespace, "alpha-bad", bot="alpha", labels={KWOK_FAIL_LABEL: "true"})
    failed = _backup_phase(kube, namespace, "alpha-bad", "Failed")
    assert "BackoffLimitExceeded" in failed["status"]["error"]
    wait_event(kube, namespace, "alpha-bad", reason="BackupFailed", type_="Warning")


@pytest.mark.usefixtures("operator")
def test_a_backup_of_a_missing_bot_fails_at_once(kube: Client, namespace: str) -> None:
    _create_backup(kube, namespace, "orphan", bot="nobody")
    failed = _backup_phase(kube, namespace, "orphan", "Failed")
    assert f"TraderBot {namespace}/nobody does not exist" in failed["status"]["error"]
    with pytest.raises(Exception, match="not found"):
        kube.get(Job, "orphan", namespace=namespace)


@pytest.mark.parametrize("bot_name", ["alpha", "trading-bot-for-the-european-desk-eth-01"])
def test_a_scheduled_run_is_recorded_as_a_traderbotbackup(
    kube: Client, namespace: str, operator: OperatorRunner, bot_name: str
) -> None:
    """Also at the longest bot name (40): the CronJob's name is shortened so its Jobs'
    names, which the records take, fit a TraderBotBackup's 52 characters."""
    _create_bot(kube, namespace, bot_name)
    _wait_phase(kube, namespace, bot_name, "Ready")
    cronjob = Names(bot_name).backup_cronjob
    assert len(cronjob) <= 43
    run = f"{cronjob}-29440980"
    job_from_cronjob(kube, namespace, cronjob=cronjob, name=run)
    recorded = _backup_phase(kube, namespace, run, "Completed")
    assert recorded["status"]["scheduled"] is True
    assert recorded["spec"]["botName"] == bot_name
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


def test_a_scheduled_record_made_before_deletion_policy_loses_its_owner_on_a_retain_bot(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha")  # deletionPolicy Retain, the default
    bot = _wait_phase(kube, namespace, "alpha", "Ready")
    # A record as the operator wrote them before commit 0fbbe33: owned by its bot.
    body = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotBackup",
        "metadata": {
            "name": "alpha-backup-29000000",
            "labels": {"traderbot.dev/scheduled": "true"},
            "ownerReferences": [
                {
                    "apiVersion": "traderbot.dev/v1alpha1",
                    "kind": "TraderBot",
                    "name": "alpha",
                    "uid": bot["metadata"]["uid"],
                    "controller": False,
                }
            ],
        },
        "spec": {"botName": "alpha"},
    }
    kube.create(TraderBotBackupResource.from_dict(body), namespace=namespace)

    def unowned() -> dict[str, Any] | None:
        record = _get(kube, TraderBotBackupResource, "alpha-backup-29000000", namespace)
        return None if record["metadata"].get("ownerReferences") else record

    record = eventually(unowned, what="the record without its bot as owner", timeout=60)
    assert record["spec"] == {"botName": "alpha", "database": True, "redis": True}
    assert record["metadata"]["labels"] == {"traderbot.dev/scheduled": "true"}


def _recorded_backup(
    kube: Client, namespace: str, name: str, *, completed: str, labels: dict[str, str]
) -> None:
    """Record a Completed backup of alpha, its folder named after the record."""
    body = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotBackup",
        "metadata": {"name": name, "labels": labels},
        "spec": {"botName": "alpha"},
    }
    kube.create(TraderBotBackupResource.from_dict(body), namespace=namespace)
    status = {"phase": "Completed", "completionTime": completed, "location": f"/backups/{name}"}
    kube.patch(
        TraderBotBackupResource.Status,
        name,
        {"status": status},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    _backup_phase(kube, namespace, name, "Completed")


def _gone(kube: Client, namespace: str, name: str) -> bool:
    try:
        kube.get(TraderBotBackupResource, name, namespace=namespace)
    except ApiError as error:
        return error.status.code == 404
    return False


def test_records_of_backups_retention_pruned_are_deleted_or_marked_if_a_user_made_them(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha")
    _wait_phase(kube, namespace, "alpha", "Ready")
    scheduled = {"traderbot.dev/scheduled": "true"}
    _recorded_backup(
        kube, namespace, "alpha-backup-29000000", completed="2025-12-01T03:01:00Z", labels=scheduled
    )
    _recorded_backup(
        kube, namespace, "by-hand", completed="2025-12-02T10:00:00Z", labels={"team": "quant"}
    )
    _recorded_backup(
        kube, namespace, "alpha-backup-29100000", completed="2026-01-20T03:01:00Z", labels=scheduled
    )
    # trader-backup's result for the new run: its retention deleted the first two.
    result = {
        "ok": True,
        "action": "backup",
        "location": "/backups/alpha-backup-29440980",
        "size": 1,
        "checksum": "sha256:kwok-fake",
        "pruned": ["alpha-backup-29000000", "by-hand"],
    }
    job_from_cronjob(
        kube,
        namespace,
        cronjob="alpha-backup",
        name="alpha-backup-29440980",
        pod_annotations={"traderbot.dev/kwok-result": json.dumps(result)},
    )
    _backup_phase(kube, namespace, "alpha-backup-29440980", "Completed")

    eventually(
        lambda: _gone(kube, namespace, "alpha-backup-29000000"),
        what="the pruned scheduled record deleted",
        timeout=30,
    )

    def marked() -> dict[str, Any] | None:
        body = _get(kube, TraderBotBackupResource, "by-hand", namespace)
        return body if (body.get("status") or {}).get("prunedAt") else None

    by_hand = eventually(marked, what="the user's record marked pruned", timeout=30)
    assert by_hand["status"]["phase"] == "Completed"
    assert by_hand["status"]["prunedBy"] == "alpha-backup-29440980"
    assert by_hand["metadata"]["labels"] == {"team": "quant"}
    kept = _get(kube, TraderBotBackupResource, "alpha-backup-29100000", namespace)
    assert "prunedAt" not in kept["status"]
    wait_event(kube, namespace, "alpha-backup-29440980", reason="BackupsPruned", type_="Normal")
