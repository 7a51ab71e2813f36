"""TraderBotBackup: run a backup on demand, record scheduled ones, report each in status.

An on-demand TraderBotBackup gets a Job it owns; a Job started by a bot's backup
CronJob gets a TraderBotBackup record named after it, so ``kubectl get tbb``
lists every backup, scheduled or not. Status comes from the Job and from
trader-backup's one-line JSON result (the pod's termination message).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Final

import kopf
from pydantic import ValidationError

from traderbot_operator.desired.backup import (
    BACKUP_RUN_LABEL,
    PRE_UPGRADE_LABEL,
    SCHEDULED_LABEL,
    build_backup_job,
    build_backup_record,
)
from traderbot_operator.desired.common import (
    MANAGED_BY,
    Names,
)
from traderbot_operator.handlers.converge import (
    OperatorState,
    reject_run,
    restore_holding,
    run_serialized,
)
from traderbot_operator.handlers.traderbot import (
    namespaced,
    operator_state,
    pass_guard,
)
from traderbot_operator.kube import ConflictError, KubeError
from traderbot_operator.models import (
    API_VERSION,
    BACKUP_KIND,
    BACKUP_PLURAL,
    GROUP,
    KIND,
    VERSION,
    BackupRun,
    TraderBot,
)
from traderbot_operator.reconcile import (
    Action,
    differences,
)
from traderbot_operator.runs import (
    backup_must_wait,
    backup_run_problem,
    backup_run_status,
    job_finished,
    maintenance_status,
    model_problems,
    outlived_retention,
    owners_to_keep,
    parse_backup_result,
    pruned_records,
)
from traderbot_operator.upgrade import running_version_bot

logger = logging.getLogger(__name__)

_TERMINAL = frozenset({"Completed", "Failed"})
# How often a waiting on-demand backup looks again whether it may start.
WAIT_RETRY_SECONDS: Final = 10


async def converge_backup(state: OperatorState, *, namespace: str, name: str) -> str | None:
    """Start the Job of a TraderBotBackup if needed and bring its status up to date."""
    kube = state.kube
    body = await kube.get(namespace=namespace, key=(API_VERSION, BACKUP_KIND, name))
    if body is None:
        return None
    try:
        run = BackupRun.from_body(body)
    except ValidationError as error:
        return await reject_run(state, body=body, kind=BACKUP_KIND, problems=model_problems(error))
    scheduled = run.labels.get(SCHEDULED_LABEL) == "true"
    owned_by_bot = any(o.get("kind") == KIND for o in body["metadata"].get("ownerReferences") or [])
    if run.status.phase in _TERMINAL and not (scheduled and owned_by_bot):
        return run.status.phase
    bot_body = await kube.get_bot(namespace=namespace, name=run.spec.bot_name)
    bot = None if bot_body is None else TraderBot.from_body(bot_body)
    kept = None if bot is None or not scheduled else owners_to_keep(body["metadata"], bot)
    if kept is not None:
        await kube.set_owner_references(
            namespace=namespace,
            name=name,
            kind=BACKUP_KIND,
            owners=kept,
            resource_version=body["metadata"]["resourceVersion"],
        )
        return await converge_backup(state, namespace=namespace, name=name)  # re-read
    if run.status.phase in _TERMINAL:
        return run.status.phase
    job_key = ("batch/v1", "Job", name)
    job = await kube.get(namespace=namespace, key=job_key)
    problem = None if (scheduled or job is not None) else backup_run_problem(run, bot)
    holder = (
        None
        if job is not None or scheduled or bot_body is None
        else await restore_holding(state, body=bot_body)
    )
    waiting = backup_must_wait(None if holder is None else holder.name)
    if job is None and problem is None and waiting is None and not scheduled and bot is not None:
        job = await kube.execute(
            namespace=namespace,
            # NB: run by the version that runs (that wrote the data), not a new spec.version
            # still waiting for this very backup to roll out.
            action=Action(
                verb="create", key=job_key, body=build_backup_job(running_version_bot(bot), run=run)
            ),
        )
    message = (
        await kube.termination_message(namespace=namespace, job=name) if job_finished(job) else None
    )
    result = parse_backup_result(message)
    status = backup_run_status(
        run, job=job, result=result, scheduled=scheduled, problem=problem, waiting=waiting
    )
    current = body.get("status") or {}
    if "message" in current and "message" not in status:
        status = {**status, "message": None}  # a merge patch: null drops the waiting note
    if differences(status, current):
        await kube.patch_status(
            namespace=namespace,
            name=name,
            status=status,
            kind=BACKUP_KIND,
            resource_version=body["metadata"]["resourceVersion"],
        )
        if status["phase"] != current.get("phase") and status["phase"] in _TERMINAL:
            await _record(state, body=body, status=status)
            maintenance = maintenance_status(
                result, backup=name, completed=status.get("completionTime")
            )
            if bot is not None and status["phase"] == "Completed" and maintenance is not None:
                # NB: a merge patch of this one field: the bot's own pass never writes it.
                await kube.patch_status(
                    namespace=namespace, name=bot.name, status={"maintenance": maintenance}
                )
            if bot is not None and status["phase"] == "Completed":
                await _reconcile_pruned(
                    state, body={**body, "status": status}, result=result, bot=bot
                )
    phase: str = status["phase"]
    return phase


CONFLICT_ATTEMPTS = 3


async def converge_backup_retrying(
    state: OperatorState, *, namespace: str, name: str
) -> str | None:
    """Run ``converge_backup``, re-reading after a conflict (another writer got there first).

    Returns the run's phase, None when there is no such TraderBotBackup.
    NB: Job events are the only trigger after a backup starts; a lost update would
    leave the record Running, so conflicts are retried here rather than dropped.
    """
    attempt = 1
    while True:
        try:
            return await converge_backup(state, namespace=namespace, name=name)
        except ConflictError:
            if attempt == CONFLICT_ATTEMPTS:
                raise
            attempt += 1


async def _reconcile_pruned(
    state: OperatorState, *, body: dict[str, Any], result: dict[str, Any] | None, bot: TraderBot
) -> None:
    """Delete or mark the bot's records whose backups this run's retention deleted.

    One list of the namespace's records, then one write per pruned record. NB: never
    fatal (the run's own status is written already): a record left behind is
    refused at restore time by its age anyway.
    """
    run = BackupRun.from_body(body)
    kube, namespace = state.kube, run.namespace
    try:
        listed = [BackupRun.from_body(item) for item in await kube.backup_runs(namespace=namespace)]
    except KubeError as error:
        logger.warning("records pruned by %s/%s not reconciled: %s", namespace, run.name, error)
        return
    pruned = pruned_records(
        listed, pruning=run, result=result, retention_days=bot.spec.backup.retention_days
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name in pruned.delete:
        try:
            await kube.execute(
                namespace=namespace,
                action=Action(verb="delete", key=(API_VERSION, BACKUP_KIND, name), body={}),
            )
        except KubeError as error:  # deleted meanwhile (404) or not allowed
            logger.warning("pruned record %s/%s not deleted: %s", namespace, name, error)
    for name in pruned.mark:
        try:
            await kube.patch_status(
                namespace=namespace,
                name=name,
                kind=BACKUP_KIND,
                status={"prunedAt": stamp, "prunedBy": run.name},
            )
        except KubeError as error:
            logger.warning("pruned record %s/%s not marked: %s", namespace, name, error)
    if pruned.delete or pruned.mark:
        gone = [*pruned.delete, *(f"{name} (kept, marked pruned)" for name in pruned.mark)]
        await kube.event(
            bot=body,
            type_="Normal",
            reason="BackupsPruned",
            message=f"retention of {run.name} deleted the backups of: {', '.join(gone)}",
        )


async def _record(state: OperatorState, *, body: dict[str, Any], status: dict[str, Any]) -> None:
    """Post the Event that tells an SRE how the run ended (never fatal)."""
    failed = status["phase"] == "Failed"
    message = (
        f"backup failed: {status.get('error')}"
        if failed
        else f"backup completed: {status.get('location', 'location not reported')}"
        f" ({status.get('sizeBytes', '?')} bytes)"
    )
    await state.kube.event(
        bot=body,
        type_="Warning" if failed else "Normal",
        reason="BackupFailed" if failed else "BackupCompleted",
        message=message,
    )


def scheduled_run_record(bot: TraderBot, *, name: str) -> dict[str, Any]:
    """Return the TraderBotBackup record of a scheduled backup Job (it follows deletionPolicy).

    NB: not a controller of the Job: the record describes the Job, it does not own it.
    """
    return build_backup_record(bot, name=name, label=SCHEDULED_LABEL)


async def record_scheduled_run(
    state: OperatorState, *, namespace: str, job: dict[str, Any], bot_name: str
) -> None:
    """Create the TraderBotBackup record of a Job the backup CronJob started.

    NB: called once the record was found missing; a create racing another event's is
    harmless (an apply without force of the same body by the same manager). A Job
    that ended longer ago than retention gets no record: its backup is gone.
    """
    name = job["metadata"]["name"]
    key = (API_VERSION, BACKUP_KIND, name)
    bot_body = await state.kube.get_bot(namespace=namespace, name=bot_name)
    if bot_body is None:
        return
    bot = TraderBot.from_body(bot_body)
    if outlived_retention(
        job, retention_days=bot.spec.backup.retention_days, now=datetime.now(UTC)
    ):
        return
    record = scheduled_run_record(bot, name=name)
    await state.kube.execute(
        namespace=namespace, action=Action(verb="create", key=key, body=record)
    )


async def _guarded(memo: Any, *, namespace: str, name: str) -> str | None:
    state = operator_state(memo)
    if state.closing:
        return None
    async with pass_guard(state, kind=BACKUP_KIND, namespace=namespace, name=name):
        return await converge_backup_retrying(state, namespace=namespace, name=name)


@kopf.on.resume(GROUP, VERSION, BACKUP_PLURAL)
@kopf.on.create(GROUP, VERSION, BACKUP_PLURAL)
async def start_backup(*, name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    """Start an on-demand backup (or pick up one found at operator start).

    A run that must wait (a restore holds its bot) stays Pending with the reason in
    its status, and kopf retries this handler until it may start.
    """
    namespace = namespaced(namespace)
    if await _guarded(memo, namespace=namespace, name=name) != "Pending":
        return
    # NB: Pending is also a Job just created that has not started; only a run that
    # got no Job (its status says why) needs this handler to look again.
    body = await operator_state(memo).kube.get(
        namespace=namespace, key=(API_VERSION, BACKUP_KIND, name)
    )
    waiting = ((body or {}).get("status") or {}).get("message")
    if waiting:
        raise kopf.TemporaryError(waiting, delay=WAIT_RETRY_SECONDS)


@kopf.on.event(
    "batch",
    "v1",
    "jobs",
    labels={"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/component": "backup"},
)
async def backup_job_changed(
    *,
    body: kopf.Body,
    namespace: str | None,
    memo: Any,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    """Follow a backup Job: update its TraderBotBackup, recording scheduled runs first."""
    if namespace is None or "state" not in memo or operator_state(memo).closing:
        return
    meta = body.get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    run_name = (meta.get("labels") or {}).get(BACKUP_RUN_LABEL)
    bot_name = (meta.get("labels") or {}).get("app.kubernetes.io/instance")
    # NB: only the backup CronJob's runs are backups; the verify CronJob's Jobs carry
    # the same labels (so the NetworkPolicies let them in) but back nothing up.
    from_backup_cronjob = bot_name is not None and any(
        o.get("kind") == "CronJob" and o.get("name") == Names(bot_name).backup_cronjob
        for o in owners
    )
    state = operator_state(memo)
    try:
        name = run_name or (meta["name"] if from_backup_cronjob else None)
        phase = None
        if name is not None:
            phase = await converge_backup_retrying(state, namespace=namespace, name=name)
        if name is not None and phase is None and run_name is None and bot_name is not None:
            # A scheduled run seen for the first time: record it, then follow it.
            await record_scheduled_run(
                state, namespace=namespace, job=dict(body), bot_name=bot_name
            )
            await converge_backup_retrying(state, namespace=namespace, name=name)
        template = ((body.get("spec") or {}).get("template") or {}).get("metadata") or {}
        if bot_name is not None and (template.get("labels") or {}).get(PRE_UPGRADE_LABEL):
            # NB: an upgrade waits for this backup: carry on now, not at the next drift check.
            await run_serialized(state, namespace=namespace, name=bot_name, trigger="backup")
    except (ConflictError, KubeError) as error:
        logger.warning("backup Job %s/%s: %s", namespace, meta.get("name"), error)
