"""Fixtures of the operator's cluster tests: the CRD, least-privilege RBAC, the operator.

The operator runs in-process against the real API server with a ServiceAccount
token bound to the ClusterRole built from ``traderbot_operator.rbac`` (the same
rules docs/operator.md lists), so a missing permission fails these tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding

from cluster.operator.runner import OperatorRunner
from cluster.volumes import host_path_volumes
from support.kube import ClusterUnderTest, eventually
from traderbot_operator.rbac import cluster_role, cluster_role_binding

ROOT = Path(__file__).resolve().parents[3]
CRD_PATHS = sorted((ROOT / "crds").glob("traderbot.dev_*.yaml"))
SYSTEM_NAMESPACE = "traderbot-system"
OPERATOR_ACCOUNT = "traderbot-operator"
FIELD_MANAGER = "traderbot-tests"
PVS_PER_TEST = 4


def _established(kube: Client, name: str) -> bool:
    crd = kube.get(CustomResourceDefinition, name)
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture(scope="session")
def crd(kube: Client) -> dict[str, Any]:
    """Install (server-side apply) the operator's CRDs; return TraderBot's once served."""
    bodies: dict[str, dict[str, Any]] = {}
    for path in CRD_PATHS:
        body: dict[str, Any] = yaml.safe_load(path.read_text())
        kube.apply(from_dict(body), field_manager=FIELD_MANAGER, force=True)
        bodies[body["metadata"]["name"]] = body
    for name in bodies:
        eventually(partial(_established, kube, name), what=f"CRD {name} Established")
    return bodies["traderbots.traderbot.dev"]


@pytest.fixture(scope="session")
def operator_kubeconfig(kube: Client, cluster: ClusterUnderTest, crd: dict[str, Any]) -> Path:
    """Return a kubeconfig for a ServiceAccount holding only the operator's ClusterRole."""
    try:
        kube.create(Namespace(metadata=ObjectMeta(name=SYSTEM_NAMESPACE)))
    except ApiError as error:
        if error.status.code != 409:
            raise
    kube.apply(
        ServiceAccount(metadata=ObjectMeta(name=OPERATOR_ACCOUNT, namespace=SYSTEM_NAMESPACE)),
        field_manager=FIELD_MANAGER,
    )
    kube.apply(from_dict(cluster_role()), field_manager=FIELD_MANAGER, force=True)
    kube.apply(
        from_dict(
            cluster_role_binding(service_account=OPERATOR_ACCOUNT, namespace=SYSTEM_NAMESPACE)
        ),
        field_manager=FIELD_MANAGER,
        force=True,
    )
    eventually(lambda: kube.get(ClusterRole, "traderbot-operator"), what="ClusterRole")
    eventually(lambda: kube.get(ClusterRoleBinding, OPERATOR_ACCOUNT), what="ClusterRoleBinding")
    if cluster.local is not None:
        return cluster.local.kubeconfig_for_service_account(SYSTEM_NAMESPACE, OPERATOR_ACCOUNT)
    return cluster.serviceaccount_kubeconfig(kube, SYSTEM_NAMESPACE, OPERATOR_ACCOUNT)


@pytest.fixture
def volumes(kube: Client, namespace: str) -> Iterator[list[str]]:
    """Make sure the bot's claims can bind (see cluster/volumes.py)."""
    names = [f"pv-{namespace}-{i}-{secrets.token_hex(2)}"[:63] for i in range(PVS_PER_TEST)]
    with host_path_volumes(kube, names, labels={"traderbot.dev/test-namespace": namespace}) as made:
        yield made


@pytest.fixture
def operator(
    operator_kubeconfig: Path, namespace: str, volumes: list[str]
) -> Iterator[OperatorRunner]:
    """Run the operator for this test's namespace; stop it afterwards."""
    runner = OperatorRunner(kubeconfig=operator_kubeconfig, namespace=namespace).start()
    try:
        yield runner
    finally:
        runner.stop()
