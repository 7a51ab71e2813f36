"""Pure parts of the real node: image names, what must be installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from traderbot_devtools import realnode
from traderbot_devtools.binaries import Binaries, BinariesMissingError


@pytest.mark.parametrize(
    ("ref", "stored"),
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("library/busybox:1", "docker.io/library/busybox:1"),
        ("traderbot.local/pause:3.10", "traderbot.local/pause:3.10"),
        ("localhost/app", "localhost/app:latest"),
        ("registry:5000/app:2", "registry:5000/app:2"),
        ("traderbot.local/app@sha256:abc", "traderbot.local/app@sha256:abc"),
    ],
)
def test_image_refs_are_named_as_containerd_stores_them(ref: str, stored: str) -> None:
    assert realnode.normalize_image_ref(ref) == stored


def test_a_kwok_only_binaries_folder_is_refused_for_a_real_node_naming_what_to_build() -> None:
    binaries = Binaries(
        etcd=Path("/x/etcd"),
        kube_apiserver=Path("/x/kube-apiserver"),
        kube_controller_manager=Path("/x/kcm"),
        kube_scheduler=Path("/x/sched"),
        kwok=Path("/x/kwok"),
        kubectl=None,
        helm=None,
        kubelet=Path("/x/kubelet"),
    )
    with pytest.raises(BinariesMissingError, match=r"missing kube-proxy, coredns: build them"):
        realnode.require_node_binaries(binaries)


def test_binaries_find_needs_no_node_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kwok-only cluster starts from a folder built before kubelet was added."""
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        (tmp_path / name).write_text("")
        (tmp_path / name).chmod(0o755)
    found = Binaries.find(tmp_path)
    assert found.kubelet is None
    assert found.kube_proxy is None
    assert found.coredns is None
