"""Fixtures of the cluster tier: a real API server, a namespace per test, a client.

By default the session starts a local control plane (traderbot_devtools)
from the binaries hack/k8s-binaries.sh builds (or ``KUBEBUILDER_ASSETS``). To
run the same tests against kind or a real cluster, opt in explicitly:

    pytest tests/cluster --use-existing-cluster --kubeconfig ~/.kube/config
    TRADERBOT_USE_EXISTING_CLUSTER=1 TRADERBOT_TEST_KUBECONFIG=~/.kube/config pytest

NB: pytest knows these options from the root only if tests/conftest.py lists
``support.cluster_options`` in ``pytest_plugins``; otherwise name this folder
(``pytest tests/cluster ...``). The environment variables work from anywhere.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, ServiceAccount

from support.cluster_options import add_cluster_options
from support.kube import ClusterUnderTest, client_for, delete_if_present, eventually
from traderbot_devtools import Binaries, BinariesMissingError, LocalCluster

NAMESPACE_LABEL = "traderbot.dev/test-namespace"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_cluster_options(parser)


def _use_existing(config: pytest.Config) -> bool:
    flag = bool(config.getoption("use_existing_cluster", default=False))
    return flag or os.environ.get("TRADERBOT_USE_EXISTING_CLUSTER", "") in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterUnderTest]:
    workdir = tmp_path_factory.mktemp("cluster")
    if _use_existing(request.config):
        path = request.config.getoption("kubeconfig", default=None) or os.environ.get(
            "TRADERBOT_TEST_KUBECONFIG"
        )
        if not path:
            pytest.fail("--use-existing-cluster needs --kubeconfig or TRADERBOT_TEST_KUBECONFIG")
        yield ClusterUnderTest(kubeconfig=Path(path).expanduser(), local=None, workdir=workdir)
        return
    try:
        binaries = Binaries.find()
    except BinariesMissingError as error:
        pytest.fail(f"{error} (or run with --use-existing-cluster)")
    # NB: a provisioner gives every claim its own volume (see cluster/volumes.py).
    with LocalCluster(binaries=binaries, storage_provisioner=True) as local:
        yield ClusterUnderTest(kubeconfig=local.kubeconfig, local=local, workdir=workdir)


@pytest.fixture(scope="session")
def kube(cluster: ClusterUnderTest) -> Client:
    """An admin lightkube client for the whole session."""
    return client_for(cluster.kubeconfig)


def _namespace_name(node_name: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"t-{stem}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(kube: Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace, ready for Pods (its default ServiceAccount exists)."""
    name = _namespace_name(request.node.name)
    kube.create(Namespace(metadata=ObjectMeta(name=name, labels={NAMESPACE_LABEL: "true"})))
    eventually(
        lambda: kube.get(ServiceAccount, "default", namespace=name),
        what=f"ServiceAccount {name}/default",
    )
    yield name
    delete_if_present(kube, Namespace, name)  # a test may have deleted its own namespace
