"""Monitoring: a ServiceMonitor when the Prometheus Operator's CRD is served, pruned when off."""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_operator import _create_bot, _get, _patch_spec, _wait_phase
from support.kube import eventually
from traderbot_operator.kube import ServiceMonitorResource

# The ServiceMonitor kind as the Prometheus Operator serves it, without its long schema.
SERVICE_MONITOR_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {
            "kind": "ServiceMonitor",
            "listKind": "ServiceMonitorList",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def service_monitor_crd(kube: Client) -> None:
    kube.apply(from_dict(SERVICE_MONITOR_CRD), field_manager="traderbot-tests", force=True)

    def established() -> bool:
        crd = kube.get(CustomResourceDefinition, "servicemonitors.monitoring.coreos.com")
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    eventually(established, what="ServiceMonitor CRD Established")


@pytest.mark.usefixtures("service_monitor_crd")
def test_a_service_monitor_follows_spec_monitoring(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    monitoring = {"enabled": True, "interval": "15s", "labels": {"release": "prom"}}
    _create_bot(kube, namespace, "watched", {"monitoring": monitoring})
    _wait_phase(kube, namespace, "watched", "Ready")
    monitor = _get(kube, ServiceMonitorResource, "watched-api", namespace)
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "15s")
    assert endpoint["relabelings"][0]["targetLabel"] == "bot"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["metadata"]["ownerReferences"][0]["name"] == "watched"

    # A label and the interval changed on the bot reach the live ServiceMonitor; a
    # label taken off is removed (server-side apply drops what the operator stopped setting).
    _patch_spec(
        kube,
        namespace,
        "watched",
        {"monitoring": {"interval": "1m", "labels": {"team": "quant", "release": None}}},
    )

    def relabelled() -> bool:
        live = _get(kube, ServiceMonitorResource, "watched-api", namespace)
        return (
            live["spec"]["endpoints"][0]["interval"] == "1m"
            and live["metadata"]["labels"].get("team") == "quant"
            and "release" not in live["metadata"]["labels"]
        )

    eventually(relabelled, what="the ServiceMonitor's new interval and labels", timeout=60)

    _patch_spec(kube, namespace, "watched", {"monitoring": {"enabled": False}})

    def pruned() -> bool:
        try:
            kube.get(ServiceMonitorResource, "watched-api", namespace=namespace)
        except ApiError as error:
            return error.status.code == 404
        return False

    eventually(pruned, what="the ServiceMonitor deleted", timeout=60)
