"""Helpers of the e2e tier: kubectl, port-forwards, in-cluster load, the bot under test.

Everything here talks to the cluster the way an SRE does (kubectl, helm, the
bot's Service), so the same helpers serve the local real node, kind or a real
cluster: nothing reaches a ClusterIP or a pod IP from the test process.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support.helm import HelmCli
from support.kube import eventually
from traderbot_devtools import Binaries, BinariesMissingError, LocalCluster
from traderbot_devtools.images import split_reference

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "traderbot-operator"
# Real pods start slower than kwok's: an image unpack, initdb, migrations.
READY_TIMEOUT = 300.0


class CommandFailedError(AssertionError):
    """A kubectl or helm command exited non-zero; the message carries its output."""


@dataclass(frozen=True)
class Images:
    """The images the tier runs, built here by hack/images.sh or pushed by a user for kind.

    ``workload_repository`` is the TraderBot's ``spec.image`` (no tag); the
    versions are its ``spec.version`` tags: a good one, a second good one for
    upgrades, and one whose pods never become Ready (automatic rollback).
    """

    operator: str
    workload_repository: str
    workload_version: str
    workload_next_version: str
    workload_broken_version: str
    database: str
    redis: str

    @property
    def operator_repository(self) -> str:
        return split_reference(self.operator)[0]

    @property
    def operator_tag(self) -> str:
        return split_reference(self.operator)[1]

    def workload(self, version: str | None = None) -> str:
        return f"{self.workload_repository}:{version or self.workload_version}"


@dataclass(frozen=True)
class Stack:
    """The cluster under test and the images it runs; ``local`` is None for any other cluster."""

    kubeconfig: Path
    images: Images
    local: LocalCluster | None


@dataclass
class Kubectl:
    """The pinned kubectl, pointed at the cluster under test."""

    binary: Path
    kubeconfig: Path
    namespace: str | None = None

    def __call__(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120.0,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.binary), "--kubeconfig", str(self.kubeconfig)]
        if self.namespace and not any(a in {"-A", "--all-namespaces"} for a in args):
            command += ["--namespace", self.namespace]
        result = subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            check=False,
        )
        if check and result.returncode != 0:
            raise CommandFailedError(
                f"kubectl {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def out(self, *args: str, timeout: float = 120.0, stdin: str | None = None) -> str:
        return self(*args, timeout=timeout, stdin=stdin).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.out(*args, "-o", "json"))

    def shell(self, script: str, *, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run a command line of docs/operations-guide.md, with this kubectl first on PATH.

        NB: the guide's commands are shell (pipes, ``$(...)``, ``&``); they run
        as written, with KUBECONFIG and the namespace set the way the guide
        assumes (``kubectl config set-context --current --namespace``).
        """
        env = dict(os.environ)
        env["PATH"] = f"{self.binary.parent}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["KUBECONFIG"] = str(self.kubeconfig)
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )

    def in_namespace(self, namespace: str) -> Kubectl:
        return Kubectl(binary=self.binary, kubeconfig=self.kubeconfig, namespace=namespace)


