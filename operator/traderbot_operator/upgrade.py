"""Pure upgrade logic: which version to deploy while ``spec.version`` changes, and what to report.

The seed's upgrade procedure is "back up, roll out, check health, roll back". Here it
is a small state machine kept in ``status.upgrade`` (so an operator restart resumes
it): BackingUp -> RollingOut -> done (``status.versionHistory`` gets ``Upgraded``),
or RollingOut -> RolledBack when the new pods are not Ready by the deadline. Nothing
here talks to the API; ``handlers/converge.py`` fetches the Deployment and the
pre-upgrade TraderBotBackup, asks ``decide_upgrade`` and carries the decision out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from traderbot_operator.desired.backup import PRE_UPGRADE_LABEL, build_backup_record
from traderbot_operator.desired.common import RUN_NAME_MAX_LENGTH, Manifest, fit_name
from traderbot_operator.models import (
    BackupRun,
    TraderBot,
    UpgradeStatus,
    VersionOutcome,
    VersionRecord,
)
from traderbot_operator.reconcile import api_state
from traderbot_operator.schedule import parse_time

HISTORY_LIMIT: Final = 5
VERSION_LABEL: Final = "app.kubernetes.io/version"
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class UpgradeDecision:
    """What to deploy and report for one pass.

    ``deploy_version`` is the version the API Deployment (and backup pods) get, which
    differs from ``spec.version`` while the pre-upgrade backup runs and after a
    rollback. ``upgrade`` is the new ``status.upgrade`` (None: no upgrade to report);
    ``failed`` with ``reason``/``message`` is the UpgradeFailed condition;
    ``create_backup`` names a TraderBotBackup to create now.
    """

    deploy_version: str
    upgrade: UpgradeStatus | None
    history: tuple[VersionRecord, ...]
    failed: bool
    reason: str
    message: str
    create_backup: str | None = None
    event: tuple[EventType, str, str] | None = None


def record(
    history: Sequence[VersionRecord], *, version: str, outcome: VersionOutcome, now: datetime
) -> tuple[VersionRecord, ...]:
    """Return ``history`` with one more entry, keeping only the last ``HISTORY_LIMIT``."""
    entry = VersionRecord(version=version, time=now.strftime(_TIME_FORMAT), outcome=outcome)
    return (*history, entry)[-HISTORY_LIMIT:]


def pre_upgrade_backup_name(bot: TraderBot) -> str:
    """Return the TraderBotBackup name of the current (or a new) upgrade's backup.

    NB: named after the generation that asked for the version, so each upgrade gets
    its own backup (and a retried upgrade to the same version a fresh one), while a
    restart of the operator finds the one it already made.
    """
    current = bot.status.upgrade
    if current is not None and current.target_version == bot.spec.version and current.backup_name:
        return current.backup_name
    return fit_name(
        f"{bot.name}-pre-upgrade", limit=RUN_NAME_MAX_LENGTH, suffix=f"-g{bot.generation}"
    )


def build_pre_upgrade_backup(bot: TraderBot, *, name: str) -> Manifest:
    """Build the TraderBotBackup taken before an upgrade.

    NB: like the scheduled records it follows ``deletionPolicy``, so with Retain a
    re-created bot can still restore the backup taken before its last upgrade.
    """
    return build_backup_record(bot, name=name, label=PRE_UPGRADE_LABEL)


def running_version_bot(bot: TraderBot) -> TraderBot:
    """Return ``bot`` with ``spec.version`` set to the version that runs (for backup pods).

    NB: a pre-upgrade backup must be taken by the tool of the version that wrote the
    data, not by the new (maybe broken) image.
    """
    running = bot.status.version
    if running is None or running == bot.spec.version:
        return bot
    return bot.model_copy(update={"spec": bot.spec.model_copy(update={"version": running})})


def rollout_done(bot: TraderBot, deployment: Mapping[str, Any] | None, *, version: str) -> bool:
    """Return whether the API Deployment runs ``version`` with every pod Ready and updated."""
    if deployment is None:
        return False
    template = (deployment.get("spec") or {}).get("template") or {}
    if ((template.get("metadata") or {}).get("labels") or {}).get(VERSION_LABEL) != version:
        return False
    state = api_state(bot, deployment)
    return state.ready and not state.progressing


def _steady(*, running: str, history: tuple[VersionRecord, ...]) -> str:
    message = f"version {running} is running"
    if history:
        last = history[-1]
        message += f"; last change: {last.version} {last.outcome} at {last.time}"
    return message


def decide_upgrade(
    bot: TraderBot,
    *,
    deployment: Mapping[str, Any] | None,
    backup: BackupRun | None,
    held: bool,
    now: datetime,
) -> UpgradeDecision:
    """Return the version to deploy and the upgrade's status for one reconcile pass.

    ``deployment`` is the API Deployment as observed before this pass writes;
    ``backup`` the TraderBotBackup named ``pre_upgrade_backup_name(bot)``, if it
    exists; ``held`` says a restore keeps the API at zero replicas (then nothing
    moves: no pod can prove a version Ready).

    NB: after an automatic rollback the failed version stays in ``status.upgrade``
    (RolledBack) and is not retried until ``spec.version`` changes: no loop.
    """
    target = bot.spec.version
    running = bot.status.version
    current = bot.status.upgrade
    history = bot.status.version_history
    if running is None:
        if not history and rollout_done(bot, deployment, version=target):
            history = record(history, version=target, outcome="Installed", now=now)
        return UpgradeDecision(
            deploy_version=target,
            upgrade=None,
            history=history,
            failed=False,
            reason="Installing" if not history else "UpToDate",
            message=f"installing version {target}" if not history else f"version {target}",
        )

    if target == running:
        cancelled: tuple[EventType, str, str] | None = None
        if current is not None and current.phase != "RolledBack":
            history = record(history, version=current.target_version, outcome="Cancelled", now=now)
            cancelled = (
                "Normal",
                "UpgradeCancelled",
                f"spec.version is {running} again: the upgrade to {current.target_version} "
                "was cancelled",
            )
        return UpgradeDecision(
            deploy_version=running,
            upgrade=None,
            history=history,
            failed=False,
            reason="UpToDate",
            message=_steady(running=running, history=history),
            event=cancelled,
        )

    if held:
        rolling = current is not None and current.phase == "RollingOut"
        return UpgradeDecision(
            deploy_version=target if rolling else running,
            upgrade=current,
            history=history,
            failed=current is not None and current.phase in {"BackupFailed", "RolledBack"},
            reason="HeldForRestore",
            message="a restore holds the API; the upgrade resumes when it ends",
        )

    event: tuple[EventType, str, str] | None = None
    if current is None or current.target_version != target:
        if current is not None and current.phase != "RolledBack":
            history = record(history, version=current.target_version, outcome="Cancelled", now=now)
        current = UpgradeStatus(
            phase="BackingUp",
            from_version=running,
            target_version=target,
            message=f"backing up before the upgrade from {running} to {target}",
        )
        event = ("Normal", "UpgradeStarted", f"upgrading from {running} to {target}")
    step = _Step(bot=bot, running=running, history=history, now=now, event=event)
    if current.phase in {"BackingUp", "BackupFailed"}:
        decision = _backing_up(step, current=current, backup=backup)
        if decision.upgrade is None or decision.upgrade.phase != "RollingOut":
            return decision
        current = decision.upgrade
    if current.phase == "RollingOut":
        return _rolling_out(step, current=current, deployment=deployment)
    # RolledBack: stay on the running version until spec.version changes.
    return UpgradeDecision(
        deploy_version=running,
        upgrade=current,
        history=history,
        failed=True,
        reason="RolledBack",
        message=current.message or f"{target} was rolled back to {running}",
    )


@dataclass(frozen=True)
class _Step:
    """What every step of an upgrade pass needs to know."""

    bot: TraderBot
    running: str
    history: tuple[VersionRecord, ...]
    now: datetime
    event: tuple[EventType, str, str] | None

    @property
    def stamp(self) -> str:
        return self.now.strftime(_TIME_FORMAT)


def _backing_up(
    step: _Step, *, current: UpgradeStatus, backup: BackupRun | None
) -> UpgradeDecision:
    """Return the decision while the pre-upgrade backup is wanted, running or failed.

    A decision whose upgrade is RollingOut means "the backup is done (or not wanted):
    roll out now", for the caller to carry on in the same pass.
    """
    bot, running = step.bot, step.running
    target = bot.spec.version
    name = pre_upgrade_backup_name(bot)
    if not (bot.spec.upgrade.pre_upgrade_backup and bot.spec.backup.enabled) or (
        backup is not None and backup.status.phase == "Completed"
    ):
        rolling = current.model_copy(
            update={"phase": "RollingOut", "started_at": step.stamp, "message": None}
        )
        return UpgradeDecision(
            deploy_version=target,
            upgrade=rolling,
            history=step.history,
            failed=False,
            reason="RollingOut",
            message="",
            event=step.event,
        )
    if backup is not None and backup.status.phase == "Failed":
        message = (
            f"the pre-upgrade backup {name} failed: "
            f"{backup.status.error or 'no reason given'}; {running} keeps running and the "
            f"upgrade to {target} waits: delete TraderBotBackup {name} to try again, "
            "or set spec.upgrade.preUpgradeBackup to false"
        )
        event = step.event
        if current.phase != "BackupFailed":
            event = ("Warning", "PreUpgradeBackupFailed", message)
        return UpgradeDecision(
            deploy_version=running,
            upgrade=current.model_copy(
                update={"phase": "BackupFailed", "backup_name": name, "message": message}
            ),
            history=step.history,
            failed=True,
            reason="PreUpgradeBackupFailed",
            message=message,
            event=event,
        )
    phase = "not created yet" if backup is None else backup.status.phase or "Pending"
    message = f"waiting for the pre-upgrade backup {name} ({phase}) before rolling out {target}"
    return UpgradeDecision(
        deploy_version=running,
        upgrade=current.model_copy(
            update={"phase": "BackingUp", "backup_name": name, "message": message}
        ),
        history=step.history,
        failed=False,
        reason="BackingUp",
        message=message,
        create_backup=name if backup is None else None,
        event=step.event,
    )


def _rolling_out(
    step: _Step, *, current: UpgradeStatus, deployment: Mapping[str, Any] | None
) -> UpgradeDecision:
    """Return the decision while the new version rolls out: done, waiting, or rolled back."""
    bot, running = step.bot, step.running
    target = bot.spec.version
    if rollout_done(bot, deployment, version=target):
        history = record(step.history, version=target, outcome="Upgraded", now=step.now)
        return UpgradeDecision(
            deploy_version=target,
            upgrade=None,
            history=history,
            failed=False,
            reason="UpToDate",
            message=_steady(running=target, history=history),
            event=("Normal", "Upgraded", f"upgraded from {running} to {target}"),
        )
    seconds = bot.spec.upgrade.progress_deadline_seconds
    started = parse_time(current.started_at) or step.now
    deadline = started + timedelta(seconds=seconds)
    if step.now < deadline:
        message = (
            f"rolling out {target} (from {running}); rolled back unless every new pod is "
            f"Ready by {deadline.strftime(_TIME_FORMAT)}"
        )
        event = step.event
        if event is None and current.message is None:
            event = ("Normal", "RollingOut", message)
        return UpgradeDecision(
            deploy_version=target,
            upgrade=current.model_copy(
                update={"started_at": started.strftime(_TIME_FORMAT), "message": message}
            ),
            history=step.history,
            failed=False,
            reason="RollingOut",
            message=message,
            event=event,
        )
    message = (
        f"the pods of version {target} were not Ready within {seconds}s; "
        f"rolled back to {running}. {target} is not retried until spec.version changes "
        f"(set it back to {running} to acknowledge, or to a fixed version)"
    )
    return UpgradeDecision(
        deploy_version=running,
        upgrade=current.model_copy(update={"phase": "RolledBack", "message": message}),
        history=record(step.history, version=target, outcome="RolledBack", now=step.now),
        failed=True,
        reason="RolledBack",
        message=message,
        event=("Warning", "RolledBack", message),
    )


def upgrade_condition(
    decision: UpgradeDecision,
    *,
    previous: Mapping[str, Any] | None,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """Return the UpgradeFailed condition; its lastTransitionTime moves only on a flip."""
    status = "True" if decision.failed else "False"
    stamp = now.strftime(_TIME_FORMAT)
    flipped = previous is None or previous.get("status") != status
    return {
        "type": "UpgradeFailed",
        "status": status,
        "reason": decision.reason,
        "message": decision.message,
        "lastTransitionTime": (
            stamp if flipped else (previous or {}).get("lastTransitionTime") or stamp
        ),
        "observedGeneration": generation,
    }


def upgrade_status_fields(decision: UpgradeDecision) -> dict[str, Any]:
    """Return the status fields the upgrade owns (camelCase; ``upgrade: None`` removes it)."""
    return {
        "upgrade": (
            None
            if decision.upgrade is None
            else decision.upgrade.model_dump(by_alias=True, exclude_none=True)
        ),
        "versionHistory": [entry.model_dump(by_alias=True) for entry in decision.history],
    }
