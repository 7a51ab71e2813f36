"""kopf handlers for TraderBot: thin, they only decide when a reconcile pass runs.

Triggers: create, update and resume of a TraderBot; a periodic drift check; and
any event on a child we manage (deleted or edited by hand -> restored at once),
except Secrets, which the drift check repairs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any

import kopf

from traderbot_operator import bot_api, metrics, trading
from traderbot_operator.desired.common import MANAGED_BY
from traderbot_operator.handlers.converge import (
    TRADING_POLICY,
    TRADING_READ_TIMEOUT_SECONDS,
    OperatorState,
    Result,
    forget_bot,
    owner_of,
    report_operator_error,
    run_serialized,
)
from traderbot_operator.kube import (
    ConflictError,
    InvalidNameError,
    Kube,
    KubeError,
    load_credentials,
    quiet_http_logs,
)
from traderbot_operator.models import GROUP, KIND, PLURAL, VERSION

DRIFT_INTERVAL_SECONDS = float(os.environ.get("TRADERBOT_DRIFT_INTERVAL_SECONDS", "60"))
DRIFT_INITIAL_DELAY_SECONDS = 5.0
CHILD_DEBOUNCE_SECONDS = float(os.environ.get("TRADERBOT_CHILD_DEBOUNCE_SECONDS", "1"))
CONFLICT_RETRY_SECONDS = 2.0
ERROR_RETRY_SECONDS = 15.0
# An operator bug does not fix itself: retry, but slowly (the status says what failed).
OPERATOR_ERROR_RETRY_SECONDS = 300.0
MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}

logger = logging.getLogger(__name__)

# (group, version, plural) of every child kind; events on them trigger a pass.
# NB: Secrets are not watched: a watch needs list/watch on every Secret the operator
# can see (cluster-wide by default); the drift timer repairs a deleted or edited
# credentials Secret within DRIFT_INTERVAL_SECONDS instead.
CHILD_KINDS = (
    ("", "v1", "services"),
    ("", "v1", "persistentvolumeclaims"),
    ("apps", "v1", "deployments"),
    ("apps", "v1", "statefulsets"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("networking.k8s.io", "v1", "networkpolicies"),
    ("batch", "v1", "cronjobs"),
)


def operator_state(memo: Any) -> OperatorState:
    state: OperatorState = memo.state
    return state


@kopf.on.login()
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """Authenticate kopf exactly as our own client does (kubeconfig or service account)."""
    found = load_credentials(kubeconfig=memo.get("kubeconfig"))
    return kopf.ConnectionInfo(
        server=found.server,
        ca_path=found.ca_path,
        ca_data=found.ca_data,
        insecure=found.insecure,
        certificate_path=found.certificate_path,
        certificate_data=found.certificate_data,
        private_key_path=found.private_key_path,
        private_key_data=found.private_key_data,
        token=found.token,
        default_namespace=found.namespace,
    )


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf, connect the API client once, and serve /metrics.

    NB: kopf's own Event posting is off (every Event is a write; ours say more),
    and its bookkeeping lives in annotations under our prefix so the status
    schema stays exactly ours.
    """
    settings.posting.enabled = False
    quiet_http_logs()
    # The namespaces are exact names and the kinds are known: no cluster scanning
    # (which would need list/watch on namespaces and CRDs cluster-wide).
    settings.scanning.disabled = True
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    # NB: kopf's copy of what it last handled leaves the annotations out: with them, a
    # large user annotation was stored twice and pushed the object past the API
    # server's 256 KiB for annotations ("annotations too long", in a loop). No
    # handler reacts to an annotation alone: the restore hold runs its pass itself.
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration", ignored_fields=["metadata.annotations"]
    )
    settings.watching.server_timeout = 300
    settings.queueing.error_delays = (1, 2, 5, 10, 30, 60)
    memo.state = OperatorState(
        kube=Kube.connect(kubeconfig=memo.get("kubeconfig")), bot_http=bot_api.client()
    )
    port = memo.get("metrics_port")
    address = memo.get("metrics_address") or "0.0.0.0"  # noqa: S104 - a pod's own IP
    memo.metrics_server = metrics.serve(port=port, address=address) if port else None
    memo.state.periodic = [
        asyncio.create_task(periodic(memo), name=periodic.__name__) for periodic in PERIODIC_PASSES
    ]


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Close the API client and the metrics server."""
    state = memo.get("state")
    if state is not None:
        state.closing = True
        for task in state.periodic:
            task.cancel()
        await asyncio.gather(*state.periodic, return_exceptions=True)
        await state.kube.close()
        if state.bot_http is not None:
            await state.bot_http.aclose()
    served = memo.get("metrics_server")
    if served is not None:
        metrics.shut_down(served)


def namespaced(namespace: str | None) -> str:
    if namespace is None:
        raise kopf.PermanentError("a TraderBot without a namespace: the CRD must be Namespaced")
    return namespace


async def _reconcile(
    memo: kopf.Memo, *, namespace: str, name: str, trigger: str, coalesce: bool = False
) -> Result | None:
    """Run a pass and translate its failures into kopf's retry semantics."""
    state = operator_state(memo)
    if state.closing:
        return None  # the operator is stopping: the next one resumes every bot
    async with pass_guard(state, kind=KIND, namespace=namespace, name=name):
        return await run_serialized(
            state, namespace=namespace, name=name, trigger=trigger, coalesce=coalesce
        )


