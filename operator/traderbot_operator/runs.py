"""Pure logic of TraderBotBackup and TraderBotRestore runs: Job outcome -> status, restore steps.

Kept apart from ``reconcile.py`` (a TraderBot's children and status): a run is its
own resource with its own life, and the handlers in ``handlers/backups.py`` and
``handlers/restores.py`` are its only callers. Nothing here talks to the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, Final

from pydantic import ValidationError

from traderbot_operator.desired.backup import (
    BACKUP_RUN_LABEL,
    PRE_UPGRADE_LABEL,
    RESTORE_RUN_LABEL,
    SCHEDULED_LABEL,
)
from traderbot_operator.desired.common import ANNOTATION_PREFIX
from traderbot_operator.models import (
    BACKUP_KIND,
    KIND,
    BackupRun,
    MaintenanceStatus,
    RestoreRun,
    TraderBot,
)
from traderbot_operator.schedule import parse_time

# --- backup runs (TraderBotBackup) --------------------------------------------------------

_TERMINAL_BACKUP_PHASES: Final = frozenset({"Completed", "Failed"})


def parse_backup_result(message: str | None) -> dict[str, Any] | None:
    """Return trader-backup's one-line JSON result from a termination message, if any.

    NB: with ``FallbackToLogsOnError`` a failed pod's message is its log tail, so the
    result is the last line that parses as a JSON object with an ``ok`` key.
    """
    for line in reversed((message or "").splitlines()):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and "ok" in value:
            return value
    return None


def _job_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            found: Mapping[str, Any] = condition
            return found
    return None


def job_finished(job: Mapping[str, Any] | None) -> bool:
    """Return whether a Job ended (Complete or Failed): its pod's result can be read."""
    return job is not None and any(
        _job_condition(job, type_) is not None for type_ in ("Complete", "Failed")
    )


def backup_run_status(
    run: BackupRun,
    *,
    job: Mapping[str, Any] | None,
    result: Mapping[str, Any] | None,
    scheduled: bool,
    problem: str | None = None,
    waiting: str | None = None,
) -> dict[str, Any]:
    """Return a TraderBotBackup's status from its Job and trader-backup's result.

    A run that already ended keeps its status: the Job may be gone (TTL, history
    limits) but the record of the backup stays what it was. ``waiting`` says why a
    run without a Job has not started (see ``backup_must_wait``).
    """
    if run.status.phase in _TERMINAL_BACKUP_PHASES:
        return run.status.model_dump(by_alias=True, exclude_none=True)
    status: dict[str, Any] = {"scheduled": scheduled}
    if problem is not None:
        return {**status, "phase": "Failed", "error": problem}
    if job is None:
        return {**status, "phase": "Pending"} | ({} if waiting is None else {"message": waiting})
    job_status = job.get("status") or {}
    status["jobName"] = job["metadata"]["name"]
    if job_status.get("startTime"):
        status["startTime"] = job_status["startTime"]
    complete = _job_condition(job, "Complete")
    failed = _job_condition(job, "Failed")
    # NB: only trader-backup's own "ok": true counts; a Job that completed without a
    # readable result proves nothing about the backup.
    if complete is not None and result is not None and result.get("ok") is True:
        status["phase"] = "Completed"
        status["completionTime"] = job_status.get("completionTime") or complete.get(
            "lastTransitionTime"
        )
        if result is not None:
            for source, target in (
                ("location", "location"),
                ("size", "sizeBytes"),
                ("checksum", "checksum"),
            ):
                if result.get(source) is not None:
                    status[target] = result[source]
    elif failed is not None or complete is not None:
        ended = failed or complete or {}
        status["phase"] = "Failed"
        status["completionTime"] = ended.get("lastTransitionTime")
        reason = (result or {}).get("error") or ": ".join(
            part for part in (ended.get("reason"), ended.get("message")) if part
        )
        if failed is None and result is None:
            reason = "the Job completed without reporting a result; not counted as a backup"
        status["error"] = reason or "the backup Job failed without a reason"
    elif job_status.get("active") or job_status.get("startTime"):
        status["phase"] = "Running"
    else:
        status["phase"] = "Pending"
    return {key: value for key, value in status.items() if value is not None}