@dataclass
class PortForward:
    """``kubectl port-forward`` to a Service or pod, on a free loopback port."""

    kubectl: Kubectl
    target: str
    remote_port: int
    local_port: int = 0
    process: subprocess.Popen[str] | None = field(default=None, repr=False)

    def __enter__(self) -> PortForward:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def start(self, *, timeout: float = 30.0) -> None:
        command = [str(self.kubectl.binary), "--kubeconfig", str(self.kubectl.kubeconfig)]
        if self.kubectl.namespace:
            command += ["--namespace", self.kubectl.namespace]
        command += [
            "port-forward",
            "--address=127.0.0.1",
            self.target,
            f":{self.remote_port}",
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        # kubectl says "Forwarding from 127.0.0.1:<port> -> <remote port>" once it listens.
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            match = re.search(r"127\.0\.0\.1:(\d+) ->", line)
            if match:
                self.local_port = int(match.group(1))
                return
        self.stop()
        stderr = self.process.stderr.read() if self.process.stderr else ""
        raise CommandFailedError(f"kubectl port-forward {self.target} did not start: {stderr}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(timeout=5)


def http_get(url: str, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
    return httpx.get(url, headers=dict(headers or {}), timeout=10.0)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def resting_order(prefix: str = "e2e") -> dict[str, str]:
    """A limit buy far below the market: it rests on the book, it never fills."""
    return {
        "client_order_id": unique(prefix),
        "symbol": "BTCUSDT",
        "side": "buy",
        "type": "limit",
        "quantity": "0.001",
        "limit_price": "1",
    }


def place_order(
    forward: PortForward, key: str, order: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """POST an order (a resting one unless given) with the API key; assert it was created."""
    answer = httpx.post(
        f"{forward.url}/api/v1/orders",
        json=dict(order or resting_order()),
        headers={"X-API-Key": key},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def container_restarts(pod: Mapping[str, Any]) -> int:
    return sum(s.get("restartCount", 0) for s in pod.get("status", {}).get("containerStatuses", []))


def labels_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def env_list(values: Mapping[str, str]) -> Sequence[dict[str, str]]:
    return [{"name": key, "value": value} for key, value in values.items()]


def find_kubectl() -> Path:
    """The pinned kubectl of hack/k8s-binaries.sh, else the first on PATH (kind users)."""
    try:
        pinned = Binaries.find().kubectl
    except BinariesMissingError:
        pinned = None
    if pinned is not None:
        return pinned
    found = shutil.which("kubectl")
    if found is None:
        raise AssertionError("no kubectl: build it with `make k8s-binaries` or put one on PATH")
    return Path(found)


@dataclass
class OperatorRelease:
    """The operator chart installed with the image under test, as an SRE would."""

    helm: HelmCli
    kubectl: Kubectl
    namespace: str
    images: Images
    name: str = "traderbot-operator"

    @property
    def deployment(self) -> str:
        return self.name  # the chart's full name equals the release name "traderbot-operator"

    def install(self) -> None:
        self.helm(
            "install", self.name, str(CHART_DIR),
            "--namespace", self.namespace, "--create-namespace",
            "--set", f"image.repository={self.images.operator_repository}",
            "--set", f"image.tag={self.images.operator_tag}",
            "--set", "image.pullPolicy=IfNotPresent",
            "--wait", "--timeout", "5m",
            timeout=360.0,
        )  # fmt: skip

    def uninstall(self) -> None:
        self.helm("uninstall", self.name, "--namespace", self.namespace, "--wait", timeout=180.0)
        self.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)

    def logs(self) -> str:
        """Return the logs of every operator replica (the leader's among them)."""
        return self.kubectl.in_namespace(self.namespace).out(
            "logs", "-l", "app.kubernetes.io/name=traderbot-operator", "--prefix", "--tail=-1"
        )


def bot_manifest(
    name: str,
    images: Images,
    *,
    replicas: int = 1,
    version: str | None = None,
    deletion_policy: str = "Retain",
    progress_deadline_seconds: int = 90,
) -> dict[str, Any]:
    """A TraderBot with the images under test and requests that fit a 2-core node.

    NB: the rate limit stays the default (20/s, burst 40 per client IP): the
    load clients stay under it, and the operations guide's grep for
    ``Rate limit exceeded`` needs it reachable.
    """
    small = {"requests": {"cpu": "20m", "memory": "64Mi"}}
    return {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBot",
        "metadata": {"name": name},
        "spec": {
            "image": images.workload_repository,
            "version": version or images.workload_version,
            "replicas": replicas,
            "deletionPolicy": deletion_policy,
            "api": {
                "resources": {**small, "limits": {"memory": "512Mi"}},
            },
            "database": {
                "image": images.database,
                "storage": {"size": "1Gi"},
                "resources": {**small, "limits": {"memory": "1Gi"}},
            },
            "redis": {
                "image": images.redis,
                "storage": {"size": "256Mi"},
                "resources": {**small, "limits": {"memory": "256Mi"}},
            },
            # The load clients' resting limit orders (price 1) stay open; the default
            # of 20 open orders would turn them into risk rejections (422).
            "engine": {"risk": {"maxOpenOrders": 100000}},
            "backup": {"storage": {"size": "1Gi"}},
            "upgrade": {"progressDeadlineSeconds": progress_deadline_seconds},
        },
    }


@dataclass
class Bot:
    """One TraderBot under test, seen through kubectl."""

    name: str
    namespace: str
    kubectl: Kubectl  # namespaced
    port: int = 3000
    # Each component's pods as they were when the bot first went Ready: tests
    # later kill containers on purpose, so restarts counted now prove nothing.
    first_ready_pods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def get(self) -> dict[str, Any]:
        found: dict[str, Any] = self.kubectl.json("get", "tb", self.name)
        return found

    def phase(self) -> str | None:
        phase: str | None = self.get().get("status", {}).get("phase")
        return phase

    def wait_phase(self, phase: str, *, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            body = self.get()
            return body if body.get("status", {}).get("phase") == phase else None

        found: dict[str, Any] = eventually(
            reached,
            what=f"TraderBot {self.namespace}/{self.name} {phase}",
            timeout=timeout,
            interval=1.0,
        )
        return found

    def secret_value(self, secret: str, key: str) -> str:
        data = self.kubectl.json("get", "secret", secret)["data"]
        return base64.b64decode(data[key]).decode()

    @property
    def api_key(self) -> str:
        return self.secret_value(f"{self.name}-api-key", "api-key")

    def record_first_ready_pods(self, components: Sequence[str]) -> None:
        self.first_ready_pods = {component: self.pods(component) for component in components}

    def pods(self, component: str, *, terminating: bool = False) -> list[dict[str, Any]]:
        """The component's pods; those being deleted only when ``terminating``."""
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}"
        items: list[dict[str, Any]] = self.kubectl.json("get", "pods", "-l", selector)["items"]
        if terminating:
            return items
        return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]

    def forward(self, target: str | None = None) -> PortForward:
        return PortForward(self.kubectl, target or f"svc/{self.name}-api", self.port)

    def psql(self, sql: str) -> str:
        """Run SQL in the database pod as the guide does (`kubectl exec ... psql`)."""
        return self.kubectl.out(
            "exec", f"{self.name}-db-0", "--", "psql", "-U", "trader", "-d", "trader",
            "-At", "-v", "ON_ERROR_STOP=1", "-c", sql,
        ).strip()  # fmt: skip


LOAD_CLIENT = Path(__file__).with_name("load_client.py")


@dataclass
class LoadRun:
    """The in-cluster load client (load_client.py) in a pod of the workload image."""

    bot: Bot
    pod: str

    def wait_running(self, *, timeout: float = 120.0) -> None:
        def running() -> bool:
            phase = self.bot.kubectl.json("get", "pod", self.pod)["status"].get("phase")
            if phase in {"Failed", "Succeeded"}:
                raise AssertionError(f"load pod {self.pod} ended early: {self.logs()}")
            return bool(phase == "Running")

        eventually(running, what=f"load pod {self.pod} running", timeout=timeout, interval=0.5)

    def logs(self) -> str:
        return self.bot.kubectl("logs", self.pod, check=False).stdout

    def result(self, *, timeout: float = 300.0) -> dict[str, Any]:
        """Wait for the client to finish; return its summary (sent, statuses, failures)."""

        def finished() -> str | None:
            phase = self.bot.kubectl.json("get", "pod", self.pod)["status"].get("phase")
            return phase if phase in {"Succeeded", "Failed"} else None

        phase = eventually(finished, what=f"load pod {self.pod} done", timeout=timeout)
        output = self.logs()
        assert phase == "Succeeded", f"load pod {self.pod} {phase}: {output}"
        summary: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        self.bot.kubectl("delete", "pod", self.pod, "--wait=false", check=False)
        return summary


def start_load(
    bot: Bot,
    image: str,
    *,
    seconds: float,
    rate: float = 20.0,
    order_every: int = 0,
) -> LoadRun:
    """Start load_client.py against the bot's Service by its DNS name, from inside the cluster.

    NB: the pod meets the "restricted" Pod Security Standard of the bots' namespaces.
    """
    name = unique(f"{bot.name}-load")
    env = {
        "LOAD_URL": f"http://{bot.name}-api:{bot.port}",
        "LOAD_API_KEY": bot.api_key if order_every else "",
        "LOAD_RATE": str(rate),
        "LOAD_SECONDS": str(seconds),
        "LOAD_ORDERS": str(order_every),
        "LOAD_ID": name,
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "e2e-load"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "load",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", LOAD_CLIENT.read_text()],
                    "env": env_list(env),
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }
    bot.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    run = LoadRun(bot=bot, pod=name)
    run.wait_running()
    return run
