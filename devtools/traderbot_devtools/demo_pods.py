"""``traderbot-cluster demo`` on real pods: the images built here, the chart, containers that run.

Where a real node can run (root, the container tools ``make setup`` installs,
the node binaries, no other real-node cluster on this machine) the demo

1. builds every image with ``hack/images.sh`` (the operator, trader-api, the
   PostgreSQL, Redis and pause images: a few minutes the first time, seconds
   once cached), then the CLI starts the cluster with a real node that loads
   those archives;
2. installs the operator as users do, ``helm upgrade --install`` of
   charts/traderbot-operator with the operator image built here: it runs in
   its pod, under the chart's ServiceAccount and RBAC;
3. applies the examples with ``spec.image``/``spec.version`` and the database
   and Redis images set to the local ones, into a namespace that enforces the
   "restricted" Pod Security Standard, and waits until every bot is Ready;
4. prints how to look at real pods: IPs, logs, a port-forward to the bot's
   API, its orders, the operator's log and metrics.

NB: the local images go on a copy of each example written to ``<dir>/demo/``,
never into examples/: their refs carry this project's version and image
prefix, read from hack/images.sh's list (so they cannot go stale when the
version moves), and examples/ keeps naming images a user's cluster can pull.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Pod

from traderbot_devtools import nodeconfig, realnode
from traderbot_devtools.binaries import Binaries, BinariesMissingError, helm_env
from traderbot_devtools.demo import (
    DEFAULT_EXAMPLES,
    OPERATOR_NAMESPACE,
    PART_OF,
    DemoError,
    Say,
    admin_client,
    apply_bots,
    crd_names,
    ensure_namespace,
    kubectl_dir,
    load_examples,
    require_storage,
    timeout_of,
    wait_established,
    wait_ready,
)
from traderbot_devtools.images import image_list, images_sh_list, split_reference
from traderbot_devtools.localcluster import ClusterAccess
from traderbot_operator.desired.common import Names

RELEASE = "traderbot-operator"
# Real pods need an initdb, the engine's migrations and probe periods: minutes, not seconds.
REAL_TIMEOUT = 300.0
HELM_WAIT = "5m"
CRD_TIMEOUT = 60.0
# The names in hack/images.sh's list the demo runs (the test tags are for tests/e2e).
IMAGE_NAMES = ("operator", "workload", "postgres", "redis", "pause")
# The bots' namespace refuses any pod that breaks the "restricted" Pod Security
# Standard, so the demo shows the operator's pods meet it.
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}
# A container waiting for one of these will not start by itself.
STUCK_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImageNeverPull",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "RunContainerError",
    }
)
IMAGES_LOG_LINES = 15


class DemoFallbackError(RuntimeError):
    """Raised when the real node cannot be had here; the message says exactly why."""


@dataclass(frozen=True)
class HostFacts:
    """What decides whether this machine can run the real node, observed once."""

    root: bool
    missing_tools: tuple[str, ...]
    missing_binaries: tuple[str, ...]
    bridge_in_use: bool


def observe_host(*, bin_dir: Path | None) -> HostFacts:
    """Look at this machine: user, Debian packages, built binaries, the bridge."""
    try:
        binaries = Binaries.find(bin_dir)
        found = {
            "kubelet": binaries.kubelet,
            "kube-proxy": binaries.kube_proxy,
            "coredns": binaries.coredns,
            "helm": binaries.helm,
        }
        missing_binaries = tuple(name for name, path in found.items() if path is None)
    except BinariesMissingError:
        missing_binaries = ("kubelet", "kube-proxy", "coredns", "helm")
    return HostFacts(
        root=os.geteuid() == 0,
        missing_tools=tuple(realnode.missing_system_tools()),
        missing_binaries=missing_binaries,
        bridge_in_use=(Path("/sys/class/net") / nodeconfig.BRIDGE).exists(),
    )


def blockers(facts: HostFacts) -> list[str]:
    """Why a real node cannot start here (empty when it can), each with what to do."""
    reasons = []
    if not facts.root:
        reasons.append(
            "not root: a real node makes a bridge, iptables rules, mounts and cgroups "
            "(run `make demo` as root)"
        )
    if facts.missing_tools:
        reasons.append(
            f"missing {', '.join(facts.missing_tools)} (`make setup` installs them: "
            "hack/install-system-deps.sh)"
        )
    if facts.missing_binaries:
        reasons.append(
            f"missing {', '.join(facts.missing_binaries)} (`make k8s-binaries` builds them)"
        )
    if facts.bridge_in_use:
        reasons.append(
            f"another real-node cluster runs on this machine (bridge {nodeconfig.BRIDGE} "
            "exists; one fits per machine): stop it with `traderbot-cluster down --dir "
            "ITS_FOLDER`, or wait for it"
        )
    return reasons


@dataclass(frozen=True)
class LocalImages:
    """The refs and archives hack/images.sh listed, as the demo uses them."""

    operator: str
    workload: str
    database: str
    redis: str
    sandbox: str
    archives: tuple[Path, ...]

    @property
    def operator_repository(self) -> str:
        return split_reference(self.operator)[0]

    @property
    def operator_tag(self) -> str:
        return split_reference(self.operator)[1]

    @property
    def workload_repository(self) -> str:
        return split_reference(self.workload)[0]

    @property
    def workload_version(self) -> str:
        return split_reference(self.workload)[1]


def read_image_list(text: str, *, source: Path) -> LocalImages:
    """Take the demo's images from hack/images.sh's list (``name= ref= id= archive=`` lines)."""
    listed = {name: words for name, words in image_list(text).items() if "archive" in words}
    missing = [name for name in IMAGE_NAMES if name not in listed]
    if missing:
        raise DemoError(f"{source} lists no {', '.join(missing)}: run `make images`")
    for name in ("operator", "workload"):
        try:
            split_reference(listed[name]["ref"])
        except ValueError as error:
            raise DemoError(f"{source}: {error}") from error
    archives = tuple(sorted({Path(listed[name]["archive"]) for name in IMAGE_NAMES}))
    absent = [str(path) for path in archives if not path.is_file()]
    if absent:
        raise DemoError(f"archives listed in {source} are missing: {', '.join(absent)}")
    return LocalImages(
        operator=listed["operator"]["ref"],
        workload=listed["workload"]["ref"],
        database=listed["postgres"]["ref"],
        redis=listed["redis"]["ref"],
        sandbox=listed["pause"]["ref"],
        archives=archives,
    )


def listed_images() -> LocalImages:
    """The images of hack/images.sh's last run, without building anything."""
    listing = images_sh_list()
    if not listing.is_file():
        raise DemoError(f"no image list at {listing}: run `make images`")
    return read_image_list(listing.read_text(), source=listing)