def maintenance_status(
    result: Mapping[str, Any] | None, *, backup: str, completed: str | None
) -> dict[str, Any] | None:
    """Return the TraderBot's ``status.maintenance`` from a completed backup's result.

    trader-backup reports what keeps old klines in check (TimescaleDB's policy jobs,
    or the engine's retention on plain PostgreSQL) in snake_case; the status is the
    same in camelCase, stamped with the backup that read it. None when the result has
    no report (a Redis-only backup, an older trader-backup).
    """
    report = (result or {}).get("maintenance")
    if not isinstance(report, Mapping):
        return None
    stamp = {"observed_at": completed, "backup_name": backup}
    try:
        model = MaintenanceStatus.model_validate({**report, **stamp})
    except ValidationError as error:
        model = MaintenanceStatus(
            backend="unknown",
            error=f"trader-backup's maintenance report is unreadable: {error.error_count()} "
            f"problem(s), first: {error.errors()[0]['msg']}",
            observed_at=completed,
            backup_name=backup,
        )
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def owners_to_keep(metadata: Mapping[str, Any], bot: TraderBot) -> list[dict[str, Any]] | None:
    """Return a scheduled record's owner references without the bot's, when it must drop them.

    NB: records made before deletionPolicy was honoured (commit 0fbbe33) are owned
    by their bot whatever its policy, so deleting a Retain bot would delete the
    records of the backups it keeps. None when nothing needs to change.
    """
    if bot.spec.deletion_policy != "Retain":
        return None
    owners: list[dict[str, Any]] = list(metadata.get("ownerReferences") or [])
    kept = [o for o in owners if not (o.get("kind") == KIND and o.get("uid") == bot.uid)]
    return None if len(kept) == len(owners) else kept


def made_by_operator(run: BackupRun) -> bool:
    """Return whether the operator made this record (a scheduled run, a pre-upgrade backup)."""
    return any(run.labels.get(label) == "true" for label in (SCHEDULED_LABEL, PRE_UPGRADE_LABEL))


@dataclass(frozen=True)
class PrunedRecords:
    """The records of a bot whose backups a run's retention deleted.

    ``delete``: records the operator made, which go with their backup; ``mark``:
    records a user made, which stay (with ``status.prunedAt``) so nothing a user
    wrote disappears silently.
    """

    delete: tuple[str, ...] = ()
    mark: tuple[str, ...] = ()


def pruned_records(
    runs: Iterable[BackupRun],
    *,
    pruning: BackupRun,
    result: Mapping[str, Any] | None,
    retention_days: int,
) -> PrunedRecords:
    """Return which Completed records name a backup that ``pruning``'s retention deleted.

    trader-backup names the folders it deleted in ``pruned``. When the termination
    message shed that list (``truncated``), the program's own rule decides: older
    than ``retention_days`` when the run started. NB: the program measures a
    backup's age from its start and prunes after its own backup is written, so a
    record that *completed* before the run's start minus retention is surely gone;
    a record near the edge stays (listed for a day too long rather than lost).
    The newest Completed record always stays, as retention spares the newest backup.
    """
    bot = pruning.spec.bot_name
    reported = (result or {}).get("pruned")
    shed = "pruned" in ((result or {}).get("truncated") or [])
    names: frozenset[str] | None = None
    if isinstance(reported, list):
        names = frozenset(str(name) for name in reported)
    elif not shed:
        return PrunedRecords()  # no report (an older trader-backup): nothing is known
    started = parse_time(pruning.status.start_time) or parse_time(pruning.status.completion_time)
    if names is None and started is None:
        return PrunedRecords()
    candidates = [run for run in runs if run.spec.bot_name == bot]
    spared = {pruning.name, newest_completed_backup(candidates, bot=bot)}
    delete: list[str] = []
    mark: list[str] = []
    for run in sorted(candidates, key=lambda run: run.name):
        status = run.status
        if (
            status.phase != "Completed"
            or not status.location
            or status.pruned_at is not None
            or run.name in spared
        ):
            continue
        if names is not None:
            gone = PurePosixPath(status.location).name in names
        else:
            completed = parse_time(status.completion_time)
            gone = (
                completed is not None
                and started is not None
                and completed < started - timedelta(days=retention_days)
            )
        if gone:
            (delete if made_by_operator(run) else mark).append(run.name)
    return PrunedRecords(delete=tuple(delete), mark=tuple(mark))


