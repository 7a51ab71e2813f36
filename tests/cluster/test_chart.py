"""The traderbot-operator chart on a real API server: install, least privilege in action, upgrade.

The operator runs in-process (kwok runs no containers) but with the
credentials of the ServiceAccount the chart created and the RBAC the chart
granted, so "the chart's RBAC is enough" and "and not more" are both checked
against the real authorizer, not against a list.

The upgrade test starts from the previous chart release, taken from the
repository's history (the chart and the operator code as of the last commit
with another chart version), and runs that operator code as its own process
before the upgrade. ``TRADERBOT_PREVIOUS_CHART`` (a chart folder or .tgz) names
another previous chart instead; the operator before the upgrade is then the
working tree's. Without either (a shallow clone) the test fails.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.models.core_v1 import Container, PodSpec, SecurityContext
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.batch_v1 import CronJob
from lightkube.resources.core_v1 import (
    Namespace,
    PersistentVolumeClaim,
    Pod,
    Secret,
    Service,
)
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.policy_v1 import PodDisruptionBudget

from cluster.operator.process import OperatorProcess
from cluster.operator.runner import OperatorRunner
from cluster.volumes import PVS_PER_BOT, host_path_volumes
from support.helm import HelmCli
from support.kube import ClusterUnderTest, client_for, delete_if_present, eventually
from traderbot_operator.kube import TraderBotResource
from unit.delivery.delivery_tools import (
    CHART_DIR,
    DECLARED_UPGRADE_CHANGES,
    REPO_ROOT,
    PreviousReleaseMissingError,
    Snapshot,
    changed_by_upgrade,
    chart_version,
    find_helm,
    previous_release,
)

READY_TIMEOUT = 120.0
HELM_TIMEOUT = "120s"
INSTANCE = "app.kubernetes.io/instance"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
CHILD_KINDS: tuple[Any, ...] = (
    Secret,
    Service,
    Deployment,
    StatefulSet,
    PodDisruptionBudget,
    NetworkPolicy,
    CronJob,
)


@pytest.fixture(scope="module")
def helm(cluster: ClusterUnderTest, tmp_path_factory: pytest.TempPathFactory) -> HelmCli:
    return HelmCli(
        binary=find_helm(),
        kubeconfig=cluster.kubeconfig,
        home=tmp_path_factory.mktemp("helm-home"),
    )


@pytest.fixture
def make_namespace(kube: Client) -> Iterator[Callable[[str], str]]:
    """Create namespaces for one test (the release's, the bots', a foreign one), PSS restricted."""
    made: list[str] = []

    def make(role: str) -> str:
        name = f"t-chart-{role}-{secrets.token_hex(3)}"
        # Pods that break the "restricted" Pod Security Standard are refused here.
        kube.create(Namespace(metadata=ObjectMeta(name=name, labels=RESTRICTED)))
        made.append(name)
        return name

    yield make
    for name in made:
        delete_if_present(kube, Namespace, name)


@pytest.fixture
def volumes(kube: Client) -> Iterator[list[str]]:
    """Make sure one bot's claims can bind (see cluster/volumes.py)."""
    names = [f"pv-chart-{secrets.token_hex(4)}" for _ in range(PVS_PER_BOT)]
    with host_path_volumes(kube, names) as made:
        yield made


class Release:
    """One installed release of the chart; uninstalled at the end of the test."""

    def __init__(self, helm: HelmCli, *, namespace: str, watch: str) -> None:
        self.helm = helm
        self.name = f"op-{secrets.token_hex(3)}"
        self.namespace = namespace
        self.watch = watch
        self.fullname = f"{self.name}-traderbot-operator"

    def install(self, chart: Path | str, *extra: str) -> None:
        self.helm(
            "install", self.name, str(chart), "--namespace", self.namespace,
            "--set", f"watchNamespaces={{{self.watch}}}",
            "--wait", "--timeout", HELM_TIMEOUT, *extra,
        )  # fmt: skip

    def upgrade(self, *extra: str) -> None:
        self.helm(
            "upgrade", self.name, str(CHART_DIR), "--namespace", self.namespace,
            "--reuse-values", "--wait", "--timeout", HELM_TIMEOUT, *extra,
        )  # fmt: skip

    def uninstall(self) -> None:
        self.helm("uninstall", self.name, "--namespace", self.namespace, "--wait")