# kopf keeps a retried handler's message in an annotation of the object: kept short,
# so bookkeeping never grows with an error's text (the status has the whole reason).
KOPF_MESSAGE_LENGTH = 512


def brief(message: str) -> str:
    """Return ``message`` cut to what kopf may keep in an annotation."""
    if len(message) <= KOPF_MESSAGE_LENGTH:
        return message
    return message[: KOPF_MESSAGE_LENGTH - 1] + "…"


@contextlib.asynccontextmanager
async def pass_guard(
    state: OperatorState, *, kind: str, namespace: str, name: str
) -> AsyncIterator[None]:
    """Turn a pass's failures into kopf retries, each with what an SRE should know.

    NB: shared by every resource's handlers so a failure reads (and backs off) the
    same everywhere. API failures are retried soon; an unexpected exception (an
    operator bug) is logged with its traceback, written to the object's status with
    one Warning Event, and retried slowly: never a silent retry loop.
    """
    try:
        yield
    except (kopf.TemporaryError, kopf.PermanentError, asyncio.CancelledError):
        raise
    except InvalidNameError as error:
        # NB: the models refuse such names first; retrying a name that cannot be
        # requested would loop for ever.
        raise kopf.PermanentError(brief(str(error))) from error
    except ConflictError as error:
        raise kopf.TemporaryError(
            brief(f"{error}; another writer changed it meanwhile, retrying"),
            delay=CONFLICT_RETRY_SECONDS,
        ) from error
    except KubeError as error:
        raise kopf.TemporaryError(
            brief(f"{error}; check the operator's RBAC and the API server, retrying"),
            delay=ERROR_RETRY_SECONDS,
        ) from error
    except Exception as error:
        logger.exception("the pass of %s %s/%s failed unexpectedly", kind, namespace, name)
        await report_operator_error(state, kind=kind, namespace=namespace, name=name, error=error)
        raise kopf.TemporaryError(
            brief(f"{type(error).__name__}: {error}; reported in the status, retrying"),
            delay=OPERATOR_ERROR_RETRY_SECONDS,
        ) from error


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile_traderbot(
    *, name: str, namespace: str | None, reason: str, memo: Any, **_: Any
) -> None:
    """Converge the bot after it was created, changed, or found at operator start.

    NB: an invalid spec fails this generation for good (PermanentError): nothing is
    deleted, the status says Failed with the reason, and a fixed spec or the drift
    timer (for example once a missing Secret exists) brings it back.
    """
    result = await _reconcile(memo, namespace=namespaced(namespace), name=name, trigger=str(reason))
    if result is not None and result.invalid_spec:
        raise kopf.PermanentError(brief("; ".join(result.invalid_spec)))