def outlived_retention(job: Mapping[str, Any], *, retention_days: int, now: datetime) -> bool:
    """Return whether a backup Job ended more than ``retention_days`` before ``now``.

    NB: its backup is pruned by now, and its record may have been deleted for that:
    a Job kept by the CronJob's history limits must not bring the record back.
    """
    ended = parse_time((job.get("status") or {}).get("completionTime"))
    return ended is not None and now - ended > timedelta(days=retention_days)


def running_backup_jobs(jobs: Iterable[Mapping[str, Any]], *, backup_cronjob: str) -> list[str]:
    """Return the names of a bot's backup Jobs that have not ended, from its labelled Jobs.

    A backup Job is one of a TraderBotBackup (on demand or before an upgrade: it
    carries the run's label) or one the bot's backup CronJob started. NB: restore
    and verification Jobs carry the same component labels but back nothing up.
    """
    running: list[str] = []
    for job in jobs:
        meta = job.get("metadata") or {}
        labels = meta.get("labels") or {}
        from_cronjob = any(
            owner.get("kind") == "CronJob" and owner.get("name") == backup_cronjob
            for owner in meta.get("ownerReferences") or []
        )
        backup = RESTORE_RUN_LABEL not in labels and (BACKUP_RUN_LABEL in labels or from_cronjob)
        if backup and not job_finished(job):
            running.append(str(meta.get("name")))
    return sorted(running)


def backup_run_problem(run: BackupRun, bot: TraderBot | None) -> str | None:
    """Return why a TraderBotBackup cannot run at all, in words an SRE can act on."""
    if bot is None:
        return (
            f"TraderBot {run.namespace}/{run.spec.bot_name} does not exist; "
            "spec.botName must name a TraderBot in this namespace"
        )
    if not bot.spec.backup.enabled:
        return (
            f"TraderBot {bot.name} has spec.backup.enabled false, so it has no backup "
            "volume; enable backups first"
        )
    if bot.spec.hibernate:
        return (
            f"TraderBot {bot.name} hibernates (spec.hibernate), so its database is not "
            "running to back up; set spec.hibernate to false, then create the backup again"
        )
    return None


# --- restores (TraderBotRestore) ----------------------------------------------------------

HOLD_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/api-held-by"
_TERMINAL_RESTORE_PHASES: Final = frozenset({"Completed", "Failed"})


def backup_must_wait(holder: str | None) -> str | None:
    """Return why an on-demand backup may not start now, or None when it may.

    ``holder`` is the TraderBotRestore holding the bot (one that exists and has not
    completed), if any.
    NB: while a restore holds the bot its database (and Redis) are being rewritten;
    a backup taken then would record half-restored data as the newest backup, the
    one retention keeps and the next restore picks. The CronJobs are suspended for
    the same reason; an on-demand run waits instead.
    """
    if holder is None:
        return None
    return (
        f"waiting: TraderBotRestore {holder} holds the bot; "
        "the backup starts when the restore ends or is deleted"
    )