def build_images(script: Path, *, say: Say) -> LocalImages:
    """Run hack/images.sh (its progress shown as it comes); return what it listed.

    NB: it builds only what changed, so a warm run takes seconds; a failure
    here is a reason to fall back to kwok, with the script's last lines.
    """
    if not script.is_file():
        raise DemoFallbackError(f"no {script} (run from the repository's root)")
    say(
        f"building the images with {script} (the operator, trader-api, PostgreSQL 17, "
        "Redis 8, the pod sandbox; the first run takes a few minutes, later ones seconds) ..."
    )
    started = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=IMAGES_LOG_LINES)
    process = subprocess.Popen(  # noqa: S603 - our own script, no shell
        ["bash", str(script)],  # noqa: S607 - bash from PATH, as `make` runs it
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # the list: read from its file once the run succeeded
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None  # noqa: S101 - asked for just above
    for line in process.stderr:
        sys.stderr.write(line)
        tail.append(line.rstrip("\n"))
    code = process.wait()
    if code != 0:
        last = "\n".join(f"  {line}" for line in tail)
        raise DemoFallbackError(f"{script} failed (exit {code}); its last lines:\n{last}")
    try:
        images = listed_images()
    except DemoError as error:
        raise DemoFallbackError(str(error)) from error
    say(f"images ready in {time.monotonic() - started:.0f}s")
    return images


def with_local_images(bot: Mapping[str, Any], images: LocalImages) -> dict[str, Any]:
    """A copy of ``bot`` that runs the images built here (the real node can never pull)."""
    spec = dict(bot.get("spec") or {})
    spec["image"] = images.workload_repository
    spec["version"] = images.workload_version
    spec["database"] = {**(spec.get("database") or {}), "image": images.database}
    spec["redis"] = {**(spec.get("redis") or {}), "image": images.redis}
    return {**bot, "spec": spec}


def local_bots(
    examples: Mapping[Path, Sequence[Mapping[str, Any]]], images: LocalImages, *, folder: Path
) -> tuple[list[dict[str, Any]], list[Path]]:
    """Each example with the local images, written to ``folder`` for the user to read."""
    folder.mkdir(parents=True, exist_ok=True)
    bots: list[dict[str, Any]] = []
    written = []
    for path, bodies in examples.items():
        local = [with_local_images(body, images) for body in bodies]
        target = folder / path.name
        header = f"# {path} with the images built here (hack/images.sh), as the demo applied it\n"
        target.write_text(header + yaml.safe_dump_all(local, sort_keys=False))
        bots += local
        written.append(target)
    return bots, written


def helm_command(*, chart: Path, images: LocalImages) -> list[str]:
    """The ``helm`` arguments that install the operator with the image built here.

    NB: ``pullPolicy=Never``: the node can never pull, and a missing image then
    says ErrImageNeverPull at once instead of backing off. One replica: a standby
    on the demo's single node would guard against nothing, and the printed
    ``kubectl logs deploy/traderbot-operator`` then always reads the leader.
    """
    return [
        "upgrade", "--install", RELEASE, str(chart),
        "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
        "--set", f"image.repository={images.operator_repository}",
        "--set", f"image.tag={images.operator_tag}",
        "--set", "image.pullPolicy=Never",
        "--set", "replicaCount=1",
        "--wait", "--timeout", HELM_WAIT,
    ]  # fmt: skip


def install_operator(
    *, helm: Path, kubeconfig: Path, chart: Path, images: LocalImages, home: Path
) -> list[str]:
    """Install (or upgrade) the operator's release; return the helm arguments it ran.

    NB: helm gets a home in the cluster's folder, so nothing lands in the user's
    ~/.config or ~/.cache and ``down`` removes it.
    """
    args = helm_command(chart=chart, images=images)
    env = helm_env(home)
    result = subprocess.run(  # noqa: S603 - the pinned helm, our arguments
        [str(helm), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=360,
        check=False,
    )
    if result.returncode != 0:
        raise DemoError(
            f"helm {' '.join(args)} failed (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return args


def _waiting(pod: Pod) -> list[tuple[str, str, str]]:
    """(container, reason, message) of each container of ``pod`` that waits."""
    statuses = [
        *((pod.status.initContainerStatuses or []) if pod.status else []),
        *((pod.status.containerStatuses or []) if pod.status else []),
    ]
    return [
        (status.name, status.state.waiting.reason or "", status.state.waiting.message or "")
        for status in statuses
        if status.state is not None and status.state.waiting is not None
    ]


@dataclass(frozen=True)
class PodOperator:
    """The operator the chart runs, watched through its pod."""

    client: Client
    namespace: str = OPERATOR_NAMESPACE
    release: str = RELEASE

    def _pods(self) -> list[Pod]:
        return list(
            self.client.list(
                Pod, namespace=self.namespace, labels={"app.kubernetes.io/instance": self.release}
            )
        )

    def problem(self) -> str | None:
        for pod in self._pods():
            name = pod.metadata.name if pod.metadata else "?"
            for container, reason, message in _waiting(pod):
                if reason in STUCK_REASONS:
                    return f"the operator's pod {name} ({container}): {reason}: {message}"
        return None

    def log_tail(self) -> str:
        pods = self._pods()
        if not pods or pods[0].metadata is None or pods[0].metadata.name is None:
            return f"no operator pod in {self.namespace}"
        name = pods[0].metadata.name
        try:
            lines = list(self.client.log(name, namespace=self.namespace, tail_lines=30))
        except ApiError as error:
            return f"no log of the operator's pod {name}: {error.status.message}"
        return f"last lines of the operator's log (pod {self.namespace}/{name}):\n" + "".join(lines)


def pod_states(client: Client, namespace: str) -> str:
    """One line per pod of ``namespace`` that is not Ready: phase and waiting containers."""
    lines = []
    for pod in client.list(Pod, namespace=namespace):
        conditions = (pod.status.conditions if pod.status else None) or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            continue
        name = pod.metadata.name if pod.metadata else "?"
        phase = pod.status.phase if pod.status else None
        waiting = "; ".join(f"{c} {r}: {m}".strip() for c, r, m in _waiting(pod))
        lines.append(f"  pod {name}: {phase}{f' ({waiting})' if waiting else ''}")
    return "pods not Ready:\n" + "\n".join(lines) if lines else "every pod is Ready"


COMMENT_COLUMN = 56


def _lines(commands: Sequence[tuple[str, str]]) -> str:
    """Indented commands, their comments (``# ...``) lined up where they fit."""
    out = []
    for command, comment in commands:
        if comment:
            out.append(f"  {command.ljust(COMMENT_COLUMN)} # {comment}")
        else:
            out.append(f"  {command}")
    return "\n".join(out)


def guide(
    *,
    workdir: Path,
    kubectl_dir: Path | None,
    namespace: str,
    bots: Sequence[str],
    written: Sequence[Path],
    helm_args: Sequence[str],
) -> str:
    """Return what a newcomer should try on real pods, as commands to copy."""
    bot = bots[0]
    names = Names(bot)
    ns = f"-n {namespace}"
    order = '{"client_order_id":"demo-1","symbol":"BTCUSDT","side":"buy","quantity":"0.01"}'
    exports = [(f"export PATH={kubectl_dir}:$PATH", "")] if kubectl_dir else []
    exports.append((f"export KUBECONFIG={workdir / 'kubeconfig'}", ""))
    look = [
        (f"kubectl get tb {ns} -o wide", "phase, ready replicas, version"),
        (f"kubectl get pods {ns} -o wide", "real pods, real IPs"),
        (f"kubectl get all,pvc,secrets,cronjobs {ns} -l app.kubernetes.io/part-of={PART_OF}", ""),
        (f"kubectl logs {ns} deploy/{names.api}", "the engine: market, strategies, orders"),
        (f"kubectl exec {ns} {names.database}-0 -- psql -U trader -d trader -c '\\dt'", ""),
        (f"kubectl describe tb {ns} {bot}", "conditions and the operator's events"),
    ]
    api = [
        (f"kubectl port-forward {ns} svc/{names.api} 3000 &", ""),
        ("curl localhost:3000/health/ready", ""),
        ("curl localhost:3000/api/v1/orders", "newest first"),
        ("curl 'localhost:3000/api/v1/klines?symbol=BTCUSDT&interval=1m&limit=3'", ""),
        (f"API_KEY=$(kubectl get secret {ns} {names.api_key_secret} \\", ""),
        ("          -o jsonpath='{.data.api-key}' | base64 -d)", ""),
        ("curl -H \"X-API-Key: $API_KEY\" -H 'content-type: application/json' \\", ""),
        (f"     -d '{order}' localhost:3000/api/v1/orders", ""),
    ]
    change = [
        (f"kubectl scale tb/{bot} {ns} --replicas=2", f"then: kubectl get pods {ns} -w"),
        (f"kubectl delete deployment {ns} {names.api}", "the operator restores it in seconds"),
    ]
    operator = [
        (f"kubectl logs -n {OPERATOR_NAMESPACE} deploy/{RELEASE} -f", ""),
        (f"kubectl port-forward -n {OPERATOR_NAMESPACE} svc/{RELEASE}-metrics 9090 &", ""),
        ("curl -s localhost:9090/metrics | grep ^traderbot_", ""),
    ]
    return f"""
Every TraderBot is Ready, on real pods: {", ".join(f"{namespace}/{b}" for b in bots)}
  applied: {", ".join(str(p) for p in written)} (the example with the images built here)
  operator: helm {" ".join(helm_args)}

Point kubectl at the demo cluster (this shell only):
{_lines(exports)}

Look around (real containers on the node traderbot-node, pod IPs on its bridge 10.88.0.0/16):
{_lines(look)}

Talk to the bot's API (kubectl forwards it to this machine's loopback):
{_lines(api)}
The demo strategies trade on the simulated market's 1-minute klines: SMA 5/20 and
RSI 14 need 21 and 16 closed klines before their first signal, so their first
orders come after 16 minutes at the very least (23 in a measured run; watch
`kubectl logs -f`); an order of your own shows at once.

Change it and watch the operator act:
{_lines(change)}

The operator (in its pod, installed by the chart):
{_lines(operator)}

Stop everything (pods, cluster, the node's changes to this machine):  make demo-down
"""


def _helm(bin_dir: Path | None) -> Path:
    helm = Binaries.find(bin_dir).helm
    if helm is None:
        raise DemoError("no helm: build it with `make k8s-binaries`")
    return helm


def run(args: argparse.Namespace, *, images: LocalImages, say: Say) -> int:
    """Run the demo on real pods on the detached cluster in ``args.dir`` (up, with its node)."""
    workdir: Path = args.dir
    chart: Path = args.chart
    examples: list[Path] = args.example or list(DEFAULT_EXAMPLES)
    timeout = timeout_of(args, default=REAL_TIMEOUT)
    try:
        require_storage(workdir)
        access = ClusterAccess.load(workdir)
        client = admin_client(access)
        helm = _helm(args.bin_dir)
        say(f"installing the operator: helm, {chart}, image {images.operator} ...")
        started = time.monotonic()
        helm_args = install_operator(
            helm=helm,
            kubeconfig=access.kubeconfig,
            chart=chart,
            images=images,
            home=workdir / "helm",
        )
        wait_established(client, crd_names(chart / "crds"), timeout=CRD_TIMEOUT)
        say(
            f"operator running in its pod (deploy/{RELEASE} in {OPERATOR_NAMESPACE}) "
            f"after {time.monotonic() - started:.0f}s"
        )
        ensure_namespace(client, args.namespace, labels=RESTRICTED)
        bots, written = local_bots(load_examples(examples), images, folder=workdir / "demo")
        names = apply_bots(client, bots, namespace=args.namespace)
        say(
            f"applied {', '.join(str(p) for p in written)} into {args.namespace}; waiting for "
            f"Ready (real pods: PostgreSQL's initdb, migrations; up to {timeout:.0f}s) ..."
        )
        seconds = wait_ready(
            client,
            names,
            namespace=args.namespace,
            operator=PodOperator(client),
            timeout=timeout,
            diagnose=partial(pod_states, client, args.namespace),
        )
    except (DemoError, ApiError, OSError, subprocess.TimeoutExpired) as error:
        say(f"demo failed: {error}")
        say(f"the cluster keeps running for a look (logs in {workdir / 'logs'}); `make demo-down`")
        return 1
    except KeyboardInterrupt:
        say("interrupted: the cluster keeps running; `make demo-down` stops it")
        return 130
    say(f"Ready in {seconds:.1f}s after apply")
    print(  # noqa: T201 - the demo's result, on stdout
        guide(
            workdir=workdir,
            kubectl_dir=kubectl_dir(args.bin_dir),
            namespace=args.namespace,
            bots=names,
            written=written,
            helm_args=helm_args,
        )
    )
    return 0
