"""What ``kubectl traderbot status`` shows, built from the objects as read (pure).

The bot, its pods, its backup and restore records go in as the API server's
dicts; one typed ``StatusReport`` comes out, which ``-o json|yaml`` prints as is
and ``render_status`` lays out for people.

NB: every read of the bot's status is lenient (dict lookups, not the operator's
``extra="forbid"`` models): a plugin one release older or newer than the operator
must still show what it can, and ``status.trading`` comes from a field other
releases may not have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from traderbot_operator.desired.common import (
    COMPONENT_API,
    COMPONENT_BACKUP,
    COMPONENT_CACHE,
    COMPONENT_DATABASE,
)

COMPONENT_LABEL: Final = "app.kubernetes.io/component"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
# The names people use for components (the issue's ``--component``) -> the label value.
COMPONENTS: Final = {
    "api": COMPONENT_API,
    "database": COMPONENT_DATABASE,
    "redis": COMPONENT_CACHE,
    "backup": COMPONENT_BACKUP,
}
RECENT_RUNS: Final = 5
UNKNOWN: Final = "unknown"


class View(BaseModel):
    """Base of the report's parts: camelCase in JSON/YAML, like the resources it reads."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class ConditionView(View):
    """One condition of the bot."""

    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None


class PodView(View):
    """One pod: its state as ``kubectl get pods`` sums it up."""

    name: str
    status: str
    ready: str
    restarts: int
    node: str | None = None
    started: str | None = None


class ComponentView(View):
    """One component (api, database, redis, backup) and its pods."""

    name: str
    pods: tuple[PodView, ...] = ()


class VersionView(View):
    """The version running, the one asked for, the change in progress and the history."""

    current: str | None = None
    desired: str | None = None
    upgrade: dict[str, Any] | None = None
    history: tuple[dict[str, Any], ...] = ()


class RunView(View):
    """One TraderBotBackup or TraderBotRestore."""

    name: str
    phase: str | None = None
    scheduled: bool | None = None
    backup: str | None = None
    started: str | None = None
    finished: str | None = None
    size_bytes: int | None = None
    message: str | None = None
    pruned_at: str | None = None


class BackupsView(View):
    """Backups: the last success, health, the verification result and the latest runs."""

    last_success: str | None = None
    healthy: ConditionView | None = None
    verified: ConditionView | None = None
    runs: tuple[RunView, ...] = ()


class StatusReport(View):
    """Everything ``status`` shows about one bot."""

    name: str
    namespace: str
    phase: str | None = None
    ready: str | None = None
    mode: str | None = None
    paused: bool = False
    hibernate: bool = False
    generation: int | None = None
    observed_generation: int | None = None
    endpoint: str | None = None
    conditions: tuple[ConditionView, ...] = ()
    components: tuple[ComponentView, ...] = ()
    version: VersionView = VersionView()
    backups: BackupsView = BackupsView()
    restores: tuple[RunView, ...] = ()
    maintenance: dict[str, Any] | None = None
    trading: dict[str, Any] | None = None


def _condition(body: Mapping[str, Any]) -> ConditionView:
    return ConditionView(
        type=str(body.get("type")),
        status=str(body.get("status", UNKNOWN)),
        reason=body.get("reason"),
        message=body.get("message"),
        last_transition_time=body.get("lastTransitionTime"),
    )


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """Sum one pod up: status (Terminating wins over the phase), ready containers, restarts.

    NB: "Ready" counts containers, as ``kubectl get pods`` does, so a pod whose
    sidecar crashes shows 1/2 even when its phase is Running.
    """
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    declared = len((pod.get("spec") or {}).get("containers") or []) or len(containers)
    ready = sum(1 for c in containers if c.get("ready"))
    waiting = [
        c["state"]["waiting"].get("reason")
        for c in containers
        if (c.get("state") or {}).get("waiting")
    ]
    phase = status.get("phase") or "Unknown"
    shown = (
        "Terminating"
        if meta.get("deletionTimestamp")
        else next((reason for reason in waiting if reason), phase)
    )
    return PodView(
        name=meta.get("name", "?"),
        status=shown,
        ready=f"{ready}/{declared}",
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        node=(pod.get("spec") or {}).get("nodeName"),
        started=status.get("startTime"),
    )