@dataclass(frozen=True)
class RestoreDecision:
    """What to do next for a TraderBotRestore, and the status that says so.

    ``hold_api`` asks for the bot to stay held (its API at zero replicas, and its
    Redis too while ``redis_held`` says so); ``start_job`` asks for the restore Job
    (only once no API or Redis pod is left).
    """

    status: dict[str, Any]
    hold_api: bool
    start_job: bool = False
    event: tuple[str, str, str] | None = None  # (type, reason, message) on a transition


def restore_refusal(  # noqa: PLR0911 - one return per reason to refuse
    restore: RestoreRun,
    *,
    bot: TraderBot | None,
    backup: BackupRun | None,
    holder: str | None = None,
    newest_completed: str | None = None,
    now: datetime,
) -> str | None:
    """Return why a restore must not start, before anything is touched; None when it may.

    ``holder`` names the TraderBotRestore that holds the bot's API now, if any;
    ``newest_completed`` the bot's newest Completed TraderBotBackup, which retention
    spares whatever its age.
    NB: everything here is known before the API is stopped; a restore refused later
    would leave a trading bot stopped for nothing.
    """
    spec = restore.spec
    if bot is None:
        return f"TraderBot {restore.namespace}/{spec.bot_name} does not exist"
    if holder is not None and holder != restore.name:
        return (
            f"TraderBotRestore {holder} holds TraderBot {bot.name} already; wait until it "
            "completes (or delete it if it failed), then create this restore again"
        )
    if bot.spec.paused:
        return (
            f"TraderBot {bot.name} is paused (spec.paused), so its API cannot be stopped "
            "for the restore; unpause it first"
        )
    if bot.spec.hibernate:
        return (
            f"TraderBot {bot.name} hibernates (spec.hibernate), so its database is not "
            "running to restore into; set spec.hibernate to false first"
        )
    if bot.status.phase == "Failed":
        return (
            f"TraderBot {bot.name} is Failed (its spec cannot be applied), so its API cannot "
            "be stopped for the restore; fix the spec first (kubectl describe tb)"
        )
    if restores_redis(restore) and not bot.spec.redis.persistence:
        return (
            f"TraderBot {bot.name} runs Redis without a volume (spec.redis.persistence false): "
            "there is nothing to restore a snapshot into, and stopping Redis would lose what "
            "it holds; restore the database only (what: database)"
        )
    if backup is None:
        return f"TraderBotBackup {restore.namespace}/{spec.backup_name} does not exist"
    completed = parse_time(backup.status.completion_time)
    retention = bot.spec.backup.retention_days
    checks = (
        (
            backup.spec.bot_name != bot.name,
            f"TraderBotBackup {backup.name} is a backup of {backup.spec.bot_name}, "
            f"not of {bot.name}",
        ),
        (
            backup.status.phase != "Completed",
            f"TraderBotBackup {backup.name} is {backup.status.phase or 'not started'}; "
            "only a Completed backup can be restored",
        ),
        (
            not backup.status.location,
            f"TraderBotBackup {backup.name} has no recorded location to restore from",
        ),
        (
            backup.status.pruned_at is not None,
            f"TraderBotBackup {backup.name}'s files were deleted by retention at "
            f"{backup.status.pruned_at} (run {backup.status.pruned_by}); pick a newer backup",
        ),
        (
            completed is not None
            and now - completed > timedelta(days=retention)
            and backup.name != newest_completed,
            f"TraderBotBackup {backup.name} completed at {backup.status.completion_time}, "
            f"more than spec.backup.retentionDays ({retention}) days ago: retention deletes "
            "such backups, so its files are most likely gone; pick a newer backup",
        ),
        (
            spec.what != "redis" and not backup.spec.database,
            f"TraderBotBackup {backup.name} holds no database dump",
        ),
        (
            restores_redis(restore) and not backup.spec.redis,
            f"TraderBotBackup {backup.name} holds no Redis snapshot",
        ),
    )
    return next((message for failed, message in checks if failed), None)


