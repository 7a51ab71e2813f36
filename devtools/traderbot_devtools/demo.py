"""``traderbot-cluster demo``: watch the operator build a trading stack, no Docker, no cloud.

On the detached local cluster (started or reused by the CLI) it installs the
CRDs, gives the operator a ServiceAccount holding only its own ClusterRole
(``traderbot_operator.rbac``), starts ``traderbot-operator`` as a background
process (recorded in the cluster's state, so ``traderbot-cluster down`` stops
it too), applies the examples and waits until every TraderBot is Ready.

Running it again reuses the cluster and the operator when they still run, and
re-applies the examples (a no-op for the operator when nothing changed).

The operator's liveness (``/healthz``) and metrics (``/metrics``) servers bind
127.0.0.1 on free ports (the demo keeps to loopback); their URLs are printed and
recorded with the operator, so ``traderbot-cluster status`` shows them too.

That is the kwok demo (``--kwok``): its pods turn Ready with no container. The
same steps on real pods (``--real-node``, the default where a real node can
run) are in ``demo_pods``; ``--node auto`` picks between them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

import yaml
from lightkube import ApiError, Client, KubeConfig
from lightkube.codecs import from_dict
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Namespace, ServiceAccount

from traderbot_devtools.binaries import Binaries, BinariesMissingError
from traderbot_devtools.localcluster import (
    LOOPBACK,
    ClusterAccess,
    addon_endpoints,
    addon_status,
    detached_has_storage,
    free_loopback_ports,
    log_tail,
    record_addon,
)
from traderbot_operator.rbac import cluster_role, cluster_role_binding

DEMO_NAMESPACE = "trading"
OPERATOR_NAMESPACE = "traderbot-system"
OPERATOR_ACCOUNT = "traderbot-operator"
OPERATOR_ADDON = "traderbot-operator"
FIELD_MANAGER = "traderbot-demo"
PART_OF = "traderbot"
# The operator keeps its token for its whole life (no reload): a week outlasts a demo.
OPERATOR_TOKEN_SECONDS = 7 * 24 * 3600
DEFAULT_EXAMPLES = (Path("examples/traderbot-minimal.yaml"),)
# kwok's pods are Ready at once; real ones pull nothing but run initdb and migrations.
DEFAULT_TIMEOUT = 180.0
# Which node the demo runs its pods on: "auto" is a real node where one can run.
NODE_AUTO = "auto"
NODE_REAL = "real"
NODE_KWOK = "kwok"
POLL_SECONDS = 0.5

TraderBot = create_namespaced_resource("traderbot.dev", "v1alpha1", "TraderBot", "traderbots")

Say = Callable[[str], None]


class DemoError(RuntimeError):
    """Raised when a demo step fails; the message says what to look at."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to its sub-command parser."""
    parser.add_argument(
        "--bin-dir", type=Path, default=None, help="binaries folder (default: the build cache)"
    )
    parser.add_argument(
        "--crds", type=Path, default=Path("crds"), help="CRD folder (default: %(default)s)"
    )
    parser.add_argument(
        "--example",
        type=Path,
        action="append",
        default=None,
        help="a TraderBot manifest to apply (repeatable; default: examples/traderbot-minimal.yaml)",
    )
    parser.add_argument(
        "--namespace",
        default=DEMO_NAMESPACE,
        help="namespace of the bots, the one the operator watches (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help=f"seconds to wait for every bot to be Ready (default: {DEFAULT_TIMEOUT:.0f} "
        "with kwok, more on real pods)",
    )
    node = parser.add_mutually_exclusive_group()
    node.add_argument(
        "--node",
        choices=(NODE_AUTO, NODE_REAL, NODE_KWOK),
        default=NODE_AUTO,
        help="real: pods run on a real node (root, images built here); kwok: fake pods, "
        "nothing runs; auto: real where possible, else kwok, saying why (default: %(default)s)",
    )
    node.add_argument("--real-node", dest="node", action="store_const", const=NODE_REAL)
    node.add_argument("--kwok", dest="node", action="store_const", const=NODE_KWOK)
    parser.add_argument(
        "--images-script",
        type=Path,
        default=Path("hack/images.sh"),
        help="what builds the images for real pods (default: %(default)s)",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        default=Path("charts/traderbot-operator"),
        help="the operator's chart, installed with helm on real pods (default: %(default)s)",
    )


class OperatorWatch(Protocol):
    """What the wait for Ready asks of the operator, a local process or a pod.

    NB: a dead operator never makes a bot Ready; saying so at once beats
    waiting out the deadline.
    """

    def problem(self) -> str | None:
        """Why the operator cannot be reconciling now, or None."""

    def log_tail(self) -> str:
        """Where its log is and its last lines, for a failure message."""


@dataclass(frozen=True)
class OperatorProcess:
    """The background operator of a kwok demo cluster."""

    pid: int
    log_path: Path
    started: bool
    # name -> URL: "healthz" (kopf's liveness) and "metrics" (Prometheus), on loopback
    endpoints: dict[str, str]
    workdir: Path

    def alive(self) -> bool:
        return any(
            alive and pid == self.pid
            for name, pid, alive in addon_status(self.workdir)
            if name == OPERATOR_ADDON
        )

    def problem(self) -> str | None:
        return None if self.alive() else "the operator exited"

    def log_tail(self) -> str:
        return f"last lines of the operator's log {self.log_path}:\n{log_tail(self.log_path)}"


def admin_client(access: ClusterAccess) -> Client:
    """A synchronous lightkube client with the cluster's admin credentials."""
    return Client(config=KubeConfig.from_file(str(access.kubeconfig)), field_manager=FIELD_MANAGER)


def _wait(probe: Callable[[], bool], *, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            if probe():
                return
        except ApiError as error:
            last = error
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(POLL_SECONDS)


def install_crds(client: Client, crd_dir: Path, *, timeout: float = 60.0) -> list[str]:
    """Server-side apply every CRD in ``crd_dir``; return their names once Established."""
    paths = sorted(crd_dir.glob("*.yaml"))
    if not paths:
        raise DemoError(f"no CRD in {crd_dir.absolute()} (run from the repository's root)")
    names = []
    for path in paths:
        body: dict[str, Any] = yaml.safe_load(path.read_text())
        client.apply(from_dict(body), force=True)
        names.append(str(body["metadata"]["name"]))
    wait_established(client, names, timeout=timeout)
    return names


def crd_names(crd_dir: Path) -> list[str]:
    """The names of the CRDs in ``crd_dir``, as the chart's copies name them too."""
    return [
        str(yaml.safe_load(path.read_text())["metadata"]["name"])
        for path in sorted(crd_dir.glob("*.yaml"))
    ]


def wait_established(client: Client, names: Sequence[str], *, timeout: float) -> None:
    """Wait until each CRD is Established, so the first TraderBot is not refused."""

    def established(name: str) -> bool:
        crd = client.get(CustomResourceDefinition, name)
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    for name in names:
        _wait(partial(established, name), what=f"CRD {name} Established", timeout=timeout)


def ensure_namespace(client: Client, name: str, *, labels: Mapping[str, str] | None = None) -> None:
    """Create namespace ``name`` unless it exists; wait until pods can be made in it."""
    with contextlib.suppress(ApiError):
        client.get(Namespace, name)
        return
    client.apply(Namespace(metadata=ObjectMeta(name=name, labels=dict(labels or {}))))
    _wait(
        lambda: bool(client.get(ServiceAccount, "default", namespace=name)),
        what=f"namespace {name} ready (its default ServiceAccount)",
        timeout=30.0,
    )


def install_operator_rbac(client: Client, access: ClusterAccess) -> Path:
    """Give the operator a ServiceAccount bound to its least-privilege ClusterRole.

    Returns the path of a kubeconfig holding that account's bound token, so the
    demo's operator runs with exactly the rights an installed one gets.
    """
    ensure_namespace(client, OPERATOR_NAMESPACE)
    client.apply(
        ServiceAccount(metadata=ObjectMeta(name=OPERATOR_ACCOUNT, namespace=OPERATOR_NAMESPACE))
    )
    role = cluster_role()
    client.apply(from_dict(role), force=True)
    binding = cluster_role_binding(
        service_account=OPERATOR_ACCOUNT,
        namespace=OPERATOR_NAMESPACE,
        role=role["metadata"]["name"],
    )
    client.apply(from_dict(binding), force=True)
    return access.kubeconfig_for_service_account(
        OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, expiration_seconds=OPERATOR_TOKEN_SECONDS
    )


def ensure_operator(workdir: Path, *, kubeconfig: Path, namespace: str) -> OperatorProcess:
    """Start ``traderbot-operator`` in the background, or find the one running.

    NB: its own session (no terminal signal reaches it), no parent-death signal
    (it outlives this command); ``traderbot-cluster down`` stops it by pid.
    """
    log_path = workdir / "logs" / "traderbot-operator.log"
    for name, pid, alive in addon_status(workdir):
        if name == OPERATOR_ADDON and alive:
            return OperatorProcess(
                pid=pid,
                log_path=log_path,
                started=False,
                endpoints=addon_endpoints(workdir, OPERATOR_ADDON),
                workdir=workdir,
            )
    env = dict(os.environ)
    env["KUBECONFIG"] = str(kubeconfig)
    metrics_port, liveness_port = free_loopback_ports(2)
    args = [
        sys.executable, "-m", "traderbot_operator",
        "--namespace", namespace,
        "--listen-address", LOOPBACK,
        "--metrics-port", str(metrics_port),
        "--liveness-port", str(liveness_port),
        "--log-format", "plain",
    ]  # fmt: skip
    endpoints = {
        "healthz": f"http://{LOOPBACK}:{liveness_port}/healthz",
        "metrics": f"http://{LOOPBACK}:{metrics_port}/metrics",
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    record_addon(workdir, name=OPERATOR_ADDON, pid=process.pid, endpoints=endpoints)
    return OperatorProcess(
        pid=process.pid, log_path=log_path, started=True, endpoints=endpoints, workdir=workdir
    )


def wait_answering(url: str, *, timeout: float) -> None:
    """Wait until ``url`` answers 200, so the demo never prints an address that is dead."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our loopback URL
                if response.status == HTTPStatus.OK:
                    return
                last = f"HTTP {response.status}"
        except OSError as error:
            last = str(error)
        if time.monotonic() > deadline:
            raise DemoError(f"the operator does not answer at {url}: {last}")
        time.sleep(POLL_SECONDS)


def load_examples(paths: Sequence[Path]) -> dict[Path, list[dict[str, Any]]]:
    """Read the TraderBots of each example file; anything else in them is refused."""
    found: dict[Path, list[dict[str, Any]]] = {}
    for path in paths:
        bots = []
        for body in yaml.safe_load_all(path.read_text()):
            if not body:
                continue
            if body.get("kind") != "TraderBot":
                raise DemoError(f"{path}: only TraderBot manifests are demo examples")
            bots.append(body)
        found[path] = bots
    return found


def apply_bots(client: Client, bots: Sequence[dict[str, Any]], *, namespace: str) -> list[str]:
    """Server-side apply each TraderBot into ``namespace``; return the bots' names."""
    names = []
    for bot in bots:
        body = {**bot, "metadata": {**bot.get("metadata", {}), "namespace": namespace}}
        client.apply(from_dict(body), force=True)
        names.append(str(body["metadata"]["name"]))
    return names


def apply_examples(client: Client, paths: Sequence[Path], *, namespace: str) -> list[str]:
    """Server-side apply each TraderBot manifest into ``namespace``; return the bots' names."""
    examples = load_examples(paths)
    return apply_bots(
        client, [bot for bots in examples.values() for bot in bots], namespace=namespace
    )


def bot_summary(client: Client, name: str, *, namespace: str) -> str:
    """One line per condition of a bot that is not Ready, for the failure message."""
    try:
        bot = client.get(TraderBot, name, namespace=namespace)
    except ApiError as error:
        return f"{namespace}/{name}: {error.status.message}"
    status: dict[str, Any] = dict(bot.get("status") or {})
    lines = [f"{namespace}/{name}: phase {status.get('phase', '(none yet)')}"]
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            lines.append(
                f"  {condition.get('type')}={condition.get('status')} "
                f"{condition.get('reason', '')}: {condition.get('message', '')}"
            )
    return "\n".join(lines)


def _phase(client: Client, name: str, *, namespace: str) -> str | None:
    status = client.get(TraderBot, name, namespace=namespace).get("status") or {}
    phase = status.get("phase")
    return str(phase) if phase else None


def wait_ready(
    client: Client,
    names: Sequence[str],
    *,
    namespace: str,
    operator: OperatorWatch,
    timeout: float,
    diagnose: Callable[[], str] | None = None,
) -> float:
    """Wait until every bot's phase is Ready; return the seconds it took.

    Fails at once if the operator stops or refuses a spec (phase Failed), and
    on the deadline; each time with the bots' conditions, ``diagnose()`` (what
    else may explain it, e.g. the pods' states) and the operator's log tail.
    """
    started = time.monotonic()
    deadline = started + timeout
    pending = list(names)
    while pending:
        phases = {name: _phase(client, name, namespace=namespace) for name in pending}
        pending = [name for name, phase in phases.items() if phase != "Ready"]
        if not pending:
            break
        problem = operator.problem()
        if problem is not None:
            pass
        elif failed := [name for name in pending if phases[name] == "Failed"]:
            # An invalid spec waits for a human; say so now rather than at the deadline.
            problem = f"the operator refused the spec of {', '.join(failed)} (phase Failed)"
            pending = failed
        elif time.monotonic() > deadline:
            problem = f"not Ready after {timeout:.0f}s"
        if problem is not None:
            bots = "\n".join(bot_summary(client, name, namespace=namespace) for name in pending)
            extra = f"{diagnose()}\n" if diagnose is not None else ""
            raise DemoError(f"{problem}:\n{bots}\n{extra}{operator.log_tail()}")
        time.sleep(POLL_SECONDS)
    return time.monotonic() - started


def guide(
    *,
    workdir: Path,
    kubectl_dir: Path | None,
    namespace: str,
    bots: Sequence[str],
    operator: OperatorProcess,
) -> str:
    """Return what a newcomer should look at next, as commands to copy."""
    bot = bots[0]
    path = f"export PATH={kubectl_dir}:$PATH\n  " if kubectl_dir else ""
    return f"""
Every TraderBot is Ready: {", ".join(f"{namespace}/{b}" for b in bots)}

Point kubectl at the demo cluster (this shell only):
  {path}export KUBECONFIG={workdir / "kubeconfig"}

Look around:
  kubectl get tb -n {namespace} -o wide                  # phase, ready replicas, version
  kubectl get all,pvc,secrets,cronjobs -n {namespace} -l app.kubernetes.io/part-of={PART_OF}
  kubectl describe tb -n {namespace} {bot}               # conditions and the operator's events
  kubectl scale tb/{bot} -n {namespace} --replicas=2     # then: kubectl get tb -n {namespace} -w
  kubectl delete deployment -n {namespace} {bot}-api     # the operator restores it in seconds
  kubectl get pv                                         # bound by the host-path provisioner

The operator:
  tail -f {operator.log_path}
  curl {operator.endpoints.get("healthz", "(not recorded)")}    # kopf's liveness
  curl -s {operator.endpoints.get("metrics", "(not recorded)")} | grep ^traderbot_
Stop everything (cluster, operator, volumes):  make demo-down

NB: kwok plays the nodes: pods turn Ready but no container runs (no logs, no exec).
Real pods instead (root, the container tools of `make setup`):
  make demo-down && make demo DEMO_NODE=real
"""


def require_storage(workdir: Path) -> None:
    if not detached_has_storage(workdir):
        raise DemoError(
            f"the cluster in {workdir} runs without the storage provisioner, so the bots' "
            "volumes would never bind; stop it (make demo-down) and run the demo again"
        )


def kubectl_dir(bin_dir: Path | None) -> Path | None:
    """The folder of the pinned kubectl, for the ``export PATH`` the guide prints."""
    try:
        kubectl = Binaries.find(bin_dir).kubectl
    except BinariesMissingError:
        return None
    return kubectl.parent if kubectl else None


def timeout_of(args: argparse.Namespace, *, default: float) -> float:
    """``--timeout`` when given, else the default of the kind of node."""
    given: float | None = args.timeout
    return default if given is None else given


def run(args: argparse.Namespace, *, say: Say) -> int:
    """Run the kwok demo on the detached cluster in ``args.dir`` (already up)."""
    workdir: Path = args.dir
    examples: list[Path] = args.example or list(DEFAULT_EXAMPLES)
    timeout = timeout_of(args, default=DEFAULT_TIMEOUT)
    try:
        require_storage(workdir)
        access = ClusterAccess.load(workdir)
        client = admin_client(access)
        crds = install_crds(client, args.crds)
        say(f"CRDs installed: {', '.join(crds)}")
        kubeconfig = install_operator_rbac(client, access)
        ensure_namespace(client, args.namespace)
        operator = ensure_operator(workdir, kubeconfig=kubeconfig, namespace=args.namespace)
        verb = "started" if operator.started else "already running"
        say(f"operator {verb} (pid {operator.pid}), watching namespace {args.namespace}")
        for name, url in sorted(operator.endpoints.items()):
            say(f"operator {name}: {url}")
        bots = apply_examples(client, examples, namespace=args.namespace)
        say(f"applied {', '.join(str(e) for e in examples)}; waiting for Ready ...")
        seconds = wait_ready(
            client, bots, namespace=args.namespace, operator=operator, timeout=timeout
        )
        for url in operator.endpoints.values():
            wait_answering(url, timeout=timeout)
    except (DemoError, ApiError, OSError) as error:
        say(f"demo failed: {error}")
        return 1
    except KeyboardInterrupt:
        say("interrupted: the cluster and the operator keep running; `make demo-down` stops them")
        return 130
    say(f"Ready in {seconds:.1f}s after apply")
    print(  # noqa: T201 - the demo's result, on stdout
        guide(
            workdir=workdir,
            kubectl_dir=kubectl_dir(args.bin_dir),
            namespace=args.namespace,
            bots=bots,
            operator=operator,
        )
    )
    return 0
