"""One reconcile pass of one TraderBot: read, decide (pure), write what differs, report.

The kopf handlers in ``traderbot.py`` only decide *when* this runs; this module is
the glue between ``kube`` (I/O) and ``reconcile`` (decisions) and holds no policy
of its own beyond the order of steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import httpx
from pydantic import ValidationError

from traderbot_operator import metrics, verification
from traderbot_operator.desired import build_children
from traderbot_operator.desired.common import Names, instance_labels
from traderbot_operator.desired.monitoring import SERVICE_MONITOR_API_VERSION
from traderbot_operator.kube import ConflictError, Kube, KubeError
from traderbot_operator.models import (
    API_VERSION,
    BACKUP_KIND,
    KIND,
    RESTORE_KIND,
    BackupRun,
    TraderBot,
)
from traderbot_operator.reconcile import (
    STATEFULSET_PROGRESS_DEADLINE,
    Action,
    ObjectKey,
    Outcome,
    compute_status,
    database_claim_key,
    differences,
    foreign_objects,
    key_of,
    lost_credentials,
    operator_error_status,
    plan,
    referenced_secret_names,
    rejected_status,
    spec_problems,
    status_changed,
    trading_target,
)
from traderbot_operator.runs import (
    HOLD_ANNOTATION,
    model_problems,
    parse_backup_result,
    redis_held,
    rejected_run_status,
)
from traderbot_operator.trading import TradingPolicy, TradingReads
from traderbot_operator.upgrade import (
    UpgradeDecision,
    build_pre_upgrade_backup,
    decide_upgrade,
    pre_upgrade_backup_name,
    upgrade_condition,
    upgrade_status_fields,
)

logger = logging.getLogger(__name__)

# NB: an override for tests that wait for the deadline; the default is reconcile's.
STATEFULSET_DEADLINE = timedelta(
    seconds=float(
        os.environ.get(
            "TRADERBOT_STATEFULSET_DEADLINE_SECONDS",
            STATEFULSET_PROGRESS_DEADLINE.total_seconds(),
        )
    )
)

# How often each bot's risk state is read (at most), how long one read may take, and
# how often changed numbers alone may rewrite the status (docs/operator.md, "Trading state").
TRADING_READ_SECONDS = float(os.environ.get("TRADERBOT_TRADING_READ_SECONDS", "30"))
TRADING_READ_TIMEOUT_SECONDS = float(os.environ.get("TRADERBOT_TRADING_READ_TIMEOUT_SECONDS", "2"))
TRADING_POLICY = TradingPolicy(
    # NB: a read is stale after three missed ones (the poller reads only bots with a
    # ready API pod), plus the drift interval that may pass before a pass shows it.
    stale_after=timedelta(seconds=3 * TRADING_READ_SECONDS + 60),
    refresh=timedelta(
        seconds=float(os.environ.get("TRADERBOT_TRADING_STATUS_REFRESH_SECONDS", "300"))
    ),
)

_PAST_TENSE = {"create": "Created", "patch": "Updated", "delete": "Deleted"}


@dataclass
class KeyLock:
    """A lock that serializes passes over one key, and how many passes use it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class OperatorState:
    """What one operator process keeps between reconciles (lives on kopf's memo).

    NB: ``locks`` holds only keys with a pass running or waiting (``one_at_a_time``
    drops the rest), so deleted bots and restores leave nothing behind.
    """

    kube: Kube
    locks: dict[tuple[str, str], KeyLock] = field(default_factory=dict)
    dirty: set[tuple[str, str]] = field(default_factory=set)
    debouncing: set[tuple[str, str]] = field(default_factory=set)
    phases: dict[tuple[str, str], str] = field(default_factory=dict)
    # What the periodic passes visit, kept from watch events: (namespace, name).
    bots: set[tuple[str, str]] = field(default_factory=set)
    restores_in_progress: set[tuple[str, str]] = field(default_factory=set)
    periodic: list[asyncio.Task[None]] = field(default_factory=list)
    closing: bool = False
    # Each bot's last risk read and where to read it: filled by the poller, copied by passes.
    trading: TradingReads = field(
        default_factory=lambda: TradingReads(interval=TRADING_READ_SECONDS)
    )
    # The client the poller reads the bots' APIs with (made at startup, closed at cleanup).
    bot_http: httpx.AsyncClient | None = None


