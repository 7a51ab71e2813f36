"""`make demo` end to end on kwok: `traderbot-cluster demo` then `traderbot-cluster down`.

The demo runs its own detached cluster (not the session's), exactly as a
newcomer's first command does: cluster, CRDs, the operator in the background,
examples/traderbot-minimal.yaml until phase Ready, the operator's /healthz and
/metrics answering on loopback where the demo says; then `down` must leave no
process (the operator included) and no volume folder behind.

Its first run asks for no kind of node on a machine where containerd is
missing (a PATH without it): the demo must say so and fall back to kwok. The
same flow on real pods is tests/cluster/test_demo_pods.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim

from cluster.local_cli import process_alive, run_cli
from support.kube import client_for, eventually
from traderbot_devtools.localcluster import HOSTPATH_ROOT, STATE_FILE

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "trading"
TraderBot = create_namespaced_resource("traderbot.dev", "v1alpha1", "TraderBot", "traderbots")


@pytest.fixture(autouse=True)
def _local_only(request: pytest.FixtureRequest) -> None:
    existing = bool(request.config.getoption("use_existing_cluster", default=False))
    if existing or os.environ.get("TRADERBOT_USE_EXISTING_CLUSTER", "") in {"1", "true", "yes"}:
        pytest.skip("the demo starts its own local control plane")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # crds/ and examples/ are found from the repository's root, as `make demo` runs
    return run_cli(*args, cwd=REPO, env=env)


def _env_without(tool: str, folder: Path) -> dict[str, str]:
    """This environment with a PATH of links to every program on PATH but ``tool``.

    NB: the way to simulate a machine where `make setup` has not installed the
    container tools, without touching the machine's packages.
    """
    folder.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if not directory or not Path(directory).is_dir():
            continue
        for program in Path(directory).iterdir():
            link = folder / program.name
            if program.name != tool and not link.exists() and not link.is_symlink():
                link.symlink_to(program)
    assert shutil.which(tool, path=str(folder)) is None
    return {**os.environ, "PATH": str(folder)}


def _pids(workdir: Path) -> dict[str, int]:
    state: dict[str, Any] = json.loads((workdir / STATE_FILE).read_text())
    processes = state["processes"] + state.get("addons", [])
    return {str(p["name"]): int(p["pid"]) for p in processes}


def _endpoints(stderr: str) -> dict[str, str]:
    """Return the operator's endpoints the demo printed ("operator healthz: URL")."""
    found = dict(re.findall(r"^operator (healthz|metrics): (\S+)$", stderr, flags=re.MULTILINE))
    assert set(found) == {"healthz", "metrics"}, stderr
    return found


def _assert_operator_answers_on_loopback(endpoints: dict[str, str]) -> None:
    for url in endpoints.values():
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1", url
    assert httpx.get(endpoints["healthz"], timeout=5).status_code == 200
    metrics = httpx.get(endpoints["metrics"], timeout=5)
    assert metrics.status_code == 200
    assert "traderbot_operator_reconcile_total" in metrics.text


def _check_first_run(first: subprocess.CompletedProcess[str], workdir: Path) -> dict[str, str]:
    """Check what the first `demo` says and serves; return the operator's endpoints."""
    assert first.returncode == 0, first.stderr
    assert "operator started" in first.stderr
    assert f"kubectl get tb -n {NAMESPACE} -o wide" in first.stdout
    assert f"export KUBECONFIG={workdir / 'kubeconfig'}" in first.stdout
    assert str(workdir / "logs" / "traderbot-operator.log") in first.stdout
    endpoints = _endpoints(first.stderr)
    _assert_operator_answers_on_loopback(endpoints)
    assert f"curl {endpoints['healthz']}" in first.stdout
    status = _cli("status", "--dir", str(workdir))
    assert f"healthz: {endpoints['healthz']}" in status.stdout
    return endpoints


def _check_fallback(first: subprocess.CompletedProcess[str]) -> None:
    """The demo asked for no node says why it cannot run real pods and falls back to kwok."""
    assert "real pods are not possible here:\n" in first.stderr
    assert re.search(r"^- missing containerd\b", first.stderr, flags=re.MULTILINE), first.stderr
    assert "falling back to the kwok demo" in first.stderr
    assert "building the images" not in first.stderr, "nothing is built for a node that can't run"


def _ready_bot_volume_folders(workdir: Path) -> list[Path]:
    """Check the minimal bot is Ready with its 3 claims bound; return their volumes' folders."""
    kube = client_for(workdir / "kubeconfig")
    bot = kube.get(TraderBot, "alpha", namespace=NAMESPACE)
    assert (bot.get("status") or {}).get("phase") == "Ready"
    claims = list(kube.list(PersistentVolumeClaim, namespace=NAMESPACE))
    assert len(claims) == 3  # database, Redis, backups
    assert all(c.status and c.status.phase == "Bound" for c in claims)
    folders = [
        Path(pv.spec.hostPath.path)
        for pv in kube.list(PersistentVolume)
        if pv.spec and pv.spec.hostPath
    ]
    assert len(folders) == 3
    assert all(f.parent == HOSTPATH_ROOT and f.is_dir() for f in folders)
    return folders


def test_demo_brings_the_minimal_bot_to_ready_and_down_leaves_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    pids: dict[str, int] = {}
    folders: list[Path] = []
    without_containerd = _env_without("containerd", tmp_path / "bin")
    try:
        first = _cli("demo", "--dir", str(workdir), env=without_containerd)
        _check_fallback(first)
        endpoints = _check_first_run(first, workdir)
        pids = _pids(workdir)
        assert set(pids) == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "traderbot-operator",
        }
        assert all(process_alive(pid) for pid in pids.values())

        folders = _ready_bot_volume_folders(workdir)

        again = _cli("demo", "--dir", str(workdir))
        assert again.returncode == 0, again.stderr
        assert "reusing the demo cluster" in again.stderr, "auto keeps the running kwok cluster"
        assert "already running" in again.stderr
        assert _endpoints(again.stderr) == endpoints, "the running operator's, from its record"
        assert _pids(workdir) == pids, "a second run reuses the cluster and the operator"

        other_kind = _cli("demo", "--dir", str(workdir), "--real-node")
        assert other_kind.returncode == 1
        assert "has kwok's fake node only: stop it first" in other_kind.stderr

        refused = _cli(
            "demo", "--dir", str(workdir), "--kwok", "--example", "examples/traderbot-full.yaml"
        )
        assert refused.returncode == 1
        assert "phase Failed" in refused.stderr
        assert "bravo-api-key-custom does not exist" in refused.stderr, "the operator's reason"
        assert "last lines of the operator's log" in refused.stderr

        os.kill(pids["traderbot-operator"], signal.SIGKILL)
        eventually(
            lambda: not process_alive(pids["traderbot-operator"]), what="the operator to die"
        )
        revived = _cli("demo", "--dir", str(workdir), "--kwok")
        assert revived.returncode == 0, revived.stderr
        assert "operator started" in revived.stderr, "a dead operator is started again"
        _assert_operator_answers_on_loopback(_endpoints(revived.stderr))
        restarted = _pids(workdir)
        assert restarted["traderbot-operator"] != pids["traderbot-operator"]
        assert process_alive(restarted["traderbot-operator"])
        pids = restarted
    finally:
        down = _cli("down", "--dir", str(workdir))
    assert down.returncode == 0, down.stderr
    assert [name for name, pid in pids.items() if process_alive(pid)] == []
    assert not workdir.exists()
    assert [f for f in folders if f.exists()] == []
