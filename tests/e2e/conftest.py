"""Fixtures of the e2e tier: real pods, images built from our Dockerfile, the chart installed.

By default the session builds every image here (hack/images.sh: the
Dockerfile's two targets on a Debian base made with debootstrap, the local
database and Redis images, the pause image), starts the local control plane
with a real node (kubelet + containerd, traderbot_devtools), loads the
images into it and `helm install`s the operator chart. The operator then runs
in its pod, under the chart's ServiceAccount and RBAC.

On kind or a real cluster, name the cluster and the images instead (the images
must be pullable there, e.g. `kind load docker-image`):

    pytest tests/e2e --use-existing-cluster --kubeconfig ~/.kube/config \\
        --e2e-images images.env

where images.env holds the KEY=VALUE lines of ``E2E_IMAGE_KEYS`` (the same
file hack/images.sh writes), or the same keys as environment variables.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightkube import Client

from e2e.stack import (
    REPO_ROOT,
    Bot,
    Images,
    Kubectl,
    OperatorRelease,
    Stack,
    bot_manifest,
    find_kubectl,
    unique,
)
from support.cluster_options import add_cluster_options
from support.helm import HelmCli
from support.kube import client_for
from traderbot_devtools import Binaries, BinariesMissingError, LocalCluster
from traderbot_devtools.images import image_list, split_reference
from unit.delivery.delivery_tools import find_helm

# The names of hack/images.sh's list (`name=NAME ref=REF id=ID archive=PATH` lines).
IMAGE_NAMES = {
    "operator": "operator",
    "workload": "workload",
    "workload-next": "workload_next",
    "workload-never-ready": "workload_broken",
    "postgres": "database",
    "redis": "redis",
}
SANDBOX_IMAGE_NAME = "pause"
OPERATOR_NAMESPACE_PREFIX = "tb-e2e-system"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_cluster_options(parser)


def _use_existing(config: pytest.Config) -> bool:
    flag = bool(config.getoption("use_existing_cluster", default=False))
    return flag or os.environ.get("TRADERBOT_USE_EXISTING_CLUSTER", "") in {"1", "true", "yes"}


def images_from(entries: dict[str, dict[str, str]]) -> Images:
    """The tier's Images; ``TRADERBOT_E2E_IMAGE_<NAME>`` environment variables win.

    NB: the three trader-api refs must share one repository: a TraderBot names
    its image once (spec.image) and picks the tag with spec.version.
    """
    refs: dict[str, str] = {}
    for name, role in IMAGE_NAMES.items():
        variable = "TRADERBOT_E2E_IMAGE_" + name.upper().replace("-", "_")
        ref = os.environ.get(variable) or entries.get(name, {}).get("ref")
        if not ref:
            pytest.fail(f"e2e image {name!r} not named: --e2e-images FILE or ${variable}")
        refs[role] = ref
    workload = [
        split_reference(refs[role]) for role in ("workload", "workload_next", "workload_broken")
    ]
    repositories = {repository for repository, _ in workload}
    if len(repositories) != 1:
        pytest.fail(f"the trader-api images must share one repository, not {sorted(repositories)}")
    return Images(
        operator=refs["operator"],
        workload_repository=workload[0][0],
        workload_version=workload[0][1],
        workload_next_version=workload[1][1],
        workload_broken_version=workload[2][1],
        database=refs["database"],
        redis=refs["redis"],
    )


def build_images() -> dict[str, dict[str, str]]:
    """Build (or find up to date) every image with hack/images.sh; return its list."""
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "hack" / "images.sh")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"hack/images.sh failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return image_list(result.stdout)


@pytest.fixture(scope="package")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The cluster with a real node and the images: local by default, any kubeconfig on request."""
    listed = request.config.getoption("e2e_images", default=None)
    if _use_existing(request.config):
        path = request.config.getoption("kubeconfig", default=None) or os.environ.get(
            "TRADERBOT_TEST_KUBECONFIG"
        )
        if not path:
            pytest.fail("--use-existing-cluster needs --kubeconfig or TRADERBOT_TEST_KUBECONFIG")
        entries = image_list(Path(listed).read_text()) if listed else {}
        yield Stack(kubeconfig=Path(path).expanduser(), images=images_from(entries), local=None)
        return
    entries = image_list(Path(listed).read_text()) if listed else build_images()
    images = images_from(entries)
    archives = sorted({Path(entry["archive"]) for entry in entries.values() if "archive" in entry})
    try:
        binaries = Binaries.find()
    except BinariesMissingError as error:
        pytest.fail(f"{error} (or run with --use-existing-cluster)")
    with LocalCluster(
        binaries=binaries,
        real_node=True,
        images=archives,
        sandbox_image=entries[SANDBOX_IMAGE_NAME]["ref"],
        storage_provisioner=True,
    ) as local:
        yield Stack(kubeconfig=local.kubeconfig, images=images, local=local)