@dataclass(frozen=True)
class Result:
    """What a pass did, for the caller to turn into kopf's retry semantics."""

    phase: str | None
    writes: int = 0
    invalid_spec: tuple[str, ...] = ()


def _candidate_keys(
    bot: TraderBot, desired: list[dict[str, Any]], *, monitor: bool
) -> list[ObjectKey]:
    """Return every key to observe: the desired ones plus prunable ones that may linger."""
    names = Names(bot.name)
    keys = [key_of(manifest) for manifest in desired]
    keys.append(("batch/v1", "CronJob", names.backup_cronjob))
    keys.append(("batch/v1", "CronJob", names.backup_verify))
    if monitor:
        keys.append((SERVICE_MONITOR_API_VERSION, "ServiceMonitor", names.api))
    return keys


def _summary(actions: list[Action]) -> dict[str, str]:
    """Group written actions into one event message per verb."""
    grouped: dict[str, list[str]] = {}
    for action in actions:
        if action.verb in _PAST_TENSE:
            grouped.setdefault(_PAST_TENSE[action.verb], []).append(f"{action.kind} {action.name}")
    return {reason: ", ".join(items) for reason, items in grouped.items()}


def _reconciled_message(status: Mapping[str, Any] | None) -> str | None:
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == "Reconciled":
            message: str | None = condition.get("message")
            return message
    return None


async def _report(
    state: OperatorState,
    *,
    body: Mapping[str, Any],
    bot: TraderBot,
    status: dict[str, Any],
) -> int:
    """Write the status if it changed, and an Event when the Reconciled verdict changed."""
    writes = 0
    current = body.get("status")
    reconciled = next(c for c in status["conditions"] if c["type"] == "Reconciled")
    if reconciled["status"] == "False" and reconciled["message"] != _reconciled_message(current):
        await state.kube.event(
            bot=body,
            type_="Warning",
            reason=reconciled["reason"],
            message=reconciled["message"],
        )
        writes += 1
    health = next((c for c in status["conditions"] if c["type"] == "BackupHealthy"), None)
    before_health = next(
        (c for c in (current or {}).get("conditions") or [] if c.get("type") == "BackupHealthy"),
        None,
    )
    if (
        health is not None
        and health["status"] == "False"
        and health["message"] != (before_health or {}).get("message")
    ):
        await state.kube.event(
            bot=body, type_="Warning", reason="BackupFailed", message=health["message"]
        )
        writes += 1
    metrics.set_backup_health(
        namespace=bot.namespace,
        bot=bot.name,
        healthy=None if health is None else health["status"] == "True",
    )
    verified = next((c for c in status["conditions"] if c["type"] == "BackupVerified"), None)
    # NB: Unknown (no verification ran yet) is not a failure, as for backup health.
    metrics.set_backup_verified(
        namespace=bot.namespace,
        bot=bot.name,
        verified=None if verified is None else verified["status"] != "False",
    )
    last_backup = (status.get("lastBackup") or {}).get("time")
    metrics.set_last_backup(
        namespace=bot.namespace,
        bot=bot.name,
        time=datetime.fromisoformat(last_backup)
        if bot.spec.backup.enabled and last_backup
        else None,
    )
    if status_changed(current, status):
        await state.kube.patch_status(namespace=bot.namespace, name=bot.name, status=status)
        writes += 1
    before = (current or {}).get("phase")
    if before != status["phase"]:
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        logger.info(
            "TraderBot %s/%s phase %s -> %s: %s",
            bot.namespace,
            bot.name,
            before,
            status["phase"],
            ready["message"],
        )
    state.phases[(bot.namespace, bot.name)] = status["phase"]
    metrics.set_phases(state.phases)
    return writes


async def _report_rejected(
    state: OperatorState, *, body: Mapping[str, Any], problems: tuple[str, ...]
) -> Result:
    """Report a body the models reject: status Failed, and one Warning per new verdict.

    NB: the drift timer runs this every minute; the Event is posted only when the
    verdict changed, so a no-op pass writes nothing.
    """
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    current = body.get("status")
    status = rejected_status(body, problems=problems, now=datetime.now(UTC))
    writes = 0
    if _reconciled_message(current) != "; ".join(problems):
        await state.kube.event(
            bot=body, type_="Warning", reason="InvalidSpec", message="; ".join(problems)
        )
        writes += 1
    if status_changed(current, status):
        await state.kube.patch_status(namespace=namespace, name=name, status=status)
        writes += 1
    state.phases[(namespace, name)] = "Failed"
    metrics.set_phases(state.phases)
    return Result(phase="Failed", writes=writes, invalid_spec=problems)


