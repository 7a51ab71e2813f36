"""What the real-node tests share: when they can run, their images, kubectl, the counters."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from traderbot_devtools import images, nodeconfig, realnode

BUSYBOX_REF = "traderbot.local/busybox:test"
# A pause stand-in for tests: the sandbox only has to hold the pod's namespaces
# (containerd ends it with SIGKILL). The project's own is hack/images.sh's.
PAUSE_REF = "traderbot.local/pause:busybox"


def unavailable_reason() -> str | None:
    """Why a real node cannot run here, or None. NB: `make setup` installs all of it."""
    if os.geteuid() != 0:
        return "a real node needs root (bridge, iptables, mounts, cgroups)"
    missing = realnode.missing_system_tools()
    if missing:
        return f"missing {', '.join(missing)} (make setup installs them)"
    if not images.BUSYBOX.is_file():
        return f"missing {images.BUSYBOX} (busybox-static; make setup installs it)"
    return None


requires_real_node = pytest.mark.skipif(
    unavailable_reason() is not None, reason=unavailable_reason() or ""
)


def write_test_images(folder: Path) -> tuple[Path, Path]:
    """The busybox image the tests run and the pause stand-in, as archives."""
    busybox = images.write_archive(images.busybox_image(BUSYBOX_REF), folder / "busybox.tar")
    pause = images.write_archive(
        images.busybox_image(PAUSE_REF, entrypoint=["/bin/sleep", "2147483647"], cmd=()),
        folder / "pause.tar",
    )
    return busybox, pause


@dataclass(frozen=True)
class Kubectl:
    binary: Path
    kubeconfig: Path

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.command(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def command(self) -> list[str]:
        """kubectl with the cluster's kubeconfig and a discovery cache beside it, not in ~/.kube."""
        cache = self.kubeconfig.parent / "kubectl-cache"
        return [str(self.binary), f"--kubeconfig={self.kubeconfig}", f"--cache-dir={cache}"]

    def apply(self, *manifests: dict[str, Any], namespace: str) -> None:
        document = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
        self.run("apply", "-n", namespace, "-f", "-", stdin=json.dumps(document))

    def get(self, kind: str, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        scope = ["-n", namespace] if namespace else []
        found: dict[str, Any] = json.loads(self.run("get", kind, name, *scope, "-o", "json").stdout)
        return found

    def exec(self, pod: str, *command: str, namespace: str) -> subprocess.CompletedProcess[str]:
        return self.run("exec", "-n", namespace, pod, "--", *command, check=False)


def busybox_pod(
    name: str,
    *,
    command: list[str],
    labels: dict[str, str] | None = None,
    user: int = 65534,
    volumes: list[dict[str, Any]] | None = None,
    **container: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsUser": user, "runAsGroup": user, "runAsNonRoot": user != 0},
            "containers": [
                {
                    "name": "main",
                    "image": BUSYBOX_REF,
                    "imagePullPolicy": "Never",
                    "command": command,
                    **container,
                }
            ],
            "volumes": volumes or [],
        },
    }


def http_get(kubectl: Kubectl, pod: str, *, url: str, namespace: str) -> str:
    """GET ``url`` (``host[:port]/path``) with busybox nc in ``pod``.

    NB: not wget: Debian's static busybox wget crashes (SIGSEGV), nc does not.
    """
    where, _, path = url.partition("/")
    host, _, port = where.partition(":")
    request = f'printf "GET /{path} HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {host} {port or 80}'
    result = kubectl.exec(pod, "sh", "-c", request, namespace=namespace)
    return result.stdout + result.stderr


def drop_counters() -> dict[str, int]:
    """Packets each of the harness's DROP rules has dropped, by ``chain:position``."""
    counts = {}
    for chain in (nodeconfig.ISOLATION_CHAIN, nodeconfig.EGRESS_CHAIN):
        listing = subprocess.run(
            ["iptables", "-w", "-t", "mangle", "-L", chain, "-v", "-n", "-x"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[2:]
        for position, line in enumerate(listing, start=1):
            words = line.split()
            if len(words) > 2 and words[2] == "DROP":
                counts[f"{chain}:{position}"] = int(words[0])
    return counts