def restores_redis(restore: RestoreRun) -> bool:
    """Return whether the restore writes Redis's snapshot (so Redis must be stopped)."""
    return restore.spec.what in {"redis", "both"}


def redis_held(*, what: str, phase: str) -> bool:
    """Return whether a holding restore keeps the bot's Redis at zero replicas.

    NB: from the start until the restore Job ends (and after a failed restore, as
    for the API); released first in StartingRedis, so Redis loads the restored
    snapshot before the API starts again.
    """
    return what in {"redis", "both"} and phase != "StartingRedis"


def newest_completed_backup(runs: Iterable[BackupRun], *, bot: str) -> str | None:
    """Return the name of ``bot``'s newest Completed backup (retention never prunes it)."""
    completed = [
        run
        for run in runs
        if run.spec.bot_name == bot
        and run.status.phase == "Completed"
        and run.status.completion_time is not None
    ]
    newest = max(completed, key=lambda run: run.status.completion_time or "", default=None)
    return None if newest is None else newest.name


def hold_change(current: str | None, *, restore: str, hold: bool) -> tuple[bool, str | None]:
    """Return (whether to write, the value) for the bot's hold annotation after a step.

    NB: a restore releases only its own hold: releasing another restore's would
    start the API onto the database that restore is writing.
    """
    if hold:
        return current != restore, restore
    if current == restore:
        return True, None
    return False, current


def _waiting_for(*, api_pods: int, redis_pods: int, backup_jobs: Sequence[str]) -> str | None:
    """Return the StoppingApi message naming what the restore still waits for, if anything."""
    left = [
        f"{count} {what}"
        for count, what in ((api_pods, "API pod(s)"), (redis_pods, "Redis pod(s)"))
        if count > 0
    ]
    if backup_jobs:
        left.append(f"backup Job(s) {', '.join(backup_jobs)}")
    if not left:
        return None
    message = f"waiting for {' and '.join(left)} to end before restoring"
    if backup_jobs:
        message += (
            " (a backup that ends after the restore started would record "
            "half-restored data as the newest backup)"
        )
    return message