async def reject_run(
    state: OperatorState, *, body: Mapping[str, Any], kind: str, problems: tuple[str, ...]
) -> str:
    """Fail a TraderBotBackup/TraderBotRestore whose spec the models refuse; return Failed.

    NB: before anything is read or started for it: a refused name (``../x``) never
    reaches a URL. The Warning is posted once, when the record turns Failed.
    """
    meta = body["metadata"]
    current = body.get("status") or {}
    status = rejected_run_status(kind, problems=problems)
    if differences(status, current):
        await state.kube.patch_status(
            namespace=meta["namespace"],
            name=meta["name"],
            status=status,
            kind=kind,
            resource_version=meta["resourceVersion"],
        )
        if current.get("phase") != "Failed":
            message = next(v for k, v in status.items() if k != "phase")
            await state.kube.event(bot=body, type_="Warning", reason="InvalidSpec", message=message)
    return "Failed"


OPERATOR_ERROR_MESSAGE_LENGTH = 600


async def report_operator_error(
    state: OperatorState, *, kind: str, namespace: str, name: str, error: BaseException
) -> None:
    """Say in the object's status and in one Warning Event that its pass failed unexpectedly.

    NB: never raises (the caller is already handling a failure): what cannot be
    reported is logged.
    """
    detail = f"{type(error).__name__}: {error}"[:OPERATOR_ERROR_MESSAGE_LENGTH]
    message = (
        f"the operator failed unexpectedly ({detail}); this is a bug: the operator's log "
        "has the traceback, and the pass is retried"
    )
    try:
        body = await state.kube.get(namespace=namespace, key=(API_VERSION, kind, name))
        if body is None:
            return
        current = body.get("status") or {}
        status = operator_error_status(kind, body, message=message, now=datetime.now(UTC))
        if differences(status, current):
            await state.kube.patch_status(namespace=namespace, name=name, status=status, kind=kind)
            await state.kube.event(
                bot=body, type_="Warning", reason="OperatorError", message=message
            )
    except Exception:  # the report is best effort; the original error is re-raised
        logger.exception("could not report the failed pass of %s %s/%s", kind, namespace, name)


class RestoreHold(NamedTuple):
    """The TraderBotRestore holding a bot: its name, phase, and whether Redis is held."""

    name: str
    phase: str
    redis: bool


async def restore_holding(state: OperatorState, *, body: Mapping[str, Any]) -> RestoreHold | None:
    """Return the TraderBotRestore holding this bot's API (and maybe Redis), if any.

    NB: the hold is an annotation naming the restore; it only counts while that
    restore exists and has not completed, so a deleted restore releases the API.
    """
    annotations = body["metadata"].get("annotations") or {}
    holder = annotations.get(HOLD_ANNOTATION)
    if not holder:
        return None
    restore = await state.kube.get(
        namespace=body["metadata"]["namespace"], key=(API_VERSION, RESTORE_KIND, holder)
    )
    phase = ((restore or {}).get("status") or {}).get("phase") or "Pending"
    if restore is None or phase == "Completed":
        return None
    what = (restore.get("spec") or {}).get("what") or "database"
    return RestoreHold(holder, phase, redis_held(what=what, phase=phase))


async def _decide_upgrade(
    state: OperatorState,
    *,
    bot: TraderBot,
    observed: Mapping[ObjectKey, dict[str, Any] | None],
    held: bool,
    now: datetime,
) -> UpgradeDecision:
    """Read the pre-upgrade backup (only while spec.version differs) and decide the upgrade."""
    backup: BackupRun | None = None
    if bot.status.version is not None and bot.spec.version != bot.status.version:
        body = await state.kube.get(
            namespace=bot.namespace, key=(API_VERSION, BACKUP_KIND, pre_upgrade_backup_name(bot))
        )
        backup = None if body is None else BackupRun.from_body(body)
    return decide_upgrade(
        bot,
        deployment=observed.get(("apps/v1", "Deployment", Names(bot.name).api)),
        backup=backup,
        held=held,
        now=now,
    )


