"""The backup-verification CronJob on a real API server: built from the spec, not a backup."""

from __future__ import annotations

from typing import Any

from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.resources.batch_v1 import CronJob, Job

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_operator import _create_bot, _get, _wait_phase, _wait_timer_passes
from support.kube import eventually
from traderbot_operator.kube import TraderBotBackupResource


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
    # What the CronJob controller does on schedule (and `kubectl create job --from=...`).
    kube.create(
        from_dict(
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": "alpha-verify-29440980",
                    "namespace": namespace,
                    "labels": template["metadata"]["labels"],
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "CronJob",
                            "name": "alpha-verify",
                            "uid": cronjob["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": template["spec"],
            }
        )
    )
    eventually(
        lambda: (_get(kube, Job, "alpha-verify-29440980", namespace).get("status") or {}).get(
            "succeeded"
        ),
        what="the verification Job succeeded",
        timeout=60,
    )
    _wait_timer_passes(operator, 2)
    assert _backup_records(kube, namespace) == []