@pytest.fixture(scope="package")
def images(stack: Stack) -> Images:
    return stack.images


@pytest.fixture(scope="package")
def kube(stack: Stack) -> Client:
    return client_for(stack.kubeconfig)


@pytest.fixture(scope="package")
def kubectl(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(binary=find_kubectl(), kubeconfig=stack.kubeconfig)


@pytest.fixture(scope="package")
def operator_release(
    stack: Stack, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorRelease]:
    """`helm install` the chart with the operator image built here; uninstalled at the end.

    The CRDs come with the chart (its crds/ folder); the operator runs in its
    pod under the chart's ServiceAccount, so RBAC is the chart's own.
    """
    release = OperatorRelease(
        helm=HelmCli(
            binary=find_helm(),
            kubeconfig=stack.kubeconfig,
            home=tmp_path_factory.mktemp("helm-home"),
        ),
        kubectl=kubectl,
        namespace=unique(OPERATOR_NAMESPACE_PREFIX),
        images=stack.images,
    )
    release.install()
    yield release
    release.uninstall()


# Pods that break the "restricted" Pod Security Standard are refused in the bots' namespaces.
RESTRICTED = (
    "pod-security.kubernetes.io/enforce=restricted",
    "pod-security.kubernetes.io/enforce-version=latest",
)


def make_bot_namespace(kubectl: Kubectl, prefix: str = "tb-e2e") -> Kubectl:
    """A new namespace that enforces "restricted", and kubectl pointed at it."""
    namespace = unique(prefix)
    kubectl("create", "namespace", namespace)
    kubectl("label", "namespace", namespace, *RESTRICTED)
    return kubectl.in_namespace(namespace)


def apply_bot(namespaced: Kubectl, manifest: dict[str, object]) -> Bot:
    namespaced("apply", "-f", "-", stdin=json.dumps(manifest))
    metadata = manifest["metadata"]
    assert isinstance(metadata, dict)
    assert namespaced.namespace is not None
    return Bot(name=str(metadata["name"]), namespace=namespaced.namespace, kubectl=namespaced)


def delete_namespace(kubectl: Kubectl, namespace: str) -> None:
    """Delete a test namespace and wait, so the next test has the node's room back."""
    kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=300s", timeout=330)


@pytest.fixture(scope="package")
def bot(kubectl: Kubectl, operator_release: OperatorRelease, images: Images) -> Iterator[Bot]:
    """The session's bot ``alpha``: every component on real pods, Ready.

    Tests that change it put it back as they found it (Ready, one replica,
    the first version), so they can run in any order.
    """
    namespaced = make_bot_namespace(kubectl)
    made = apply_bot(namespaced, bot_manifest("alpha", images))
    made.wait_phase("Ready")
    made.record_first_ready_pods(("api", "database", "cache"))
    yield made
    assert namespaced.namespace is not None
    delete_namespace(kubectl, namespaced.namespace)


# Real pods take longer than the suite's default 300 s per test (a restore, an upgrade
# with its backup and a rollback deadline); a test may still set its own.
E2E_TEST_TIMEOUT = 900


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(E2E_TEST_TIMEOUT))