@pytest.fixture
def release(
    helm: HelmCli, make_namespace: Callable[[str], str], volumes: list[str]
) -> Iterator[Release]:
    installed = Release(helm, namespace=make_namespace("system"), watch=make_namespace("bots"))
    yield installed
    statuses = json.loads(helm("list", "--namespace", installed.namespace, "-o", "json"))
    if any(item["name"] == installed.name for item in statuses):
        installed.uninstall()


def operator_credentials(cluster: ClusterUnderTest, kube: Client, release: Release) -> Path:
    """Return a kubeconfig for the ServiceAccount the chart created (its token, its RBAC)."""
    if cluster.local is not None:
        return cluster.local.kubeconfig_for_service_account(release.namespace, release.fullname)
    return cluster.serviceaccount_kubeconfig(kube, release.namespace, release.fullname)


def create_example_bot(kube: Client, namespace: str) -> str:
    body = yaml.safe_load((REPO_ROOT / "examples" / "traderbot-minimal.yaml").read_text())
    kube.create(TraderBotResource.from_dict(body), namespace=namespace)
    name: str = body["metadata"]["name"]
    return name


def as_dict(obj: Any) -> dict[str, Any]:
    """Return a lightkube object as a plain dict (generic resources are untyped)."""
    found: dict[str, Any] = obj.to_dict()
    return found


