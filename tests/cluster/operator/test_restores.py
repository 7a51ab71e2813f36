"""TraderBotRestore on a real API server: the API is stopped first, then restored, then back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import CronJob, Job
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.types import PatchType

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_backups import _create_backup, job_from_cronjob, run_phase, wait_event
from cluster.operator.test_operator import (
    _bot,
    _create_bot,
    _get,
    _wait_phase,
    _wait_timer_passes,
)
from support.kube import eventually
from traderbot_operator.kube import (
    TraderBotBackupResource,
    TraderBotResource,
    TraderBotRestoreResource,
)

LOCATION = "/backups/alpha/alpha-20260128T030000Z"
HOLD = "traderbot.dev/api-held-by"
STUCK = "traderbot.dev/test-keeps-terminating"
RUNNING = "alpha-backup-29440980"
API_PODS: dict[str, Any] = {
    "app.kubernetes.io/instance": "alpha",
    "app.kubernetes.io/component": "api",
}


def _completed_backup(kube: Client, namespace: str, *, phase: str = "Completed") -> None:
    """Record a backup of alpha as trader-backup would have reported it."""
    body = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotBackup",
        "metadata": {"name": "nightly", "labels": {"traderbot.dev/scheduled": "true"}},
        "spec": {"botName": "alpha"},
    }
    kube.create(TraderBotBackupResource.from_dict(body), namespace=namespace)
    kube.patch(
        TraderBotBackupResource.Status,
        "nightly",
        {"status": {"phase": phase, "location": LOCATION, "scheduled": True}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )


def _create_restore(
    kube: Client,
    namespace: str,
    name: str,
    *,
    labels: dict[str, str] | None = None,
    what: str = "database",
) -> None:
    body = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotRestore",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"botName": "alpha", "backupName": "nightly", "what": what},
    }
    kube.create(TraderBotRestoreResource.from_dict(body), namespace=namespace)


def _restore_phase(kube: Client, namespace: str, name: str, phase: str) -> dict[str, Any]:
    return run_phase(kube, TraderBotRestoreResource, namespace, name, phase)


def _ready_bot_with_a_backup(
    kube: Client, namespace: str, spec: dict[str, Any] | None = None
) -> None:
    """Create bot alpha, wait until it is Ready, and record a Completed backup of it."""
    _create_bot(kube, namespace, "alpha", spec)
    _wait_phase(kube, namespace, "alpha", "Ready")
    _completed_backup(kube, namespace)


def _api_pods(kube: Client, namespace: str) -> int:
    return len(list(kube.list(Pod, namespace=namespace, labels=API_PODS)))


def test_a_restore_stops_the_api_restores_then_starts_it_again(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _ready_bot_with_a_backup(kube, namespace)
    _create_restore(kube, namespace, "undo")
    done = _restore_phase(kube, namespace, "undo", "Completed")
    job = _get(kube, Job, "undo", namespace)
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "restore", LOCATION, "--what", "database",
    ]  # fmt: skip
    # The seed's order: the Job exists only once no API pod was left.
    assert done["status"]["apiStoppedAt"] <= job["metadata"]["creationTimestamp"]
    assert done["status"]["restoredAt"]
    eventually(
        lambda: _get(kube, Deployment, "alpha-api", namespace)["spec"]["replicas"] == 1,
        what="the API scaled back up",
    )
    _wait_phase(kube, namespace, "alpha", "Ready")
    assert HOLD not in (_bot(kube, namespace, "alpha")["metadata"].get("annotations") or {})
    wait_event(kube, namespace, "undo", reason="RestoreCompleted", type_="Normal")


def test_a_failed_restore_keeps_the_api_stopped_until_it_is_deleted(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _ready_bot_with_a_backup(kube, namespace)
    _create_restore(kube, namespace, "broken", labels={"traderbot.dev/kwok-fail": "true"})
    failed = _restore_phase(kube, namespace, "broken", "Failed")
    assert "the API stays stopped" in failed["status"]["message"]
    bot = _wait_phase(kube, namespace, "alpha", "Degraded")
    ready = next(c for c in bot["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ApiHeldForRestore"
    assert _get(kube, Deployment, "alpha-api", namespace)["spec"]["replicas"] == 0
    assert _api_pods(kube, namespace) == 0
    # No scheduled backup records the half-restored database as the newest backup.
    assert _get(kube, CronJob, "alpha-backup", namespace)["spec"]["suspend"] is True
    assert _get(kube, CronJob, "alpha-verify", namespace)["spec"]["suspend"] is True
    wait_event(kube, namespace, "broken", reason="RestoreFailed", type_="Warning")
    # Nor does an on-demand one: it waits, saying why, and starts no Job.
    _create_backup(kube, namespace, "now", bot="alpha")

    def waiting() -> dict[str, Any] | None:
        status = _get(kube, TraderBotBackupResource, "now", namespace).get("status") or {}
        return (
            status if "TraderBotRestore broken holds the bot" in status.get("message", "") else None
        )

    assert eventually(waiting, what="the on-demand backup waiting")["phase"] == "Pending"
    assert "now" not in {
        job.metadata.name for job in kube.list(Job, namespace=namespace) if job.metadata
    }

    kube.delete(TraderBotRestoreResource, "broken", namespace=namespace)
    _wait_phase(kube, namespace, "alpha", "Ready")
    assert _get(kube, Deployment, "alpha-api", namespace)["spec"]["replicas"] == 1
    assert _get(kube, CronJob, "alpha-backup", namespace)["spec"]["suspend"] is False
    run_phase(kube, TraderBotBackupResource, namespace, "now", "Completed")


def test_a_restore_from_an_unfinished_backup_is_refused_and_touches_nothing(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha")
    _wait_phase(kube, namespace, "alpha", "Ready")
    _completed_backup(kube, namespace, phase="Running")
    _create_restore(kube, namespace, "early")
    refused = _restore_phase(kube, namespace, "early", "Failed")
    assert "only a Completed backup can be restored" in refused["status"]["message"]
    assert _get(kube, Deployment, "alpha-api", namespace)["spec"]["replicas"] == 1
    assert HOLD not in (_bot(kube, namespace, "alpha")["metadata"].get("annotations") or {})
    assert _bot(kube, namespace, "alpha")["status"]["phase"] == "Ready"


def test_a_second_restore_is_refused_while_another_holds_the_bot(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _ready_bot_with_a_backup(kube, namespace)
    _create_restore(kube, namespace, "broken", labels={"traderbot.dev/kwok-fail": "true"})
    _restore_phase(kube, namespace, "broken", "Failed")
    _create_restore(kube, namespace, "second")
    refused = _restore_phase(kube, namespace, "second", "Failed")
    assert "TraderBotRestore broken holds TraderBot alpha already" in refused["status"]["message"]
    # The refused restore did not release the hold of the one that failed mid-way.
    assert _bot(kube, namespace, "alpha")["metadata"]["annotations"][HOLD] == "broken"
    assert _get(kube, Deployment, "alpha-api", namespace)["spec"]["replicas"] == 0


def test_of_restores_sent_at_once_one_claims_the_bot_and_the_others_are_refused(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    """Issue 14, class 11: the claim is atomic, so only one restore Job ever runs."""
    _ready_bot_with_a_backup(kube, namespace)
    names = [f"at-once-{i}" for i in range(5)]
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(lambda name: _create_restore(kube, namespace, name), names))

    def settled() -> dict[str, dict[str, Any]] | None:
        bodies = {n: _get(kube, TraderBotRestoreResource, n, namespace) for n in names}
        phases = {n: (b.get("status") or {}).get("phase") for n, b in bodies.items()}
        done = all(p in {"Completed", "Failed"} for p in phases.values())
        return bodies if done else None

    bodies: dict[str, dict[str, Any]] = eventually(
        settled, what="every restore Completed or Failed", timeout=120
    )
    completed = [n for n, b in bodies.items() if b["status"]["phase"] == "Completed"]
    assert len(completed) == 1, {n: b["status"] for n, b in bodies.items()}
    for name, body in bodies.items():
        if name not in completed:
            assert "holds TraderBot alpha already" in body["status"]["message"], body["status"]
            assert not body["status"].get("apiStoppedAt")  # refused before touching anything
    jobs = [j.to_dict()["metadata"]["name"] for j in kube.list(Job, namespace=namespace)]
    assert [j for j in jobs if j in names] == completed
    assert HOLD not in (_bot(kube, namespace, "alpha")["metadata"].get("annotations") or {})


def test_a_restore_of_a_paused_bot_is_refused_instead_of_waiting_forever(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha", {"paused": True})
    _wait_phase(kube, namespace, "alpha", "Paused")
    _completed_backup(kube, namespace)
    _create_restore(kube, namespace, "undo")
    refused = _restore_phase(kube, namespace, "undo", "Failed")
    assert "is paused (spec.paused)" in refused["status"]["message"]
    assert HOLD not in (_bot(kube, namespace, "alpha")["metadata"].get("annotations") or {})


def test_a_bot_paused_while_its_api_stops_ends_the_restore_untouched(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _ready_bot_with_a_backup(kube, namespace)
    # A finalizer keeps the API pod Terminating, so the restore stays in StoppingApi.
    [pod] = kube.list(Pod, namespace=namespace, labels=API_PODS)
    pod_name = pod.to_dict()["metadata"]["name"]
    kube.patch(
        Pod,
        pod_name,
        {"metadata": {"finalizers": [STUCK]}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    try:
        _create_restore(kube, namespace, "undo")
        _restore_phase(kube, namespace, "undo", "StoppingApi")
        kube.patch(
            TraderBotResource,
            "alpha",
            {"spec": {"paused": True}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        abandoned = _restore_phase(kube, namespace, "undo", "Failed")
    finally:
        kube.patch(
            Pod,
            pod_name,
            {"metadata": {"finalizers": None}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
    assert "was paused (spec.paused) before its pods stopped" in abandoned["status"]["message"]
    assert "jobName" not in abandoned["status"]
    wait_event(kube, namespace, "undo", reason="RestoreAbandoned", type_="Warning")
    assert HOLD not in (_bot(kube, namespace, "alpha")["metadata"].get("annotations") or {})
    assert not list(kube.list(Job, namespace=namespace, labels={"traderbot.dev/restore": "undo"}))


@pytest.mark.parametrize("started_by", ["schedule", "TraderBotBackup"])
def test_a_restore_waits_for_a_running_backup_job_and_suspends_the_schedule(
    kube: Client, namespace: str, operator: OperatorRunner, started_by: str
) -> None:
    _ready_bot_with_a_backup(kube, namespace)
    if started_by == "schedule":
        # A scheduled run still going: a suspended Job from the CronJob's template, in
        # the CronJob's active list as its controller keeps it.
        job_from_cronjob(kube, namespace, cronjob="alpha-backup", name=RUNNING, suspend=True)
        job_uid = _get(kube, Job, RUNNING, namespace)["metadata"]["uid"]
        kube.patch(
            CronJob.Status,
            "alpha-backup",
            {"status": {"active": [{"kind": "Job", "name": RUNNING, "uid": job_uid}]}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
    else:
        # An on-demand backup created just before the restore, its Job still going
        # (suspended: kwok would end it at once); the operator follows that Job.
        job_from_cronjob(
            kube, namespace, cronjob="alpha-backup", name=RUNNING, suspend=True, run=RUNNING
        )
        _create_backup(kube, namespace, RUNNING, bot="alpha")
        run_phase(kube, TraderBotBackupResource, namespace, RUNNING, "Pending")
    _create_restore(kube, namespace, "undo")

    def waiting() -> dict[str, Any] | None:
        body = _get(kube, TraderBotRestoreResource, "undo", namespace)
        message = (body.get("status") or {}).get("message") or ""
        # NB: "waiting for 1 API pod(s) and backup Job(s) ... to end" comes first while
        # the API pods stop; only the Job left is the state this test checks.
        alone = f"waiting for backup Job(s) {RUNNING} to end"
        return body if alone in message else None

    eventually(waiting, what="the restore waiting for the running backup alone")
    assert _api_pods(kube, namespace) == 0
    assert _get(kube, CronJob, "alpha-backup", namespace)["spec"]["suspend"] is True
    assert not list(kube.list(Job, namespace=namespace, labels={"traderbot.dev/restore": "undo"}))

    # The run ends (its pod succeeds); the restore goes on.
    kube.patch(Job, RUNNING, {"spec": {"suspend": False}}, namespace=namespace)
    _restore_phase(kube, namespace, "undo", "Completed")


@pytest.mark.parametrize(
    ("resource", "spec", "field"),
    [
        ("TraderBotBackup", {"botName": "../../other/traderbots/x"}, "spec.botName"),
        ("TraderBotRestore", {"botName": "alpha", "backupName": "../../etc"}, "spec.backupName"),
        ("TraderBotRestore", {"botName": "a/b", "backupName": "nightly"}, "spec.botName"),
    ],
    ids=["backup-bot-climbs", "restore-backup-climbs", "restore-bot-with-slash"],
)
@pytest.mark.usefixtures("crd")
def test_records_naming_objects_outside_the_namespace_are_refused_by_the_api_server(
    kube: Client, namespace: str, resource: str, spec: dict[str, Any], field: str
) -> None:
    kinds = {
        "TraderBotBackup": TraderBotBackupResource,
        "TraderBotRestore": TraderBotRestoreResource,
    }
    body = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": resource,
        "metadata": {"name": "hostile"},
        "spec": spec,
    }
    with pytest.raises(ApiError) as refused:
        kube.create(kinds[resource].from_dict(body), namespace=namespace)
    assert refused.value.status.code == 422
    assert f"{field}: Invalid value" in (refused.value.status.message or "")


def test_with_the_operator_gone_deleting_bots_restores_and_their_namespace_completes(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    """Issue 12, item 6: no finalizer of the operator's holds a deletion it cannot run."""
    _ready_bot_with_a_backup(kube, namespace)
    _create_restore(kube, namespace, "broken", labels={"traderbot.dev/kwok-fail": "true"})
    _restore_phase(kube, namespace, "broken", "Failed")
    _create_restore(kube, namespace, "refused")  # the bot is held by "broken": refused
    _restore_phase(kube, namespace, "refused", "Failed")
    _wait_timer_passes(operator, 2)
    for resource, name in (
        (TraderBotResource, "alpha"),
        (TraderBotRestoreResource, "broken"),
        (TraderBotRestoreResource, "refused"),
        (TraderBotBackupResource, "nightly"),
    ):
        assert not _get(kube, resource, name, namespace)["metadata"].get("finalizers"), name
    operator.stop()  # as `helm uninstall` of the operator would

    kube.delete(TraderBotResource, "alpha", namespace=namespace)
    eventually(
        lambda: not list(kube.list(TraderBotResource, namespace=namespace)),
        what="the bot gone without the operator",
        timeout=60,
    )
    kube.delete(Namespace, namespace)

    def namespace_gone() -> bool:
        names = [n.metadata.name for n in kube.list(Namespace) if n.metadata is not None]
        return namespace not in names

    eventually(namespace_gone, what=f"namespace {namespace} gone without the operator", timeout=120)