async def _start_pre_upgrade_backup(
    state: OperatorState, *, bot: TraderBot, upgrade: UpgradeDecision, blocked: bool
) -> KubeError | None:
    """Create the TraderBotBackup the upgrade waits for, when it asks for one.

    Nothing is created while the spec has problems (``blocked``). Returns the API's
    refusal, to be reported like any failed write.
    """
    name = upgrade.create_backup
    if name is None or blocked:
        return None
    try:
        await state.kube.execute(
            namespace=bot.namespace,
            action=Action(
                verb="create",
                key=(API_VERSION, BACKUP_KIND, name),
                body=build_pre_upgrade_backup(bot, name=name),
            ),
        )
    except ConflictError:
        return None  # made by an earlier pass whose status write was lost: it is the one
    except KubeError as error:
        return error
    return None


def _deploying(bot: TraderBot, upgrade: UpgradeDecision) -> TraderBot:
    """Return ``bot`` with the version the upgrade lets the pods run (usually spec.version).

    NB: that is the old version while the pre-upgrade backup runs and after a
    rollback, never blindly spec.version.
    """
    if upgrade.deploy_version == bot.spec.version:
        return bot
    return bot.model_copy(
        update={"spec": bot.spec.model_copy(update={"version": upgrade.deploy_version})}
    )


async def _upgrade_writes(
    state: OperatorState, *, body: Mapping[str, Any], upgrade: UpgradeDecision, wrote: bool
) -> int:
    """Post the Event of an upgrade step (started, rolled out, rolled back...); count writes.

    ``wrote`` says whether the pass could write (and so created the pre-upgrade backup).
    """
    created = int(wrote and upgrade.create_backup is not None)
    if upgrade.event is None:
        return created
    type_, reason, message = upgrade.event
    await state.kube.event(bot=body, type_=type_, reason=reason, message=message)
    return created + 1


async def _with_verification(
    state: OperatorState,
    *,
    body: Mapping[str, Any],
    bot: TraderBot,
    status: dict[str, Any],
    observed: Mapping[ObjectKey, dict[str, Any] | None],
    now: datetime,
) -> tuple[dict[str, Any], int]:
    """Add the BackupVerified condition; warn once per failed verification. Return writes.

    NB: trader-backup's error is read from the failed Job's pod only once per failed
    run (the condition's message names the Job); later passes reuse it, so a failed
    verification costs no extra reads while it stays the last one.
    """
    cronjob = observed.get(("batch/v1", "CronJob", Names(bot.name).backup_verify))
    previous = next((c for c in bot.status.conditions if c.type == verification.CONDITION), None)
    failed_job = verification.failed_run(bot, cronjob)
    if failed_job is not None and previous is not None and failed_job in (previous.message or ""):
        found: verification.Verification | None = verification.Verification(
            previous.status, previous.reason or "VerificationFailed", previous.message or ""
        )
    else:
        message = None
        if failed_job is not None:
            message = await state.kube.termination_message(namespace=bot.namespace, job=failed_job)
        found = verification.backup_verified(bot, cronjob, result=parse_backup_result(message))
    if found is None:
        return status, 0
    condition = verification.verified_condition(
        found,
        previous=None if previous is None else previous.model_dump(by_alias=True),
        generation=bot.generation,
        now=now,
    )
    writes = 0
    if found.status == "False" and (previous is None or previous.message != found.message):
        await state.kube.event(
            bot=body,
            type_="Warning",
            reason="BackupVerificationFailed",
            message=found.message,
        )
        writes += 1
    return {**status, "conditions": [*status["conditions"], condition]}, writes


def _with_upgrade(
    status: dict[str, Any], *, bot: TraderBot, upgrade: UpgradeDecision, now: datetime
) -> dict[str, Any]:
    """Add the upgrade's fields and its UpgradeFailed condition to a computed status."""
    previous = next((c for c in bot.status.conditions if c.type == "UpgradeFailed"), None)
    conditions = [
        *status["conditions"],
        upgrade_condition(
            upgrade,
            previous=None if previous is None else previous.model_dump(by_alias=True),
            generation=bot.generation,
            now=now,
        ),
    ]
    return {**status, **upgrade_status_fields(upgrade), "conditions": conditions}