def restore_decision(  # noqa: PLR0911 - one return per step of the restore
    restore: RestoreRun,
    *,
    refusal: str | None,
    api_pods: int,
    job: Mapping[str, Any] | None,
    result: Mapping[str, Any] | None,
    now: datetime,
    redis_pods: int = 0,
    redis_ready: bool = False,
    paused: bool = False,
    backup_jobs: Sequence[str] = (),
) -> RestoreDecision:
    """Return the next step of a restore: stop the API (and Redis), restore, release.

    NB: the order is the seed's ("stop trader-api first, for integrity"): the Job is
    started only when no API pod (and, for a Redis restore, no Redis pod) is left
    and no backup Job of the bot runs (``backup_jobs``: scheduled, on demand or
    before an upgrade; the CronJob is suspended meanwhile);
    Redis is started before the API, so the API never sees a Redis still loading.
    A restore that failed without trader-backup reporting why (killed, no result)
    keeps the API held, so nothing writes into a half-restored database; deleting
    the TraderBotRestore releases it. Success needs trader-backup's ``"ok": true``.
    A bot paused before its pods stopped ends the restore untouched: a paused bot's
    children are left alone, so they would never stop.
    """
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    current = restore.status.model_dump(by_alias=True, exclude_none=True)
    redis = restores_redis(restore)
    if restore.status.phase in _TERMINAL_RESTORE_PHASES:
        return RestoreDecision(status=current, hold_api=restore.status.phase == "Failed")
    if refusal is not None:
        status = {"phase": "Failed", "message": f"refused: {refusal}", "completionTime": stamp}
        return RestoreDecision(
            status=status, hold_api=False, event=("Warning", "RestoreRefused", refusal)
        )
    if job is None:
        if paused:
            message = (
                f"TraderBot {restore.spec.bot_name} was paused (spec.paused) before its pods "
                "stopped; nothing was restored and the hold is released; unpause the bot and "
                "create the restore again"
            )
            status = {**current, "phase": "Failed", "message": message, "completionTime": stamp}
            return RestoreDecision(
                status=status, hold_api=False, event=("Warning", "RestoreAbandoned", message)
            )
        waiting = _waiting_for(api_pods=api_pods, redis_pods=redis_pods, backup_jobs=backup_jobs)
        if waiting is not None:
            return RestoreDecision(
                status={**current, "phase": "StoppingApi", "message": waiting},
                hold_api=True,
            )
        stopped = "API and Redis stopped" if redis else "API stopped"
        status = {
            **current,
            "phase": "Restoring",
            "message": f"{stopped}; restore Job started",
            "apiStoppedAt": current.get("apiStoppedAt", stamp),
            "jobName": restore.name,
        }
        return RestoreDecision(status=status, hold_api=True, start_job=True)
    complete = _job_condition(job, "Complete")
    failed = _job_condition(job, "Failed")
    if complete is not None and result is not None and result.get("ok") is True:
        restored = {
            **current,
            "restoredAt": current.get("restoredAt") or complete.get("lastTransitionTime") or stamp,
        }
        if redis and not redis_ready:
            status = {
                **restored,
                "phase": "StartingRedis",
                "message": "restored and verified; waiting for Redis to load the snapshot "
                "before the API starts again",
            }
            return RestoreDecision(status=status, hold_api=True)
        status = {
            **restored,
            "phase": "Completed",
            "message": "restored and verified; the API is starting again",
            "completionTime": stamp,
        }
        message = f"restored {restore.spec.what} from {restore.spec.backup_name}"
        return RestoreDecision(
            status=status, hold_api=False, event=("Normal", "RestoreCompleted", message)
        )
    if failed is not None or complete is not None:
        ended = failed or complete or {}
        reason = (result or {}).get("error") or ": ".join(
            part for part in (ended.get("reason"), ended.get("message")) if part
        )
        if failed is None and result is None:
            reason = "the Job completed without reporting a result, so nothing verifies it"
        reason = reason or "the Job failed without a reason"
        if result is not None and result.get("ok") is False:
            # NB: trader-backup checks the manifest, every checksum and the target before
            # writing, and never leaves a half-restored database: a reported failure
            # means the data is as it was, so trading may resume.
            message = (
                f"restore failed before the data was changed: {reason}; the API is started again"
            )
            held = False
        else:
            message = (
                f"restore failed: {reason}; the data may be half-restored, so the API "
                "stays stopped; fix the cause and delete this TraderBotRestore to start the "
                "API again"
            )
            held = True
        status = {**current, "phase": "Failed", "message": message, "completionTime": stamp}
        return RestoreDecision(
            status=status,
            hold_api=held,
            event=("Warning", "RestoreFailed", message),
        )
    return RestoreDecision(
        status={**current, "phase": "Restoring", "message": "restore Job running"},
        hold_api=True,
    )


def model_problems(error: ValidationError, *, prefix: str = "spec") -> tuple[str, ...]:
    """Return a model's refusal as ``spec.field: reason`` lines an SRE can act on."""
    return tuple(
        f"{prefix}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
    )


def rejected_run_status(kind: str, *, problems: Sequence[str]) -> dict[str, Any]:
    """Return the status of a TraderBotBackup/TraderBotRestore whose spec the models refuse.

    NB: Failed for good, with the reasons where each kind keeps them (a backup's
    ``error``, a restore's ``message``); nothing was started for it.
    """
    reason = "; ".join(problems)
    field = "error" if kind == BACKUP_KIND else "message"
    return {"phase": "Failed", field: f"invalid spec, nothing was done: {reason}"}
