"""Find the control-plane binaries that hack/k8s-binaries.sh builds.

A binary is taken from ``KUBEBUILDER_ASSETS`` when that folder has it (so
setup-envtest users build nothing), otherwise from ``TRADERBOT_K8S_BIN_DIR``,
otherwise from the versioned cache folder the script writes to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.34.4"

# NB: keep in step with VERSION_TAG in hack/k8s-binaries.sh (a test compares them).
# "-kube1.34": helm is built to assume Kubernetes 1.34 when no cluster is asked.
VERSION_TAG = (
    f"k8s-{KUBERNETES_VERSION}_etcd-v3.6.16_kwok-v0.7.0_helm-v3.21.4-kube1.34_coredns-v1.14.1"
)

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
TOOLS = ("kubectl", "helm")
# Only a real node (LocalCluster(real_node=True)) needs these: optional here,
# required by testing.realnode when one is asked for.
NODE = ("kubelet", "kube-proxy", "coredns")


class BinariesMissingError(RuntimeError):
    """Raised when a binary the control plane needs has not been built."""


def default_bin_dir() -> Path:
    """Return the folder hack/k8s-binaries.sh builds into."""
    explicit = os.environ.get("TRADERBOT_K8S_BIN_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "traderbot" / "k8s" / VERSION_TAG / "bin"


def _locate(name: str, bin_dir: Path) -> Path | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    for folder in ([Path(assets)] if assets else []) + [bin_dir]:
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the binaries one local cluster runs."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kubectl: Path | None
    helm: Path | None
    kubelet: Path | None = None
    kube_proxy: Path | None = None
    coredns: Path | None = None

    @classmethod
    def find(cls, bin_dir: Path | None = None) -> Binaries:
        """Locate every binary, or say which are missing and how to build them.

        NB: kubelet, kube-proxy and coredns may be missing: a kwok-only cluster
        does not run them (``realnode.require_node_binaries`` asks for them).
        """
        folder = bin_dir if bin_dir is not None else default_bin_dir()
        found = {name: _locate(name, folder) for name in CONTROL_PLANE + TOOLS + NODE}
        missing = [name for name in CONTROL_PLANE if found[name] is None]
        if missing:
            raise BinariesMissingError(
                f"missing {', '.join(missing)} in {folder}"
                + (
                    f" or KUBEBUILDER_ASSETS={os.environ['KUBEBUILDER_ASSETS']}"
                    if os.environ.get("KUBEBUILDER_ASSETS")
                    else ""
                )
                + "; build them with `make k8s-binaries` (hack/k8s-binaries.sh)"
            )

        def required(name: str) -> Path:
            path = found[name]
            assert path is not None  # noqa: S101 - checked just above
            return path

        return cls(
            etcd=required("etcd"),
            kube_apiserver=required("kube-apiserver"),
            kube_controller_manager=required("kube-controller-manager"),
            kube_scheduler=required("kube-scheduler"),
            kwok=required("kwok"),
            kubectl=found["kubectl"],
            helm=found["helm"],
            kubelet=found["kubelet"],
            kube_proxy=found["kube-proxy"],
            coredns=found["coredns"],
        )


def helm_env(home: Path) -> dict[str, str]:
    """Return an environment that gives helm its own home (no user repo, plugin or config).

    NB: helm otherwise writes to the user's ~/.config and ~/.cache; tests and the
    demo keep it in a folder they remove.
    """
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