async def _report_paused(
    state: OperatorState, *, body: Mapping[str, Any], bot: TraderBot
) -> Result:
    """Only observe and report a paused bot: no creates, updates or repairs."""
    names = Names(bot.name)
    observed = await state.kube.observe(
        namespace=bot.namespace,
        keys=[
            ("apps/v1", "Deployment", names.api),
            ("apps/v1", "StatefulSet", names.database),
            ("apps/v1", "StatefulSet", names.redis),
            ("batch/v1", "CronJob", names.backup_cronjob),
            # NB: a paused bot's pods still trade; its risk state is still read.
            ("v1", "Secret", names.api_read_key_secret),
        ],
        labels=instance_labels(bot),
    )
    key = (bot.namespace, bot.name)
    state.trading.target(key, trading_target(bot, observed=observed))
    status = compute_status(
        bot,
        observed=observed,
        outcome=Outcome(),
        now=datetime.now(UTC),
        statefulset_deadline=STATEFULSET_DEADLINE,
        trading=state.trading.last(key),
        trading_policy=TRADING_POLICY,
    )
    writes = await _report(state, body=body, bot=bot, status=status)
    return Result(phase=status["phase"], writes=writes)


def forget_bot(state: OperatorState, *, namespace: str, name: str) -> None:
    """Drop what the operator keeps about a bot that is gone: phase, reads, its series."""
    state.phases.pop((namespace, name), None)
    metrics.set_phases(state.phases)
    metrics.forget_bot(namespace=namespace, bot=name)
    state.trading.forget((namespace, name))


