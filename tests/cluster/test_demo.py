"""`make demo` end to end: `traderbot-cluster demo` then `traderbot-cluster down`.

The demo runs its own detached cluster (not the session's), exactly as a
newcomer's first command does: cluster, CRDs, the operator in the background,
examples/traderbot-minimal.yaml until phase Ready; then `down` must leave no
process (the operator included) and no volume folder behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim

from support.kube import client_for, eventually
from traderbot_operator.testing.localcluster import HOSTPATH_ROOT, STATE_FILE

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "trading"
TraderBot = create_namespaced_resource("traderbot.dev", "v1alpha1", "TraderBot", "traderbots")


@pytest.fixture(autouse=True)
def _local_only(request: pytest.FixtureRequest) -> None:
    existing = bool(request.config.getoption("use_existing_cluster", default=False))
    if existing or os.environ.get("TRADERBOT_USE_EXISTING_CLUSTER", "") in {"1", "true", "yes"}:
        pytest.skip("the demo starts its own local control plane")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "traderbot_operator.testing.cli", *args],
        cwd=REPO,  # crds/ and examples/ are found from the repository's root, as `make demo` runs
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}


def _pids(workdir: Path) -> dict[str, int]:
    state: dict[str, Any] = json.loads((workdir / STATE_FILE).read_text())
    processes = state["processes"] + state.get("addons", [])
    return {str(p["name"]): int(p["pid"]) for p in processes}


def test_demo_brings_the_minimal_bot_to_ready_and_down_leaves_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    pids: dict[str, int] = {}
    folders: list[Path] = []
    try:
        first = _cli("demo", "--dir", str(workdir))
        assert first.returncode == 0, first.stderr
        assert "operator started" in first.stderr
        assert f"kubectl get tb -n {NAMESPACE} -o wide" in first.stdout
        assert f"export KUBECONFIG={workdir / 'kubeconfig'}" in first.stdout
        assert str(workdir / "logs" / "traderbot-operator.log") in first.stdout

        pids = _pids(workdir)
        assert set(pids) == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "traderbot-operator",
        }
        assert all(_alive(pid) for pid in pids.values())

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

        again = _cli("demo", "--dir", str(workdir))
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stderr
        assert _pids(workdir) == pids, "a second run reuses the cluster and the operator"

        refused = _cli("demo", "--dir", str(workdir), "--example", "examples/traderbot-full.yaml")
        assert refused.returncode == 1
        assert "phase Failed" in refused.stderr
        assert "bravo-api-key-custom does not exist" in refused.stderr, "the operator's reason"
        assert "last lines of the operator's log" in refused.stderr

        os.kill(pids["traderbot-operator"], signal.SIGKILL)
        eventually(lambda: not _alive(pids["traderbot-operator"]), what="the operator to die")
        revived = _cli("demo", "--dir", str(workdir))
        assert revived.returncode == 0, revived.stderr
        assert "operator started" in revived.stderr, "a dead operator is started again"
        restarted = _pids(workdir)
        assert restarted["traderbot-operator"] != pids["traderbot-operator"]
        assert _alive(restarted["traderbot-operator"])
        pids = restarted
    finally:
        down = _cli("down", "--dir", str(workdir))
    assert down.returncode == 0, down.stderr
    assert [name for name, pid in pids.items() if _alive(pid)] == []
    assert not workdir.exists()
    assert [f for f in folders if f.exists()] == []