def wait_ready(kube: Client, namespace: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        bot = as_dict(kube.get(TraderBotResource, name, namespace=namespace))
        return bot if bot.get("status", {}).get("phase") == "Ready" else None

    found: dict[str, Any] = eventually(
        ready, what=f"TraderBot {namespace}/{name} Ready", timeout=READY_TIMEOUT
    )
    return found


def snapshot(kube: Client, namespace: str, bot: str) -> Snapshot:
    """Return (kind, name) -> (uid, what a writer would change).

    NB: resourceVersion is left out on purpose: Kubernetes' own controllers keep
    updating the status of Deployments and StatefulSets (kwok reports pods), which
    is not "touching the bot". uid catches a re-creation; the rest covers spec,
    data, labels, annotations, owner references and generation.
    """
    found = {}
    objects: list[Any] = [kube.get(TraderBotResource, bot, namespace=namespace)]
    for kind in CHILD_KINDS:
        objects += list(kube.list(kind, namespace=namespace, labels={INSTANCE: bot}))
    for obj in objects:
        body = as_dict(obj)
        meta = body["metadata"]
        written = {
            "spec": body.get("spec"),
            "data": body.get("data"),
            "labels": meta.get("labels"),
            "annotations": meta.get("annotations"),
            "ownerReferences": meta.get("ownerReferences"),
            "generation": meta.get("generation"),
        }
        found[(type(obj).__name__, meta["name"])] = (meta["uid"], written)
    return found


def wait_converged(runner: OperatorRunner) -> None:
    """Wait until two drift-timer passes in a row write nothing (the bot is converged)."""

    def quiet() -> bool:
        writes, passes = runner.writes, runner.timer_passes()
        eventually(lambda: runner.timer_passes() >= passes + 2, what="two drift-timer passes")
        return runner.writes == writes

    eventually(quiet, what="two drift-timer passes without a write", timeout=READY_TIMEOUT)


def wait_process_converged(operator: OperatorProcess) -> None:
    """Wait until two drift-timer passes in a row write nothing, read from its /metrics."""

    def counters() -> tuple[float, float]:
        samples = operator.metrics()
        names = {name for name, _, _ in samples}
        wanted = {"traderbot_operator_reconcile_total", "traderbot_operator_child_writes_total"}
        assert wanted <= names, f"the operator serves no {wanted - names} to wait on"
        passes = sum(
            value
            for name, labels, value in samples
            if name == "traderbot_operator_reconcile_total" and labels.get("trigger") == "timer"
        )
        writes = sum(
            value for name, _, value in samples if name == "traderbot_operator_child_writes_total"
        )
        return passes, writes

    def quiet() -> bool:
        passes, writes = counters()
        eventually(lambda: counters()[0] >= passes + 2, what="two drift-timer passes")
        return counters()[1] == writes

    eventually(quiet, what="two drift-timer passes without a write", timeout=READY_TIMEOUT)


def put_crds(kube: Client, folder: Path) -> None:
    """Make the cluster's TraderBot CRDs exactly those of a chart (replace, not merge).

    NB: a server-side apply would keep fields another manager (helm) owns, so a
    newer CRD would not really go back to an older one.
    """
    for path in sorted(folder.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        try:
            live = kube.get(CustomResourceDefinition, body["metadata"]["name"])
        except ApiError as error:
            if error.status.code != 404:
                raise
            kube.create(from_dict(body))
            continue
        assert live.metadata is not None
        body["metadata"]["resourceVersion"] = live.metadata.resourceVersion
        kube.replace(from_dict(body))


def forbidden(call: Callable[[], object]) -> bool:
    try:
        call()
    except ApiError as error:
        return error.status.code == 403
    return False


def run_a_bot_before_the_upgrade(
    *, kube: Client, credentials: Path, namespace: str, source: Path | None, log: Path
) -> str:
    """Create the example bot and run it to Ready and converged; return its name.

    The operator is the previous release's code (``source``) in its own process,
    or the working tree's in-process when only a previous chart was given.
    """
    converge: Callable[[], None]
    stop: Callable[[], None]
    if source is None:
        runner = OperatorRunner(kubeconfig=credentials, namespace=namespace).start()
        converge, stop = partial(wait_converged, runner), runner.stop
    else:
        # NB: PYTHONPATH precedes the venv's editable path, so the console script
        # imports the previous release's traderbot_operator, not the working tree's.
        old = OperatorProcess(
            kubeconfig=credentials, namespaces=[namespace], log=log, env={"PYTHONPATH": str(source)}
        ).start()
        converge, stop = partial(wait_process_converged, old), old.stop
    try:
        bot = create_example_bot(kube, namespace)
        wait_ready(kube, namespace, bot)
        converge()
    finally:
        stop()
    return bot


def test_helm_install_brings_up_the_operator_deployment(
    helm: HelmCli, kube: Client, release: Release
) -> None:
    release.install(CHART_DIR)
    deployment = kube.get(Deployment, release.fullname, namespace=release.namespace).to_dict()
    # Two replicas by default (one leads, through a Lease the chart's Role grants).
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["status"].get("readyReplicas") == 2  # helm --wait saw them ready
    statuses = json.loads(helm("list", "--namespace", release.namespace, "-o", "json"))
    (status,) = [item for item in statuses if item["name"] == release.name]
    assert status["status"] == "deployed"
    version = chart_version((CHART_DIR / "Chart.yaml").read_text())
    assert status["chart"] == f"traderbot-operator-{version}"


def test_operator_with_the_charts_credentials_reconciles_but_cannot_read_foreign_secrets(
    cluster: ClusterUnderTest,
    kube: Client,
    release: Release,
    make_namespace: Callable[[str], str],
) -> None:
    release.install(CHART_DIR)
    credentials = operator_credentials(cluster, kube, release)
    runner = OperatorRunner(kubeconfig=credentials, namespace=release.watch).start()
    try:
        bot = create_example_bot(kube, release.watch)
        ready = wait_ready(kube, release.watch, bot)
        assert ready["status"]["ready"] == "1/1"
    finally:
        runner.stop()

    as_operator = client_for(credentials)
    assert as_operator.get(Secret, f"{bot}-db-credentials", namespace=release.watch)
    foreign = make_namespace("foreign")
    kube.create(
        Secret(metadata=ObjectMeta(name="not-yours"), stringData={"k": "v"}), namespace=foreign
    )
    assert forbidden(lambda: as_operator.get(Secret, "not-yours", namespace=foreign))
    assert forbidden(lambda: list(as_operator.list(Secret, namespace=foreign)))
    assert forbidden(lambda: list(as_operator.list(Secret, namespace="*")))
    assert forbidden(lambda: list(as_operator.list(TraderBotResource, namespace=foreign)))
    assert forbidden(
        lambda: as_operator.create(
            Secret(metadata=ObjectMeta(name="planted"), stringData={"k": "v"}), namespace=foreign
        )
    )


def test_helm_uninstall_keeps_every_bot_and_its_data_and_their_namespace_still_deletes(
    cluster: ClusterUnderTest, kube: Client, release: Release
) -> None:
    """Issue 12.6: what `helm uninstall` leaves is what the chart's README says."""
    release.install(CHART_DIR)
    runner = OperatorRunner(
        kubeconfig=operator_credentials(cluster, kube, release), namespace=release.watch
    ).start()
    try:
        bot = create_example_bot(kube, release.watch)
        wait_ready(kube, release.watch, bot)
    finally:
        runner.stop()
    before = snapshot(kube, release.watch, bot)
    release.uninstall()

    # The operator is gone; the CRDs (Helm never deletes crds/), the bot, its children,
    # its Secrets and its volumes stay exactly as they were.
    assert not list(kube.list(Deployment, namespace=release.namespace))
    for crd in ("traderbots", "traderbotbackups", "traderbotrestores"):
        assert kube.get(CustomResourceDefinition, f"{crd}.traderbot.dev")
    assert snapshot(kube, release.watch, bot) == before
    claims = list(kube.list(PersistentVolumeClaim, namespace=release.watch))
    assert len(claims) == 3, [c.metadata.name for c in claims if c.metadata]  # db, Redis, backups

    # With no operator anywhere, deleting the bots' namespace completes: nothing
    # waits on a finalizer only the operator would remove.
    kube.delete(Namespace, release.watch)

    def gone() -> bool:
        try:
            kube.get(Namespace, release.watch)
        except ApiError as error:
            return error.status.code == 404
        return False

    eventually(gone, what=f"namespace {release.watch} deleted", timeout=180)


def test_helm_upgrade_from_the_previous_release_leaves_running_bots_untouched(
    cluster: ClusterUnderTest, kube: Client, release: Release, tmp_path: Path
) -> None:
    """Install the previous chart, let its operator run a bot, upgrade: the bot's objects stay.

    "Untouched": helm changes none of the bot's objects, and the new operator
    re-creates none and rewrites none of those a running bot depends on
    (its Secrets, Services, Deployment, StatefulSets, PodDisruptionBudgets and
    the TraderBot itself: spec, data, labels, annotations, owner references,
    generation). It may add children the old one did not build, update a
    CronJob or NetworkPolicy in place (UPDATABLE_ON_UPGRADE), and make the
    pod-template changes the release declares (DECLARED_UPGRADE_CHANGES).
    """
    explicit = os.environ.get("TRADERBOT_PREVIOUS_CHART")
    source: Path | None = None
    declared: dict[tuple[str, str], frozenset[str]] = {}
    if explicit:
        previous = Path(explicit)
    else:
        try:
            found = previous_release(into=tmp_path / "previous")
        except PreviousReleaseMissingError as error:
            pytest.fail(str(error), pytrace=False)
        previous, source = found.chart, found.operator_source
        assert found.version != chart_version((CHART_DIR / "Chart.yaml").read_text())
        declared = DECLARED_UPGRADE_CHANGES.get(found.version, {})

    try:
        if not explicit:
            put_crds(kube, previous / "crds")
        release.install(previous)
        bot = run_a_bot_before_the_upgrade(
            kube=kube,
            credentials=operator_credentials(cluster, kube, release),
            namespace=release.watch,
            source=source,
            log=tmp_path / "previous-operator.log",
        )
        before = snapshot(kube, release.watch, bot)
        operator_generation = kube.get(
            Deployment, release.fullname, namespace=release.namespace
        ).to_dict()["metadata"]["generation"]

        # The documented upgrade: helm upgrade, then the CRDs (helm never upgrades them).
        release.upgrade("--set", "logFormat=plain", "--set", "verbose=true")
        put_crds(kube, CHART_DIR / "crds")
    finally:
        put_crds(kube, CHART_DIR / "crds")

    upgraded = kube.get(Deployment, release.fullname, namespace=release.namespace).to_dict()
    assert upgraded["metadata"]["generation"] > operator_generation  # the upgrade did apply
    assert upgraded["spec"]["template"]["spec"]["containers"][0]["args"] == ["--verbose"]
    assert upgraded["metadata"]["labels"]["helm.sh/chart"] == (
        f"traderbot-operator-{chart_version((CHART_DIR / 'Chart.yaml').read_text())}"
    )
    assert snapshot(kube, release.watch, bot) == before

    # The upgraded operator (same ServiceAccount, new token) settles without rewriting any.
    runner = OperatorRunner(
        kubeconfig=operator_credentials(cluster, kube, release), namespace=release.watch
    ).start()
    try:
        wait_converged(runner)
    finally:
        runner.stop()
    after = snapshot(kube, release.watch, bot)
    assert changed_by_upgrade(before, after, declared=declared) == {}


def test_restricted_namespaces_do_refuse_a_privileged_pod(
    kube: Client, make_namespace: Callable[[str], str]
) -> None:
    """Guard the guard: the namespaces above really enforce Pod Security "restricted"."""
    namespace = make_namespace("pss")
    privileged = Pod(
        metadata=ObjectMeta(name="privileged"),
        spec=PodSpec(
            containers=[
                Container(name="x", image="x:1", securityContext=SecurityContext(privileged=True))
            ]
        ),
    )
    assert forbidden(lambda: kube.create(privileged, namespace=namespace))