# NB: not kopf timers: kopf puts a finalizer on every object a timer runs for, so
# with the operator gone (uninstalled first, scaled to 0) deleting a bot, a
# restore or their namespace hung on it. Periodic passes run from the operator's
# own loop over what the watch streams reported, and need no finalizer.
Periodic = Callable[[kopf.Memo], Coroutine[Any, Any, None]]
PERIODIC_PASSES: list[Periodic] = []
PERIODIC_CONCURRENCY = 8


async def every(
    memo: kopf.Memo,
    *,
    interval: float,
    initial_delay: float,
    keys: Callable[[OperatorState], Iterable[tuple[str, str]]],
    run: Callable[[str, str], Coroutine[Any, Any, object]],
    what: str,
) -> None:
    """Run ``run(namespace, name)`` for each of ``keys`` every ``interval`` seconds.

    A failing pass is logged (its object's status says why) and never stops the
    others; at most PERIODIC_CONCURRENCY run at once.
    """
    await asyncio.sleep(initial_delay)
    slots = asyncio.Semaphore(PERIODIC_CONCURRENCY)

    async def one(namespace: str, name: str) -> None:
        async with slots:
            try:
                await run(namespace, name)
            except (kopf.TemporaryError, kopf.PermanentError) as error:
                logger.warning("%s %s/%s: %s", what, namespace, name, error)
            except Exception:
                # NB: the pass's own guard (pass_guard) already turns its failures into
                # the kopf errors above and a status; what lands here failed outside
                # it. Logged with its traceback, not raised: one object must not stop
                # the loop for every other (the loop is the only periodic pass).
                logger.exception("%s %s/%s failed", what, namespace, name)

    while True:
        state = operator_state(memo)
        if state.closing:
            return
        await asyncio.gather(*(one(ns, name) for ns, name in sorted(keys(state))))
        await asyncio.sleep(interval)


