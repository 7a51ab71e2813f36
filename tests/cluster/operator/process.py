"""Run the real ``traderbot-operator`` console script as a child process, for cluster tests.

Unlike ``runner.OperatorRunner`` (kopf in a thread of the test process), this is
the operator as it ships: its own interpreter, its own signal handling, its HTTP
servers on real sockets, and a SIGKILL that gives it no chance to tidy up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from support.kube import eventually
from traderbot_devtools.localcluster import LOOPBACK, free_loopback_ports

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
HTTP_TIMEOUT = 5.0
DRIFT_INTERVAL_SECONDS = "2"
Samples = list[tuple[str, dict[str, str], float]]


class OperatorProcess:
    """``traderbot-operator`` started by a test, with its metrics and liveness on loopback."""

    def __init__(
        self,
        *,
        kubeconfig: Path,
        namespaces: list[str] | None,
        log: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Prepare a run watching ``namespaces``, or every namespace when None.

        ``env`` adds environment variables (for example a shorter deadline).
        """
        self.kubeconfig = kubeconfig
        self.env = dict(env or {})
        self.namespaces = namespaces
        self.log = log
        self.metrics_port, self.liveness_port = free_loopback_ports(2)
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """Return the command line: the installed console script, as an SRE would run it."""
        script = Path(sys.executable).with_name("traderbot-operator")
        scope = (
            ["--all-namespaces"]
            if self.namespaces is None
            else [arg for ns in self.namespaces for arg in ("--namespace", ns)]
        )
        return [
            str(script),
            *scope,
            "--metrics-port", str(self.metrics_port),
            "--liveness-port", str(self.liveness_port),
            "--listen-address", LOOPBACK,
            "--log-format", "plain",
        ]  # fmt: skip

    def start(self) -> OperatorProcess:
        """Start the process and wait until its liveness endpoint answers."""
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "TRADERBOT_DRIFT_INTERVAL_SECONDS": DRIFT_INTERVAL_SECONDS,
            **self.env,
        }
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
            )
        eventually(
            self._live, what=f"operator liveness; log:\n{self.tail()}", timeout=START_TIMEOUT
        )
        return self

    def _live(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"operator exited with {self.process.returncode}:\n{self.tail()}")
        return self.healthz()[0] == 200

    def get(self, port: int, path: str) -> tuple[int, str]:
        """GET ``path`` from one of the operator's servers; return (status, body)."""
        url = f"http://{LOOPBACK}:{port}{path}"
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:
            return int(response.status), response.read().decode()

    def healthz(self) -> tuple[int, str]:
        """Return kopf's liveness answer."""
        return self.get(self.liveness_port, "/healthz")

    def metrics(self) -> Samples:
        """Return the (name, labels, value) samples the operator serves on /metrics."""
        text = self.get(self.metrics_port, "/metrics")[1]
        return [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def kill(self) -> None:
        """SIGKILL the operator: no cleanup handler, no last status write, nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT)
        self.process = None

    def stop(self) -> None:
        """Stop the operator as Kubernetes would (SIGTERM), SIGKILL if it hangs."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
            raise AssertionError(f"operator ignored SIGTERM:\n{self.tail()}") from None
        finally:
            self.process = None

    def tail(self, lines: int = 40) -> str:
        """Return the end of the operator's log, for failure messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log yet)"