def components(pods: Iterable[Mapping[str, Any]]) -> tuple[ComponentView, ...]:
    """Group pods by component, in the order api, database, redis, backup (empty ones kept).

    NB: a component with no pod is shown, with none: a hibernated or scaled-to-zero
    bot must read as "no pods", not as a component that does not exist.
    """
    by_label: dict[str, list[PodView]] = {label: [] for label in COMPONENTS.values()}
    for pod in pods:
        label = ((pod.get("metadata") or {}).get("labels") or {}).get(COMPONENT_LABEL)
        if label in by_label:
            by_label[label].append(pod_view(pod))
    return tuple(
        ComponentView(name=name, pods=tuple(sorted(by_label[label], key=lambda p: p.name)))
        for name, label in COMPONENTS.items()
    )


def _started(body: Mapping[str, Any]) -> str:
    status = body.get("status") or {}
    meta = body.get("metadata") or {}
    return str(status.get("startTime") or meta.get("creationTimestamp") or "")


def runs_of(bot_name: str, bodies: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the TraderBotBackups or -Restores of one bot (``spec.botName``), newest first."""
    mine = [b for b in bodies if (b.get("spec") or {}).get("botName") == bot_name]
    return sorted(mine, key=_started, reverse=True)


def run_view(body: Mapping[str, Any]) -> RunView:
    """Sum up one TraderBotBackup or TraderBotRestore."""
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    return RunView(
        name=(body.get("metadata") or {}).get("name", "?"),
        phase=status.get("phase"),
        scheduled=status.get("scheduled"),
        backup=spec.get("backupName"),
        started=status.get("startTime") or (body.get("metadata") or {}).get("creationTimestamp"),
        finished=status.get("completionTime"),
        size_bytes=status.get("sizeBytes"),
        message=status.get("error") or status.get("message"),
        pruned_at=status.get("prunedAt"),
    )


def build_status(
    bot: Mapping[str, Any],
    *,
    pods: Iterable[Mapping[str, Any]],
    backups: Iterable[dict[str, Any]],
    restores: Iterable[dict[str, Any]],
    recent: int = RECENT_RUNS,
) -> StatusReport:
    """Return the status report of ``bot`` from what was read (the bot's pods, every run)."""
    meta = bot.get("metadata") or {}
    spec = bot.get("spec") or {}
    status = bot.get("status") or {}
    name = str(meta.get("name"))
    conditions = tuple(_condition(c) for c in status.get("conditions") or [])
    by_type = {c.type: c for c in conditions}
    trading = status.get("trading")
    return StatusReport(
        name=name,
        namespace=str(meta.get("namespace")),
        phase=status.get("phase"),
        ready=status.get("ready"),
        mode=spec.get("mode"),
        paused=bool(spec.get("paused")),
        hibernate=bool(spec.get("hibernate")),
        generation=meta.get("generation"),
        observed_generation=status.get("observedGeneration"),
        endpoint=(status.get("endpoints") or {}).get("api"),
        conditions=conditions,
        components=components(pods),
        version=VersionView(
            current=status.get("version"),
            desired=spec.get("version"),
            upgrade=status.get("upgrade"),
            history=tuple(status.get("versionHistory") or ()),
        ),
        backups=BackupsView(
            last_success=(status.get("lastBackup") or {}).get("time"),
            healthy=by_type.get("BackupHealthy"),
            verified=by_type.get("BackupVerified"),
            runs=tuple(run_view(b) for b in runs_of(name, backups)[:recent]),
        ),
        restores=tuple(run_view(r) for r in runs_of(name, restores)[:recent]),
        maintenance=status.get("maintenance"),
        trading=trading if isinstance(trading, dict) else None,
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Lay ``rows`` out in columns under ``headers``, as kubectl does (two spaces apart).

    ``None`` shows as ``-`` so an empty cell never shifts what follows it.
    """
    cells = [list(headers)] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _age(timestamp: str | None, *, now: datetime) -> str | None:
    """Return how long ago ``timestamp`` (RFC 3339) was, kubectl-style (``5d``, ``3h``, ``42s``)."""
    if not timestamp:
        return None
    try:
        then = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _scalars(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if not isinstance(v, dict | list))


def render_status(report: StatusReport, *, now: datetime) -> str:
    """Lay the report out for people: one screen, sections in the order an SRE asks."""
    lines = [
        f"TraderBot {report.namespace}/{report.name}",
        f"  Phase:     {report.phase or UNKNOWN}   Ready: {report.ready or '-'}   "
        f"Mode: {report.mode or '-'}",
        f"  Spec:      paused={str(report.paused).lower()} "
        f"hibernate={str(report.hibernate).lower()} generation={report.generation} "
        f"(observed {report.observed_generation})",
        f"  Endpoint:  {report.endpoint or '-'}",
        f"  Trading:   {_scalars(report.trading) if report.trading else UNKNOWN}",
        "",
        "Conditions",
        *(
            f"  {line}"
            for line in table(
                ("TYPE", "STATUS", "REASON", "AGE", "MESSAGE"),
                (
                    (c.type, c.status, c.reason, _age(c.last_transition_time, now=now), c.message)
                    for c in report.conditions
                ),
            )
        ),
        "",
        "Components",
        *(
            f"  {line}"
            for line in table(
                ("COMPONENT", "POD", "STATUS", "READY", "RESTARTS", "AGE", "NODE"),
                (
                    (
                        c.name,
                        p.name,
                        p.status,
                        p.ready,
                        p.restarts,
                        _age(p.started, now=now),
                        p.node,
                    )
                    for c in report.components
                    for p in c.pods or (PodView(name="-", status="no pods", ready="-", restarts=0),)
                ),
            )
        ),
        "",
        f"Version: {report.version.current or '-'} (spec {report.version.desired or '-'})",
    ]
    if report.version.upgrade:
        lines.append(f"  Upgrade: {_scalars(report.version.upgrade)}")
    lines += [
        f"  {line}"
        for line in table(
            ("VERSION", "OUTCOME", "TIME"),
            ((h.get("version"), h.get("outcome"), h.get("time")) for h in report.version.history),
        )
    ]
    backups = report.backups
    lines += ["", f"Backups: last success {backups.last_success or 'never'}"]
    for label, condition in (("Healthy", backups.healthy), ("Verified", backups.verified)):
        shown = (
            f"{condition.status} {condition.reason or ''}: {condition.message or ''}".rstrip(": ")
            if condition
            else UNKNOWN
        )
        lines.append(f"  {label}: {shown}")
    lines += [
        f"  {line}"
        for line in table(
            ("NAME", "PHASE", "SCHEDULED", "SIZE", "STARTED", "FINISHED", "PRUNED", "MESSAGE"),
            (
                (r.name, r.phase, r.scheduled, r.size_bytes, r.started, r.finished, r.pruned_at,
                 r.message)
                for r in backups.runs
            ),
        )
    ]  # fmt: skip
    if report.restores:
        lines += ["", "Restores"]
        lines += [
            f"  {line}"
            for line in table(
                ("NAME", "BACKUP", "PHASE", "STARTED", "FINISHED", "MESSAGE"),
                ((r.name, r.backup, r.phase, r.started, r.finished, r.message)
                 for r in report.restores),
            )
        ]  # fmt: skip
    lines += ["", "Maintenance"]
    maintenance = report.maintenance
    if not maintenance:
        lines.append("  none reported yet (the operator copies it from the next backup)")
    else:
        lines.append(f"  {_scalars(maintenance)}")
        lines += [
            f"  {line}"
            for line in table(
                ("JOB", "PROC", "HYPERTABLE", "INTERVAL", "LAST RUN", "NEXT START"),
                (
                    (j.get("jobId"), j.get("proc"), j.get("hypertable"),
                     j.get("scheduleInterval"), j.get("lastRunStatus"), j.get("nextStart"))
                    for j in maintenance.get("jobs") or []
                ),
            )
        ]  # fmt: skip
    return "\n".join(lines) + "\n"