def tracked(
    keys: set[tuple[str, str]],
    *,
    event: str | None,
    body: kopf.Body,
    namespace: str,
    name: str,
    wanted: bool = True,
) -> None:
    """Add one watched object to a set the periodic passes visit, or drop it once gone.

    ``wanted`` False drops an object that still exists (a restore that ended).
    """
    gone = event == "DELETED" or bool(body.get("metadata", {}).get("deletionTimestamp"))
    if wanted and not gone:
        keys.add((namespace, name))
    else:
        keys.discard((namespace, name))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def track_bot(
    *, type: str | None, body: kopf.Body, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    """Keep the set of bots the drift check visits (no list request, no finalizer).

    NB: a deleted bot gets no pass of its own (nothing visits it any more), so what the
    operator keeps about it (its risk reads, its series) is dropped here.
    """
    if namespace is None or "state" not in memo:
        return
    state = operator_state(memo)
    tracked(state.bots, event=type, body=body, namespace=namespace, name=name)
    if type == "DELETED":
        forget_bot(state, namespace=namespace, name=name)


async def check_drift(memo: kopf.Memo) -> None:
    """Every DRIFT_INTERVAL_SECONDS, restore hand-made changes and refresh each bot's status."""

    async def one(namespace: str, name: str) -> None:
        await _reconcile(memo, namespace=namespace, name=name, trigger="timer", coalesce=True)

    await every(
        memo,
        interval=DRIFT_INTERVAL_SECONDS,
        initial_delay=DRIFT_INITIAL_DELAY_SECONDS,
        keys=lambda state: state.bots,
        run=one,
        what="drift check of TraderBot",
    )


PERIODIC_PASSES.append(check_drift)


TRADING_TICK_SECONDS = 1.0


async def read_trading(memo: kopf.Memo) -> None:
    """Read each bot's risk state when it is due; re-run its pass when the verdict moved.

    NB: the reads run here, never inside a pass: a slow or unreachable API costs
    this loop a timeout (at most PERIODIC_CONCURRENCY reads at once, each bot at
    most once per TRADERBOT_TRADING_READ_SECONDS) and no reconcile waits for it.
    A pass is asked for only when TradingHalted would change (a halt, a release, a
    read failing or recovering), so a halted bot shows it within a read interval
    instead of a drift interval; the numbers wait for the drift pass.
    """
    state = operator_state(memo)
    slots = asyncio.Semaphore(PERIODIC_CONCURRENCY)
    reading: set[asyncio.Task[None]] = set()

    async def one(key: tuple[str, str], target: trading.ReadTarget) -> None:
        namespace, name = key
        if state.bot_http is None:
            return
        async with slots:
            try:
                read = await bot_api.read_risk(
                    state.bot_http, target=target, within=TRADING_READ_TIMEOUT_SECONDS
                )
            except Exception as error:
                # NB: an operator bug, not the bot's: logged with its traceback, and
                # recorded as a failed read, so the bot stays due for the next one.
                logger.exception("reading the risk state of %s/%s failed", namespace, name)
                read = trading.TradingRead(at=datetime.now(UTC), error=f"operator error: {error}")
        previous = state.trading.record(key, read)
        if state.trading.last(key) is not read:
            return  # the bot went away meanwhile
        metrics.set_trading(namespace=namespace, bot=name, values=trading.metric_values(read))
        now = read.at
        before = trading.verdict(previous, now=now, stale_after=TRADING_POLICY.stale_after)
        after = trading.verdict(read, now=now, stale_after=TRADING_POLICY.stale_after)
        if after is None or (before is not None and before.reason == after.reason):
            return
        try:
            await _reconcile(memo, namespace=namespace, name=name, trigger="trading", coalesce=True)
        except (kopf.TemporaryError, kopf.PermanentError) as error:
            logger.warning("trading state of %s/%s: %s", namespace, name, error)
        except Exception:  # outside the pass guard: logged, the loop goes on (see every())
            logger.exception("the pass after a trading read of %s/%s failed", namespace, name)

    try:
        while not state.closing:
            for key, target in state.trading.due(time.monotonic()):
                task = asyncio.create_task(one(key, target), name=f"read-trading-{key[1]}")
                reading.add(task)
                task.add_done_callback(reading.discard)
            await asyncio.sleep(TRADING_TICK_SECONDS)
    finally:
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)


PERIODIC_PASSES.append(read_trading)


def _register_child_watch(group: str, version: str, plural: str) -> None:
    async def child_changed(
        *,
        body: kopf.Body,
        namespace: str | None,
        memo: Any,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        **_: Any,
    ) -> None:
        """Re-run the owning bot's pass: a child was added, edited or deleted."""
        if namespace is None or "state" not in memo:
            return
        owner = owner_of(body)
        if owner is None:
            return
        state = operator_state(memo)
        key = (namespace, owner)
        if key in state.debouncing:
            return  # a pass for this bot is already due: it will see this change too
        state.debouncing.add(key)
        try:
            # NB: children change in bursts (a rollout touches a dozen objects); one
            # pass after the burst replaces a dozen identical ones.
            await asyncio.sleep(CHILD_DEBOUNCE_SECONDS)
        finally:
            state.debouncing.discard(key)
        try:
            await _reconcile(memo, namespace=namespace, name=owner, trigger="child", coalesce=True)
        except kopf.TemporaryError as error:
            logger.warning("child event for %s/%s: %s", namespace, owner, error)

    kopf.on.event(group, version, plural, labels=MANAGED, id=f"child-{plural}")(child_changed)


for _group, _version, _plural in CHILD_KINDS:
    _register_child_watch(_group, _version, _plural)
