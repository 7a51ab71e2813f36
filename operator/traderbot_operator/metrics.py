"""Operator metrics, served on /metrics by ``serve``.

NB: metric objects are module-level singletons in their own registry, so running
the operator twice in one process (tests) does not register them twice.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY: Final = CollectorRegistry(auto_describe=True)
PHASES: Final = ("Pending", "Progressing", "Ready", "Degraded", "Paused", "Hibernated", "Failed")


def _per_bot(name: str, documentation: str) -> Gauge:
    """Return a gauge with one series per bot (labels ``namespace`` and ``bot``)."""
    return Gauge(name, documentation, ["namespace", "bot"], registry=REGISTRY)


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
BOT_PHASE: Final = Gauge(
    "traderbot_operator_bot_phase",
    "1 for each managed TraderBot, labelled with its current phase (one series per bot).",
    ["namespace", "bot", "phase"],
    registry=REGISTRY,
)
API_REQUESTS: Final = Counter(
    "traderbot_operator_api_requests_total",
    "Requests sent to the Kubernetes API, by verb and kind.",
    ["verb", "kind"],
    registry=REGISTRY,
)
BACKUP_HEALTHY: Final = _per_bot(
    "traderbot_operator_backup_healthy",
    "1 when the bot's last scheduled backup succeeded (or none ran yet), 0 when it failed.",
)
TRADING: Final = {
    "halted": _per_bot(
        "traderbot_operator_trading_halted",
        "1 when the bot's kill switch is engaged (by a person or the daily loss limit).",
    ),
    "kill_switch": _per_bot(
        "traderbot_operator_trading_kill_switch",
        "1 when a person engaged the bot's kill switch.",
    ),
    "daily_loss_halt": _per_bot(
        "traderbot_operator_trading_daily_loss_halt",
        "1 when the daily loss limit halted the bot's trading.",
    ),
    "realized_pnl_today": _per_bot(
        "traderbot_operator_trading_realized_pnl_today",
        "The bot's realized profit and loss of the UTC day, as last read.",
    ),
    "open_orders": _per_bot(
        "traderbot_operator_trading_open_orders",
        "The bot's open orders, as last read.",
    ),
}
TRADING_READ_OK: Final = _per_bot(
    "traderbot_operator_trading_read_ok",
    "1 when the last read of the bot's GET /api/v1/risk succeeded, 0 when it failed.",
)
TRADING_READS: Final = Counter(
    "traderbot_operator_trading_reads_total",
    "Reads of the bots' GET /api/v1/risk, by result (ok, failed).",
    ["result"],
    registry=REGISTRY,
)
BACKUP_VERIFIED: Final = _per_bot(
    "traderbot_operator_backup_verified",
    "1 when the bot's last scheduled backup verification passed (or none ran yet), 0 when it"
    " failed.",
)
BACKUP_LAST_SUCCESS: Final = _per_bot(
    "traderbot_operator_backup_last_success_timestamp_seconds",
    "Unix time of the bot's last successful scheduled backup (status.lastBackup.time).",
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
    """Set the bots-by-phase gauges from a map of (namespace, name) -> phase.

    NB: a bot's phase series is replaced, never cleared and refilled: a scrape in
    between would see the bot without a phase and reset an alert's ``for`` clock.
    A bot gone from the map loses its series, so no stale alert keeps firing.
    """
    counts = dict.fromkeys(PHASES, 0)
    for phase in phases.values():
        counts[phase] = counts.get(phase, 0) + 1
    for phase, count in counts.items():
        BOTS.labels(phase=phase).set(count)
    current = {(namespace, name, phase) for (namespace, name), phase in phases.items()}
    for namespace, name, phase in current:
        BOT_PHASE.labels(namespace=namespace, bot=name, phase=phase).set(1)
    exported = {
        (sample.labels["namespace"], sample.labels["bot"], sample.labels["phase"])
        for family in BOT_PHASE.collect()
        for sample in family.samples
    }
    for namespace, name, phase in exported - current:
        with contextlib.suppress(KeyError):  # removed meanwhile by another caller
            BOT_PHASE.remove(namespace, name, phase)


def _set_or_drop(gauge: Gauge, *, namespace: str, bot: str, value: float | None) -> None:
    """Set a bot's series of ``gauge``, or remove it when there is nothing to report.

    NB: a bot deleted, or with the feature turned off, must not leave a 0 series
    behind: an alert on it would fire until the operator restarts.
    """
    if value is None:
        with contextlib.suppress(KeyError):  # never set, or already dropped
            gauge.remove(namespace, bot)
        return
    gauge.labels(namespace=namespace, bot=bot).set(value)


def set_backup_health(*, namespace: str, bot: str, healthy: bool | None) -> None:
    """Set a bot's backup-health gauge; None (backups off) drops its series."""
    value = None if healthy is None else float(healthy)
    _set_or_drop(BACKUP_HEALTHY, namespace=namespace, bot=bot, value=value)


def set_backup_verified(*, namespace: str, bot: str, verified: bool | None) -> None:
    """Set a bot's verification gauge; None (verification off) drops its series."""
    value = None if verified is None else float(verified)
    _set_or_drop(BACKUP_VERIFIED, namespace=namespace, bot=bot, value=value)


def set_last_backup(*, namespace: str, bot: str, time: datetime | None) -> None:
    """Set the time of a bot's last successful backup; None (none, or backups off) drops it."""
    value = None if time is None else time.timestamp()
    _set_or_drop(BACKUP_LAST_SUCCESS, namespace=namespace, bot=bot, value=value)


def forget_bot(*, namespace: str, bot: str) -> None:
    """Drop every per-bot series of a bot that is gone (its phase goes with set_phases)."""
    set_backup_health(namespace=namespace, bot=bot, healthy=None)
    set_backup_verified(namespace=namespace, bot=bot, verified=None)
    set_last_backup(namespace=namespace, bot=bot, time=None)
    drop_trading(namespace=namespace, bot=bot)


def set_trading(*, namespace: str, bot: str, values: Mapping[str, float] | None) -> None:
    """Set a bot's trading gauges from one read; ``None`` (a failed read) drops the values.

    NB: after a failed read the last numbers would be stale: only ``read_ok`` 0 stays,
    for an alert to fire on.
    """
    TRADING_READS.labels(result="failed" if values is None else "ok").inc()
    TRADING_READ_OK.labels(namespace=namespace, bot=bot).set(0 if values is None else 1)
    for name, gauge in TRADING.items():
        value = None if values is None else values[name]
        _set_or_drop(gauge, namespace=namespace, bot=bot, value=value)


def drop_trading(*, namespace: str, bot: str) -> None:
    """Remove every trading series of a bot that is gone (or no longer read)."""
    for gauge in (*TRADING.values(), TRADING_READ_OK):
        _set_or_drop(gauge, namespace=namespace, bot=bot, value=None)


def serve(*, port: int, address: str = "0.0.0.0") -> tuple[WSGIServer, threading.Thread]:  # noqa: S104 - a pod serves on its own IP
    """Serve /metrics on ``address:port`` in a background thread; return it to shut down."""
    return start_http_server(port, addr=address, registry=REGISTRY)


def shut_down(served: tuple[WSGIServer, threading.Thread]) -> None:
    """Stop a server ``serve`` started, and wait (briefly) for its thread."""
    server, thread = served
    server.shutdown()
    thread.join(timeout=5)
