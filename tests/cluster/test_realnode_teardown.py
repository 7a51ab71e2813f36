"""`traderbot-cluster down` undoes everything a real node did, even after kubelet died.

The hard path: kubelet is killed while pods run, so nothing stops their
containers gracefully (a container's PID 1 outlives kubelet and containerd);
``down`` must still kill them, unmount their volumes and network namespaces,
remove veths, bridge, iptables chains and cgroups, and restore the sysctls.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.hoststate import HostState, ip_forward
from cluster.local_cli import process_alive, run_cli
from cluster.realnode_support import (
    PAUSE_REF,
    Kubectl,
    busybox_pod,
    requires_real_node,
    write_test_images,
)
from traderbot_devtools import (
    Binaries,
    BinariesMissingError,
    LocalCluster,
    hostnet,
    nodeconfig,
    realnode,
)

pytestmark = [requires_real_node]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A work folder shallow enough for the node's unix sockets (pytest's can be too deep)."""
    folder = Path(tempfile.mkdtemp(prefix="tbn-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_down_restores_the_host_after_kubelet_was_killed_under_running_pods(
    tmp_path: Path, short_dir: Path
) -> None:
    try:
        binaries = Binaries.find()
    except BinariesMissingError as error:
        pytest.fail(f"{error} (make k8s-binaries)")
    assert binaries.kubectl is not None
    busybox, pause = write_test_images(tmp_path)
    workdir = short_dir / "cluster"
    before = HostState.take(workdir)

    up = run_cli(
        "up",
        "--real-node",
        "--dir",
        str(workdir),
        "--image-archive",
        str(busybox),
        "--image-archive",
        str(pause),
        "--sandbox-image",
        PAUSE_REF,
        cwd=tmp_path,
    )
    try:
        assert up.returncode == 0, up.stderr
        assert f"export KUBECONFIG={workdir / 'kubeconfig'}" in up.stdout
        assert f"real node {nodeconfig.NODE_NAME} at {nodeconfig.NODE_IP}" in up.stderr
        kubectl = Kubectl(binaries.kubectl, workdir / "kubeconfig")
        kubectl.apply(
            busybox_pod("sleeper", command=["sleep", "3600"]),
            busybox_pod(
                "root-sleeper",
                user=0,
                command=["sh", "-c", "exec sleep 3600"],
                volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
                volumes=[{"name": "scratch", "emptyDir": {"medium": "Memory"}}],
            ),
            namespace="default",
        )
        kubectl.run(
            "wait", "--for=condition=Ready", "pod/sleeper", "pod/root-sleeper", "--timeout=90s"
        )
        running = HostState.take(workdir)
        assert ip_forward() == "1"
        assert running.mounts, "overlay, tmpfs and netns mounts under the work folder"
        assert running.cgroups, "kubepods cgroups"
        assert any(link.startswith("veth") for link in running.links)
        assert nodeconfig.BRIDGE in running.links

        state = json.loads((workdir / "state.json").read_text())
        kubelet = next(p["pid"] for p in state["processes"] if p["name"] == "kubelet")
        os.kill(kubelet, signal.SIGKILL)
        containers = [line for line in running.processes if "sleep 3600" in line]
        assert len(containers) == 2, running.processes
    finally:
        down = run_cli("down", "--dir", str(workdir), cwd=tmp_path)

    assert down.returncode == 0, down.stderr
    assert not workdir.exists()
    for line in containers:
        assert not process_alive(int(line.split()[0])), f"container left running: {line}"
    assert hostnet.kubepods_cgroups() == []
    assert before.differences(HostState.take(workdir)) == {}


def test_a_start_that_fails_half_way_leaves_the_host_as_it_was(
    tmp_path: Path, short_dir: Path
) -> None:
    """No pause image among the archives: containerd ran, the bridge and rules were made."""
    busybox, _ = write_test_images(tmp_path)
    workdir = short_dir / "cluster"
    before = HostState.take(workdir)
    cluster = LocalCluster(
        workdir=workdir,
        real_node=True,
        images=[busybox],
        sandbox_image="traderbot.local/pause:missing",
    )
    with pytest.raises(realnode.NodeStartError, match="pause:missing is not among"):
        cluster.start()
    assert before.differences(HostState.take(workdir)) == {}
    assert not (workdir / "node").exists()
