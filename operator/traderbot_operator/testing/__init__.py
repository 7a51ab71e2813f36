"""Test tooling: a real Kubernetes control plane run as local processes.

Like ``kopf.testing``, this ships with the package so tests and the demo share
it; nothing in the operator itself imports it.
"""

from traderbot_operator.testing.binaries import Binaries, BinariesMissingError, default_bin_dir
from traderbot_operator.testing.localcluster import (
    ClusterAccess,
    ClusterStartError,
    LocalCluster,
)

__all__ = [
    "Binaries",
    "BinariesMissingError",
    "ClusterAccess",
    "ClusterStartError",
    "LocalCluster",
    "default_bin_dir",
]
