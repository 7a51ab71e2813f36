"""Operator metrics, served on /metrics by ``serve``.

NB: metric objects are module-level singletons in their own registry, so running
the operator twice in one process (tests) does not register them twice.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY: Final = CollectorRegistry(auto_describe=True)
PHASES: Final = ("Pending", "Progressing", "Ready", "Degraded", "Paused", "Hibernated", "Failed")

RECONCILE_TOTAL: Final = Counter(
    "traderbot_operator_reconcile_total",
    "Reconciles of TraderBots, by what triggered them and how they ended.",
    ["trigger", "result"],
    registry=REGISTRY,
)
RECONCILE_ERRORS: Final = Counter(
    "traderbot_operator_reconcile_errors_total",
    "Reconciles that failed, by error class.",
    ["error"],
    registry=REGISTRY,
)
RECONCILE_DURATION: Final = Histogram(
    "traderbot_operator_reconcile_duration_seconds",
    "Wall time of one reconcile of one TraderBot.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
BOTS: Final = Gauge(
    "traderbot_operator_bots",
    "Managed TraderBots by phase.",
    ["phase"],
    registry=REGISTRY,
)
API_REQUESTS: Final = Counter(
    "traderbot_operator_api_requests_total",
    "Requests sent to the Kubernetes API, by verb and kind.",
    ["verb", "kind"],
    registry=REGISTRY,
)
BACKUP_HEALTHY: Final = Gauge(
    "traderbot_operator_backup_healthy",
    "1 when the bot's last scheduled backup succeeded (or none ran yet), 0 when it failed.",
    ["namespace", "bot"],
    registry=REGISTRY,
)
WRITES: Final = Counter(
    "traderbot_operator_child_writes_total",
    "Child objects created, patched or deleted.",
    ["verb", "kind"],
    registry=REGISTRY,
)

LEADER: Final = Gauge(
    "traderbot_operator_leader",
    "1 on the replica that holds the leader Lease and reconciles, 0 on a standby.",
    registry=REGISTRY,
)
LEADERSHIP_CHANGES: Final = Counter(
    "traderbot_operator_leadership_acquired_total",
    "Times this replica took the leader Lease.",
    registry=REGISTRY,
)


def set_phases(phases: Mapping[tuple[str, str], str]) -> None:
    """Set the bots-by-phase gauge from a map of (namespace, name) -> phase."""
    counts = dict.fromkeys(PHASES, 0)
    for phase in phases.values():
        counts[phase] = counts.get(phase, 0) + 1
    for phase, count in counts.items():
        BOTS.labels(phase=phase).set(count)


def set_backup_health(*, namespace: str, bot: str, healthy: bool | None) -> None:
    """Set a bot's backup-health gauge, or drop its series when there is none to report.

    NB: a bot deleted, or with backups turned off, must not leave a 0 series behind:
    the BackupFailing alert would fire until the operator restarts.
    """
    if healthy is None:
        with contextlib.suppress(KeyError):  # never set, or already dropped
            BACKUP_HEALTHY.remove(namespace, bot)
        return
    BACKUP_HEALTHY.labels(namespace=namespace, bot=bot).set(1 if healthy else 0)


def serve(*, port: int, address: str = "0.0.0.0") -> tuple[WSGIServer, threading.Thread]:  # noqa: S104 - a pod serves on its own IP
    """Serve /metrics on ``address:port`` in a background thread; return it to shut down."""
    return start_http_server(port, addr=address, registry=REGISTRY)
