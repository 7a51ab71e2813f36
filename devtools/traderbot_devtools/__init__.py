"""Development tooling: a real Kubernetes control plane run as local processes.

A distribution of its own (devtools/pyproject.toml), so the operator's wheel and
image carry none of it; the tests, the benchmarks and ``make demo`` share it.
An import-linter contract keeps the operator and the workload from importing it.
"""

from traderbot_devtools.binaries import Binaries, BinariesMissingError, default_bin_dir
from traderbot_devtools.localcluster import (
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