async def converge(state: OperatorState, *, namespace: str, name: str) -> Result:
    """Bring one TraderBot's children to its spec and write its status.

    Raises ``kube.ConflictError`` / ``kube.KubeError`` for the caller to retry.
    """
    kube = state.kube
    body = await kube.get_bot(namespace=namespace, name=name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        forget_bot(state, namespace=namespace, name=name)
        return Result(phase=None)
    try:
        bot = TraderBot.from_body(body)
    except ValidationError as error:
        return await _report_rejected(state, body=body, problems=model_problems(error))

    if bot.spec.paused:
        return await _report_paused(state, body=body, bot=bot)

    held_by = await restore_holding(state, body=body)
    if held_by is not None:
        # NB: the API is built with zero replicas while a restore needs it stopped; a
        # hibernation asked for meanwhile waits for the restore, whose Job needs the
        # database (and Redis) running.
        bot = bot.model_copy(
            update={"spec": bot.spec.model_copy(update={"replicas": 0, "hibernate": False})}
        )
    referenced = await kube.secrets(namespace=namespace, names=referenced_secret_names(bot))
    problems = tuple(spec_problems(bot, secrets=referenced))
    # NB: looked up even with monitoring off, so that a ServiceMonitor left from when
    # it was on is observed, and pruned.
    monitor = await kube.service_monitor_available()
    # NB: which children exist does not depend on the version, so the keys to observe
    # come from the spec before the upgrade decides which version to deploy.
    keys = _candidate_keys(
        bot, build_children(bot, service_monitor_available=monitor), monitor=monitor
    )
    observed = await kube.observe(
        namespace=namespace, keys=[*keys, database_claim_key(bot)], labels=instance_labels(bot)
    )
    problems += tuple(lost_credentials(bot, observed=observed))
    now = datetime.now(UTC)
    # NB: a hibernating bot holds its version like a restore does: no pod can prove a
    # new one Ready, and the pre-upgrade backup would find no database.
    upgrade = await _decide_upgrade(
        state, bot=bot, observed=observed, held=held_by is not None or bot.spec.hibernate, now=now
    )
    desired = build_children(
        _deploying(bot, upgrade),
        service_monitor_available=monitor,
        redis_stopped=held_by is not None and held_by.redis,
        backups_held=held_by is not None,
        # NB: Secrets this pass read anyway: hashing their content costs no request.
        live_secrets={k[2]: obj for k, obj in observed.items() if k[1] == "Secret"} | referenced,
    )
    problems += tuple(foreign_objects(bot, desired=desired, observed=observed))

    writes = 0
    forbidden: list[str] = []
    written: list[Action] = []
    failure: ConflictError | KubeError | None = None
    if not problems:
        for action in plan(desired, observed):
            if action.verb == "forbidden":
                forbidden.append(
                    f"{action.kind} {action.name}: {', '.join(action.forbidden)} cannot change "
                    "in place; the rest of the change was applied"
                )
            if not action.write:
                continue
            try:
                observed[action.key] = await kube.execute(namespace=namespace, action=action)
            except (ConflictError, KubeError) as error:
                failure = error  # reported in status below, then retried by the caller
                break
            metrics.WRITES.labels(verb=action.verb, kind=action.kind).inc()
            written.append(action)
            writes += 1
    failure = failure or await _start_pre_upgrade_backup(
        state, bot=bot, upgrade=upgrade, blocked=bool(problems)
    )
    writes += await _upgrade_writes(state, body=body, upgrade=upgrade, wrote=not problems)
    for reason, message in _summary(written).items():
        await state.kube.event(bot=body, type_="Normal", reason=reason, message=message)
        writes += 1

    outcome = Outcome(
        invalid_spec=problems,
        forbidden_changes=tuple(forbidden),
        errors=() if failure is None else (str(failure),),
        held_by=None if held_by is None else (held_by.name, held_by.phase),
    )
    # NB: the poller reads the bot's risk state on its own schedule; the pass only says
    # where to read and copies the last read: no request to the bot's API in here.
    state.trading.target((namespace, name), trading_target(bot, observed=observed))
    status, verified_writes = await _with_verification(
        state,
        body=body,
        bot=bot,
        status=_with_upgrade(
            compute_status(
                bot,
                observed=observed,
                outcome=outcome,
                now=now,
                statefulset_deadline=STATEFULSET_DEADLINE,
                trading=state.trading.last((namespace, name)),
                trading_policy=TRADING_POLICY,
            ),
            bot=bot,
            upgrade=upgrade,
            now=now,
        ),
        observed=observed,
        now=now,
    )
    writes += verified_writes + await _report(state, body=body, bot=bot, status=status)
    if failure is not None:
        raise failure
    return Result(phase=status["phase"], writes=writes, invalid_spec=problems)


@contextlib.asynccontextmanager
async def one_at_a_time(state: OperatorState, key: tuple[str, str]) -> AsyncIterator[None]:
    """Hold ``key``'s lock for one pass; forget the lock once no pass uses or awaits it."""
    entry = state.locks.setdefault(key, KeyLock())
    entry.users += 1
    try:
        async with entry.lock:
            yield
    finally:
        entry.users -= 1
        if entry.users == 0:
            # NB: no await since the decrement, so no other pass can have taken it meanwhile.
            del state.locks[key]
            state.dirty.discard(key)


def busy(state: OperatorState, key: tuple[str, str]) -> bool:
    """Return whether a pass over ``key`` is running or waiting."""
    return key in state.locks


async def run_serialized(
    state: OperatorState, *, namespace: str, name: str, trigger: str, coalesce: bool = False
) -> Result | None:
    """Run ``converge`` for one bot, never two at once for the same bot.

    With ``coalesce`` (child events, which come in bursts), a request that arrives
    while a pass runs only marks the bot dirty, and the running pass goes once more.
    Returns None when the request was folded into a running pass.
    """
    key = (namespace, name)
    if coalesce and busy(state, key):
        state.dirty.add(key)
        return None
    async with one_at_a_time(state, key):
        result: Result | None = None
        while True:
            state.dirty.discard(key)
            started = time.perf_counter()
            try:
                result = await converge(state, namespace=namespace, name=name)
            except Exception as error:
                metrics.RECONCILE_TOTAL.labels(trigger=trigger, result="error").inc()
                metrics.RECONCILE_ERRORS.labels(error=type(error).__name__).inc()
                raise
            finally:
                metrics.RECONCILE_DURATION.observe(time.perf_counter() - started)
            outcome = "invalid" if result.invalid_spec else "ok"
            metrics.RECONCILE_TOTAL.labels(trigger=trigger, result=outcome).inc()
            if key not in state.dirty:
                return result


def owner_of(body: Mapping[str, Any]) -> str | None:
    """Return the name of the TraderBot that controls a child object, if any."""
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("apiVersion") == API_VERSION and owner.get("kind") == KIND:
            name: str | None = owner.get("name")
            return name
    labels = body.get("metadata", {}).get("labels") or {}
    instance: str | None = labels.get("app.kubernetes.io/instance")
    return instance
