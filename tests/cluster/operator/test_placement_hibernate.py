"""Pod placement, owned names refused, and hibernation, against a real API server (kwok nodes)."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.batch_v1 import CronJob
from lightkube.resources.core_v1 import PersistentVolumeClaim, Pod, Secret
from lightkube.resources.scheduling_v1 import PriorityClass

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_operator import (
    INSTANCE,
    _bot,
    _conditions,
    _create_bot,
    _get,
    _patch_spec,
    _wait_phase,
    _wait_timer_passes,
    kubectl_get_tb,
)
from support.kube import ClusterUnderTest, eventually

PRIORITY_CLASS = "traderbot-test-placement"


def _placement(component: str) -> dict[str, Any]:
    """Placement every kwok node satisfies, so the bot still gets Ready."""
    return {
        "nodeSelector": {"type": "kwok"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "trading",
                         "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}]}}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "ScheduleAnyway"}],
        "priorityClassName": PRIORITY_CLASS,
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "labels": {"team": "quant", "placed": component},
        "annotations": {"example.com/owner": f"desk-{component}"},
    }  # fmt: skip


def _priority_class(kube: Client) -> None:
    try:
        kube.create(PriorityClass(metadata=ObjectMeta(name=PRIORITY_CLASS), value=1000))
    except ApiError as error:
        if error.status.code != 409:
            raise


def _assert_placed(template: dict[str, Any], component: str, where: str) -> None:
    want = _placement(component)
    pod = template["spec"]
    for field in ("nodeSelector", "affinity", "imagePullSecrets"):
        assert pod[field] == want[field], (where, field)
    # NB: on a pod, admission adds the not-ready/unreachable tolerations to ours.
    assert all(t in pod["tolerations"] for t in want["tolerations"]), where
    assert pod["priorityClassName"] == PRIORITY_CLASS, where
    [constraint] = pod["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "kubernetes.io/hostname", where
    assert constraint["labelSelector"]["matchLabels"][INSTANCE] == "placed", where
    assert template["metadata"]["labels"]["placed"] == component, where
    assert template["metadata"]["annotations"]["example.com/owner"] == f"desk-{component}", where


def test_placement_lands_in_every_components_pod_spec_and_a_change_rolls_the_pods(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _priority_class(kube)
    spec = {
        "api": {"pod": _placement("api")},
        "database": {"pod": _placement("database")},
        "redis": {"pod": _placement("redis")},
        "backup": {"pod": _placement("backup")},
    }
    _create_bot(kube, namespace, "placed", spec)
    _wait_phase(kube, namespace, "placed", "Ready")
    api = _get(kube, Deployment, "placed-api", namespace)["spec"]["template"]
    _assert_placed(api, "api", "Deployment")
    _assert_placed(_get(kube, StatefulSet, "placed-db", namespace)["spec"]["template"],
                   "database", "database StatefulSet")  # fmt: skip
    _assert_placed(_get(kube, StatefulSet, "placed-redis", namespace)["spec"]["template"],
                   "redis", "Redis StatefulSet")  # fmt: skip
    for cronjob in ("placed-backup", "placed-verify"):
        template = _get(kube, CronJob, cronjob, namespace)["spec"]["jobTemplate"]["spec"]
        _assert_placed(template["template"], "backup", cronjob)
    # The pods themselves, as the API server stored them (with its admission applied).
    for component, pod_name in (("database", "placed-db-0"), ("redis", "placed-redis-0")):
        _assert_placed(_get(kube, Pod, pod_name, namespace), component, pod_name)
    [api_pod] = [
        p.to_dict()
        for p in kube.list(Pod, namespace=namespace, labels={INSTANCE: "placed", "placed": "api"})
    ]
    _assert_placed(api_pod, "api", "API pod")
    assert api_pod["spec"]["priority"] == 1000

    # Converged with all of it set: the drift timer writes nothing.
    _wait_timer_passes(operator, 2)
    writes = operator.writes
    _wait_timer_passes(operator, 2)
    assert operator.writes == writes

    # A placement change is a pod-template change: the API pods roll.
    old_pod = api_pod["metadata"]["name"]
    _patch_spec(kube, namespace, "placed", {"api": {"pod": {"labels": {"team": "risk"}}}})

    def rolled() -> bool:
        pods = kube.list(Pod, namespace=namespace, labels={INSTANCE: "placed", "team": "risk"})
        names = [p.to_dict()["metadata"]["name"] for p in pods]
        return bool(names) and old_pod not in names

    eventually(rolled, what="API pods rolled with the new label", timeout=120)
    _wait_phase(kube, namespace, "placed", "Ready")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"api": {"env": [{"name": "LOG_LEVEL", "value": "debug"}]}},
            "spec.api.env may not set PORT, LOG_LEVEL",
        ),
        (
            {"api": {"env": [{"name": "database_url", "value": "postgres://elsewhere"}]}},
            "spec.api.env may not set",
        ),
        (
            {"database": {"pod": {"labels": {"app.kubernetes.io/instance": "other"}}}},
            "spec.database.pod.labels: Invalid value",
        ),
        (
            {"backup": {"pod": {"labels": {"traderbot.dev/scheduled": "true"}}}},
            "are set by the operator (they select and identify the bot's pods)",
        ),
        (
            {"api": {"pod": {"annotations": {"traderbot.dev/config-hash": "x"}}}},
            "spec.api.pod.annotations: Invalid value",
        ),
    ],
    ids=[
        "env-log-level",
        "env-database-url-any-case",
        "selector-label",
        "traderbot-label",
        "config-hash-annotation",
    ],
)
@pytest.mark.usefixtures("crd")
def test_names_the_operator_owns_are_refused_at_admission(
    kube: Client, namespace: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiError) as refused:
        _create_bot(kube, namespace, "owned", spec)
    assert refused.value.status.code == 422
    assert message in (refused.value.status.message or "")


def test_a_label_key_kubernetes_refuses_is_reported_and_nothing_is_deployed(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "badkey", {"redis": {"pod": {"labels": {"not a key!": "x"}}}})
    failed = _wait_phase(kube, namespace, "badkey", "Failed")
    reconciled = _conditions(failed)["Reconciled"]
    assert reconciled["reason"] == "InvalidSpec"
    assert "spec.redis.pod.labels.not a key!" in reconciled["message"]
    with pytest.raises(ApiError):
        kube.get(StatefulSet, "badkey-redis", namespace=namespace)


def _uids(kube: Client, kind: Any, namespace: str, names: list[str]) -> dict[str, str]:
    return {name: _get(kube, kind, name, namespace)["metadata"]["uid"] for name in names}


def test_a_hibernating_bot_keeps_its_data_and_resumes(
    kube: Client, namespace: str, operator: OperatorRunner, cluster: ClusterUnderTest
) -> None:
    _create_bot(kube, namespace, "bear", {"replicas": 2})
    _wait_phase(kube, namespace, "bear", "Ready")
    claims = _uids(kube, PersistentVolumeClaim, namespace,
                   ["data-bear-db-0", "data-bear-redis-0", "bear-backup"])  # fmt: skip
    secrets = _uids(kube, Secret, namespace,
                    ["bear-db-credentials", "bear-redis-credentials", "bear-api-key"])  # fmt: skip
    data = {name: _get(kube, Secret, name, namespace)["data"] for name in secrets}

    _patch_spec(kube, namespace, "bear", {"hibernate": True})
    asleep = _wait_phase(kube, namespace, "bear", "Hibernated")
    assert asleep["status"]["ready"] == "0/0"
    assert _get(kube, Deployment, "bear-api", namespace)["spec"]["replicas"] == 0
    for name in ("bear-db", "bear-redis"):
        assert _get(kube, StatefulSet, name, namespace)["spec"]["replicas"] == 0
    for name in ("bear-backup", "bear-verify"):
        assert _get(kube, CronJob, name, namespace)["spec"]["suspend"] is True
    assert list(kube.list(Pod, namespace=namespace, labels={INSTANCE: "bear"})) == []
    assert _conditions(asleep)["BackupScheduled"]["reason"] == "Hibernated"
    assert _uids(kube, PersistentVolumeClaim, namespace, list(claims)) == claims
    assert _uids(kube, Secret, namespace, list(secrets)) == secrets

    assert kubectl_get_tb(cluster, namespace, "bear")[:3] == ["bear", "Hibernated", "0/0"]

    _patch_spec(kube, namespace, "bear", {"hibernate": False})
    awake = _wait_phase(kube, namespace, "bear", "Ready")
    assert awake["status"]["ready"] == "2/2"
    for name in ("bear-backup", "bear-verify"):
        assert _get(kube, CronJob, name, namespace)["spec"]["suspend"] is False
    assert _uids(kube, PersistentVolumeClaim, namespace, list(claims)) == claims
    assert _uids(kube, Secret, namespace, list(secrets)) == secrets
    assert {name: _get(kube, Secret, name, namespace)["data"] for name in secrets} == data
    assert _bot(kube, namespace, "bear")["spec"]["hibernate"] is False
