"""The pinned helm, pointed at a cluster: shared by the cluster and e2e tiers."""

from __future__ import annotations

import subprocess
from pathlib import Path

from traderbot_devtools.binaries import helm_env


class HelmCli:
    """The pinned helm, pointed at the cluster under test, with a home of its own."""

    def __init__(self, *, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.home = home

    def __call__(self, *args: str, timeout: float = 300.0) -> str:
        result = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            env=helm_env(self.home),
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout
