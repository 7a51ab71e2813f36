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
TRADING: Final = {
    "halted": Gauge(
        "traderbot_operator_trading_halted",
        "1 when the bot's kill switch is engaged (by a person or the daily loss limit).",
        ["namespace", "bot"],
        registry=REGISTRY,
    ),
    "kill_switch": Gauge(
        "traderbot_operator_trading_kill_switch",
        "1 when a person engaged the bot's kill switch.",
        ["namespace", "bot"],
        registry=REGISTRY,
    ),
    "daily_loss_halt": Gauge(
        "traderbot_operator_trading_daily_loss_halt",
        "1 when the daily loss limit halted the bot's trading.",
        ["namespace", "bot"],
        registry=REGISTRY,
    ),
    "realized_pnl_today": Gauge(
        "traderbot_operator_trading_realized_pnl_today",
        "The bot's realized profit and loss of the UTC day, as last read.",
        ["namespace", "bot"],
        registry=REGISTRY,
    ),
    "open_orders": Gauge(
        "traderbot_operator_trading_open_orders",
        "The bot's open orders, as last read.",
        ["namespace", "bot"],
        registry=REGISTRY,
    ),
}
TRADING_READ_OK: Final = Gauge(
    "traderbot_operator_trading_read_ok",
    "1 when the last read of the bot's GET /api/v1/risk succeeded, 0 when it failed.",
    ["namespace", "bot"],
    registry=REGISTRY,
)
TRADING_READS: Final = Counter(
    "traderbot_operator_trading_reads_total",
    "Reads of the bots' GET /api/v1/risk, by result (ok, failed).",
    ["result"],
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


def set_trading(*, namespace: str, bot: str, values: Mapping[str, float] | None) -> None:
    """Set a bot's trading gauges from one read; ``None`` (a failed read) drops the values.

    NB: after a failed read the last numbers would be stale: only ``read_ok`` 0 stays,
    for an alert to fire on.
    """
    TRADING_READS.labels(result="failed" if values is None else "ok").inc()
    TRADING_READ_OK.labels(namespace=namespace, bot=bot).set(0 if values is None else 1)
    for name, gauge in TRADING.items():
        if values is None:
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, bot)
        else:
            gauge.labels(namespace=namespace, bot=bot).set(values[name])


def drop_trading(*, namespace: str, bot: str) -> None:
    """Remove every trading series of a bot that is gone (or no longer read)."""
    for gauge in (*TRADING.values(), TRADING_READ_OK):
        with contextlib.suppress(KeyError):  # never set, or already dropped
            gauge.remove(namespace, bot)


def serve(*, port: int, address: str = "0.0.0.0") -> tuple[WSGIServer, threading.Thread]:  # noqa: S104 - a pod serves on its own IP
    """Serve /metrics on ``address:port`` in a background thread; return it to shut down."""
    return start_http_server(port, addr=address, registry=REGISTRY)
