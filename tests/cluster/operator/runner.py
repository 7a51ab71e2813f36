"""Run the real operator in-process, in its own thread and event loop, for cluster tests.

NB: the drift timer's interval is read when the handlers are imported, so it is
shortened here, before that import, to keep "wait for two timer passes" short.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

os.environ.setdefault("TRADERBOT_DRIFT_INTERVAL_SECONDS", "2")

import kopf

import traderbot_operator.handlers  # noqa: F401 - registers the handlers
from traderbot_operator import metrics
from traderbot_operator.handlers.converge import OperatorState

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class OperatorRunner:
    """The operator watching one namespace, started and stopped by a test."""

    def __init__(self, *, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.memo = kopf.Memo()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None

    @property
    def state(self) -> OperatorState:
        state: OperatorState = self.memo.state
        return state

    @property
    def writes(self) -> int:
        """Write requests the operator's own client has sent since this start."""
        return self.state.kube.writes

    def timer_passes(self) -> float:
        """Return how many drift-timer passes have completed in this process."""
        total = 0.0
        for metric in metrics.RECONCILE_TOTAL.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.labels.get("trigger") == "timer":
                    total += sample.value
        return total

    def start(self) -> OperatorRunner:
        ready = threading.Event()
        self._stop = threading.Event()
        self.memo = kopf.Memo(kubeconfig=str(self.kubeconfig))

        def run() -> None:
            try:
                asyncio.run(
                    kopf.operator(
                        standalone=True,
                        clusterwide=False,
                        namespaces=[self.namespace],
                        memo=self.memo,
                        stop_flag=self._stop,
                        ready_flag=ready,
                    )
                )
            except BaseException as error:  # noqa: BLE001 - re-raised by stop() or start()
                self._error = error
                ready.set()

        self._thread = threading.Thread(target=run, name="operator", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT) or self._error is not None:
            raise AssertionError(f"operator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(STOP_TIMEOUT)
        alive = self._thread.is_alive()
        self._thread = None
        if alive:
            raise AssertionError("operator did not stop within its deadline")
        if self._error is not None:
            raise AssertionError(f"operator failed: {self._error!r}") from self._error
