"""Run ``traderbot-cluster`` (the local control plane's CLI) and watch its processes, for tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``traderbot-cluster ARGS`` with this interpreter from ``cwd``; never raise on failure."""
    return subprocess.run(
        [sys.executable, "-m", "traderbot_operator.testing.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}
