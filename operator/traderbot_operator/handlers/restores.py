"""TraderBotRestore: stop the API, restore from a backup, start the API again.

Each pass reads the restore, its bot, its backup, the API pods and the restore
Job, asks ``runs.restore_decision`` what comes next, and does only that. The
API is held at zero replicas through an annotation on the TraderBot that the
bot's own reconcile honours, so there is one writer of the Deployment.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import kopf
from pydantic import ValidationError

from traderbot_operator.desired.backup import RESTORE_RUN_LABEL, build_restore_job
from traderbot_operator.desired.common import (
    COMPONENT_API,
    COMPONENT_BACKUP,
    COMPONENT_CACHE,
    Names,
    selector_labels,
)
from traderbot_operator.handlers.converge import (
    OperatorState,
    one_at_a_time,
    reject_run,
    restore_holding,  # NB: one definition of "held" for the bot and its restores
    run_serialized,
)
from traderbot_operator.handlers.traderbot import (
    PERIODIC_PASSES,
    every,
    namespaced,
    operator_state,
    pass_guard,
    tracked,
)
from traderbot_operator.kube import ConflictError, KubeError
from traderbot_operator.models import (
    API_VERSION,
    BACKUP_KIND,
    GROUP,
    RESTORE_KIND,
    RESTORE_PLURAL,
    VERSION,
    BackupRun,
    RestoreRun,
    TraderBot,
)
from traderbot_operator.reconcile import (
    Action,
    differences,
)
from traderbot_operator.runs import (
    HOLD_ANNOTATION,
    RestoreDecision,
    hold_change,
    job_finished,
    model_problems,
    newest_completed_backup,
    parse_backup_result,
    restore_decision,
    restore_refusal,
    restores_redis,
    running_backup_jobs,
)

logger = logging.getLogger(__name__)

RESTORE_POLL_SECONDS = 2.0
_TERMINAL = frozenset({"Completed", "Failed"})


async def _set_hold(
    state: OperatorState,
    *,
    bot: TraderBot,
    annotations: dict[str, str],
    restore: str,
    hold: bool,
    resource_version: str | None = None,
) -> None:
    """Hold (or release) the bot's API for this restore, then let the bot converge.

    NB: a claim is atomic: it lands only on the bot as read (``resource_version``),
    and never over another restore's hold. Of several restores sent at once, one
    claims; the others get a conflict, are retried, and their next pass sees the
    holder and refuses them before touching anything.
    """
    current = annotations.get(HOLD_ANNOTATION)
    if hold and current not in {None, restore}:
        raise ConflictError(f"TraderBot {bot.name} is held by TraderBotRestore {current}")
    write, value = hold_change(current, restore=restore, hold=hold)
    if not write:
        return
    await state.kube.annotate_bot(
        namespace=bot.namespace,
        name=bot.name,
        key=HOLD_ANNOTATION,
        value=value,
        resource_version=resource_version if hold else None,
    )
    await run_serialized(
        state, namespace=bot.namespace, name=bot.name, trigger="restore", coalesce=True
    )


class _Pods(NamedTuple):
    """The pods a restore step waits for: API and Redis pods left, Redis ready again."""

    api: int
    redis: int
    redis_ready: bool
    backups: tuple[str, ...] = ()  # the bot's backup Jobs still running (any kind)


_NOTHING_RUNS: Final = _Pods(api=0, redis=0, redis_ready=False)


async def _pods(
    state: OperatorState,
    *,
    bot: TraderBot,
    restore: RestoreRun,
    job: dict[str, Any] | None,
    finished: bool,
) -> _Pods:
    """Read only what the next step needs: what runs before the Job, Redis ready after it.

    NB: a backup still running when the restore starts (scheduled, on demand or
    before an upgrade) would finish by recording the half-restored data as the
    newest backup; the restore waits for it (one list of the bot's backup Jobs).
    """
    kube, namespace = state.kube, bot.namespace
    if job is None:
        api = await kube.count_pods(namespace=namespace, labels=selector_labels(bot, COMPONENT_API))
        redis = 0
        if restores_redis(restore):
            redis = await kube.count_pods(
                namespace=namespace, labels=selector_labels(bot, COMPONENT_CACHE)
            )
        jobs = await kube.list_labelled(
            namespace=namespace,
            api_version="batch/v1",
            kind="Job",
            labels=selector_labels(bot, COMPONENT_BACKUP),
        )
        backups = running_backup_jobs(jobs.values(), backup_cronjob=Names(bot.name).backup_cronjob)
        return _Pods(api=api, redis=redis, redis_ready=False, backups=tuple(backups))
    if not (finished and restores_redis(restore)):
        return _NOTHING_RUNS
    statefulset = await kube.get(
        namespace=namespace, key=("apps/v1", "StatefulSet", Names(bot.name).redis)
    )
    ready = int(((statefulset or {}).get("status") or {}).get("readyReplicas") or 0)
    return _Pods(api=0, redis=0, redis_ready=ready > 0)


async def _refusal(
    state: OperatorState,
    *,
    restore: RestoreRun,
    bot: TraderBot | None,
    bot_body: dict[str, Any] | None,
    backup: BackupRun | None,
) -> str | None:
    """Read what the up-front checks need (holder, newest backup) and run them."""
    holding = None if bot_body is None else await restore_holding(state, body=bot_body)
    listed = await state.kube.backup_runs(namespace=restore.namespace)
    runs = [BackupRun.from_body(run) for run in listed]
    return restore_refusal(
        restore,
        bot=bot,
        backup=backup,
        holder=None if holding is None else holding.name,
        newest_completed=newest_completed_backup(runs, bot=restore.spec.bot_name),
        now=datetime.now(UTC),
    )


async def _follow_up(
    state: OperatorState,
    *,
    bot: TraderBot,
    annotations: dict[str, str],
    restore: RestoreRun,
    decision: RestoreDecision,
) -> None:
    """Release the bot when the step says so, or let it start Redis when the step began.

    NB: the bot's own pass starts Redis once the restore is StartingRedis; it runs
    now rather than at the next drift check (up to a minute of Redis down for nothing).
    """
    if not decision.hold_api:
        await _set_hold(state, bot=bot, annotations=annotations, restore=restore.name, hold=False)
    elif decision.status["phase"] == "StartingRedis" != restore.status.phase:
        await run_serialized(
            state, namespace=bot.namespace, name=bot.name, trigger="restore", coalesce=True
        )


async def converge_restore(state: OperatorState, *, namespace: str, name: str) -> str | None:
    """Take the next step of one TraderBotRestore; return its phase."""
    kube = state.kube
    body = await kube.get(namespace=namespace, key=(API_VERSION, RESTORE_KIND, name))
    if body is None:
        return None
    try:
        restore = RestoreRun.from_body(body)
    except ValidationError as error:
        return await reject_run(state, body=body, kind=RESTORE_KIND, problems=model_problems(error))
    return await _step(state, body=body, restore=restore)


async def _step(state: OperatorState, *, body: dict[str, Any], restore: RestoreRun) -> str:
    """Take the next step of a restore whose spec the models accept."""
    kube = state.kube
    namespace, name = restore.namespace, restore.name
    bot_body = await kube.get_bot(namespace=namespace, name=restore.spec.bot_name)
    bot: TraderBot | None = None
    rejected: str | None = None
    if bot_body is not None:
        try:
            bot = TraderBot.from_body(bot_body)
        except ValidationError as error:
            rejected = (
                f"TraderBot {restore.spec.bot_name}'s spec is rejected by the operator "
                f"({error.error_count()} problem(s), see kubectl describe tb), so its API "
                "cannot be stopped for the restore; fix the spec first"
            )
    annotations: dict[str, str] = ((bot_body or {}).get("metadata") or {}).get("annotations") or {}
    if restore.status.phase in _TERMINAL:
        if bot is not None and restore.status.phase == "Completed":
            await _set_hold(state, bot=bot, annotations=annotations, restore=name, hold=False)
        return restore.status.phase

    job_key = ("batch/v1", "Job", name)
    job = await kube.get(namespace=namespace, key=job_key)
    backup: BackupRun | None = None
    if job is None:  # NB: the backup matters until its location is in the Job
        backup_body = await kube.get(
            namespace=namespace, key=(API_VERSION, BACKUP_KIND, restore.spec.backup_name)
        )
        backup = None if backup_body is None else BackupRun.from_body(backup_body)
    # NB: refused only before anything was touched; later steps follow through.
    refusal: str | None = None
    if restore.status.phase in {None, "Pending"}:
        refusal = rejected or await _refusal(
            state, restore=restore, bot=bot, bot_body=bot_body, backup=backup
        )

    finished = job_finished(job)
    pods = _NOTHING_RUNS
    if bot is not None and refusal is None:
        await _set_hold(
            state,
            bot=bot,
            annotations=annotations,
            restore=name,
            hold=True,
            resource_version=(bot_body or {}).get("metadata", {}).get("resourceVersion"),
        )
        annotations = {**annotations, HOLD_ANNOTATION: name}
        pods = await _pods(state, bot=bot, restore=restore, job=job, finished=finished)
    message = await kube.termination_message(namespace=namespace, job=name) if finished else None
    decision = restore_decision(
        restore,
        refusal=refusal,
        api_pods=pods.api,
        redis_pods=pods.redis,
        redis_ready=pods.redis_ready,
        backup_jobs=pods.backups,
        paused=bot is not None and bot.spec.paused,
        job=job,
        result=parse_backup_result(message),
        now=datetime.now(UTC),
    )
    # NB: a restore that ends releases the bot before its record says so: whoever sees
    # Completed or Failed (an SRE, a script, the next restore) finds the bot free.
    released = bot is not None and not decision.hold_api and decision.status["phase"] in _TERMINAL
    if released and bot is not None:
        await _follow_up(
            state, bot=bot, annotations=annotations, restore=restore, decision=decision
        )
    # NB: the status (with apiStoppedAt) is written before the Job is created, so a
    # lost status write can never leave a Job without the record of why it started.
    if differences(decision.status, body.get("status") or {}):
        await kube.patch_status(
            namespace=namespace,
            name=name,
            status=decision.status,
            kind=RESTORE_KIND,
            resource_version=body["metadata"]["resourceVersion"],
        )
    if decision.start_job and job is None and bot is not None and backup is not None:
        location = backup.status.location or ""
        await kube.execute(
            namespace=namespace,
            action=Action(
                verb="create",
                key=job_key,
                body=build_restore_job(bot, restore=restore, location=location),
            ),
        )
    if decision.event is not None:
        type_, reason, message = decision.event
        await state.kube.event(bot=body, type_=type_, reason=reason, message=message)
    if bot is not None and not released:
        await _follow_up(
            state, bot=bot, annotations=annotations, restore=restore, decision=decision
        )
    phase: str = decision.status["phase"]
    return phase


async def _serialized(state: OperatorState, *, namespace: str, name: str) -> None:
    """Run one restore pass at a time per restore (timer and Job events race otherwise)."""
    async with one_at_a_time(state, (namespace, f"{RESTORE_PLURAL}/{name}")):
        await converge_restore(state, namespace=namespace, name=name)


async def _guarded(memo: Any, *, namespace: str, name: str) -> None:
    state = operator_state(memo)
    if state.closing:
        return
    async with pass_guard(state, kind=RESTORE_KIND, namespace=namespace, name=name):
        await _serialized(state, namespace=namespace, name=name)


@kopf.on.resume(GROUP, VERSION, RESTORE_PLURAL)
@kopf.on.create(GROUP, VERSION, RESTORE_PLURAL)
async def start_restore(*, name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    """Validate the restore and take its first step."""
    await _guarded(memo, namespace=namespaced(namespace), name=name)


@kopf.on.event(GROUP, VERSION, RESTORE_PLURAL)
async def track_restore(
    *, type: str | None, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    """Keep the set of restores in progress that ``advance_restores`` visits."""
    if namespace is None or "state" not in memo:
        return
    tracked(
        operator_state(memo).restores_in_progress,
        event=type,
        body=body,
        namespace=namespace,
        name=name,
        wanted=(body.get("status") or {}).get("phase") not in _TERMINAL,
    )


async def advance_restores(memo: kopf.Memo) -> None:
    """Advance every restore in progress: API pods gone -> Job -> result -> release.

    NB: the operator's own loop, not a kopf timer (which would put a finalizer on
    each restore, so deleting one hung with the operator gone).
    """

    async def one(namespace: str, name: str) -> None:
        await _guarded(memo, namespace=namespace, name=name)

    await every(
        memo,
        interval=RESTORE_POLL_SECONDS,
        initial_delay=RESTORE_POLL_SECONDS,
        keys=lambda state: state.restores_in_progress,
        run=one,
        what="restore",
    )


PERIODIC_PASSES.append(advance_restores)


@kopf.on.event("batch", "v1", "jobs", labels={RESTORE_RUN_LABEL: kopf.PRESENT})
async def restore_job_changed(
    *,
    body: kopf.Body,
    namespace: str | None,
    memo: Any,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    """React to the restore Job at once instead of at the next timer tick."""
    if namespace is None or "state" not in memo or operator_state(memo).closing:
        return
    name = (body.get("metadata", {}).get("labels") or {}).get(RESTORE_RUN_LABEL)
    if name is None:
        return
    try:
        await _serialized(operator_state(memo), namespace=namespace, name=name)
    except (ConflictError, KubeError) as error:
        logger.warning("restore Job %s/%s: %s", namespace, name, error)
