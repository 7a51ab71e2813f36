"""Run ``traderbot-cluster`` (the local control plane's CLI) and watch its processes, for tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_cli(
    *args: str, cwd: Path, timeout: float = 240, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``traderbot-cluster ARGS`` with this interpreter from ``cwd``; never raise on failure.

    ``env`` replaces the environment (e.g. a PATH that lacks a tool).
    """
    return subprocess.run(
        [sys.executable, "-m", "traderbot_devtools.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        check=False,
    )


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}
