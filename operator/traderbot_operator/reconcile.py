"""Pure reconcile logic: desired vs. observed -> actions; status and conditions from children.

Nothing here talks to the API: ``kube.py`` fetches what exists, these functions
decide what to write, and the handlers carry it out. That keeps every decision
testable without a server, and makes "a no-op reconcile writes nothing" a property
of ``plan`` rather than of luck.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from pydantic import ValidationError

from trader_api.config import Settings
from traderbot_operator.desired.api import api_env, api_url
from traderbot_operator.desired.common import (
    ANNOTATION_PREFIX,
    COMPONENT_API,
    Manifest,
    Names,
    content_hash,
    instance_labels,
    selector_labels,
)
from traderbot_operator.desired.credentials import read_key_of
from traderbot_operator.models import (
    KIND,
    Phase,
    ResourceRequirements,
    TraderBot,
)
from traderbot_operator.schedule import OVERDUE_PERIODS, backup_overdue
from traderbot_operator.trading import (
    CONDITION as TRADING_CONDITION,
)
from traderbot_operator.trading import (
    DEFAULT_TRADING_POLICY,
    ReadTarget,
    TradingPolicy,
    TradingRead,
    Verdict,
    halted,
    status_field,
    trading_condition,
    trading_status,
    trading_verdict,
)

ObjectKey = tuple[str, str, str]
"""(apiVersion, kind, name) of a child in the bot's namespace."""

APPLIED_HASH_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/applied-hash"

# Kinds we delete when the spec stops asking for them (never volumes: data stays).
PRUNABLE_KINDS: Final = frozenset({"CronJob", "ServiceMonitor"})

HIBERNATED_MESSAGE: Final = (
    "spec.hibernate is true: the API, database and Redis are scaled to zero and the "
    "backup CronJobs suspended; volumes and Secrets are kept (set it to false to resume)"
)

STATEFULSET_PROGRESS_DEADLINE: Final = timedelta(seconds=600)
"""How long the database or Redis may go without a Ready pod before the bot is Degraded.

NB: the same as a Deployment's default progressDeadlineSeconds, which the API pods
get, so the three components give up alike.
"""

Verb = Literal["create", "patch", "delete", "forbidden"]


@dataclass(frozen=True)
class Action:
    """One decision about one child: what to send, and why.

    ``body`` is the full server-side-apply body for create and patch. For a
    forbidden change it is the body with the immutable fields kept as they are
    (so the rest of the change still rolls out), and ``forbidden`` names them;
    ``write`` is false once that body is already live, so a forbidden change is
    reported on every pass but written only once.
    """

    verb: Verb
    key: ObjectKey
    body: Manifest
    forbidden: tuple[str, ...] = ()
    write: bool = True

    @property
    def kind(self) -> str:
        return self.key[1]

    @property
    def name(self) -> str:
        return self.key[2]


def key_of(manifest: Mapping[str, Any]) -> ObjectKey:
    """Return the identity of a manifest within its namespace."""
    return (manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])


# --- comparing only what we own ---------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|[a-zA-Z]*)$")
_SUFFIX: Final[dict[str, Decimal]] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY_PARENTS: Final = frozenset({"requests", "limits", "capacity"})


def parse_quantity(value: object) -> Decimal | None:
    """Return a Kubernetes quantity as a number, or None when it is not one.

    NB: the API server canonicalises quantities ("0.5" -> "500m", "1024Mi" -> "1Gi"),
    so comparing them as strings would patch forever.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    match = _QUANTITY.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    number, suffix = match.groups()
    scale = Decimal(1) if suffix[:1] in {"e", "E"} else _SUFFIX.get(suffix)
    if scale is None:
        return None
    try:
        return Decimal(number + suffix) if scale == 1 and suffix else Decimal(number) * scale
    except InvalidOperation:
        return None


def _equal_scalars(desired: object, observed: object, *, quantity: bool) -> bool:
    if desired == observed:
        return True
    if quantity:
        left, right = parse_quantity(desired), parse_quantity(observed)
        return left is not None and left == right
    return False


def differences(
    desired: object, observed: object, *, path: str = "", quantity: bool = False
) -> list[str]:
    """Return the paths where ``observed`` does not hold what ``desired`` says.

    Only fields present in ``desired`` count: whatever the server defaults or other
    controllers add is not ours and never causes a write. Lists must match item by
    item (same length), since a list we set is a list we own whole.
    """
    if isinstance(desired, Mapping):
        if not isinstance(observed, Mapping):
            return [path or "."]
        found: list[str] = []
        for key, value in desired.items():
            child_path = f"{path}.{key}"
            if key not in observed:
                if value in ({}, [], None, False):
                    # The server drops empty values and false booleans it defaults.
                    continue
                found.append(child_path)
                continue
            found += differences(
                value,
                observed[key],
                path=child_path,
                quantity=quantity or key in _QUANTITY_PARENTS,
            )
        return found
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(desired) != len(observed):
            return [path]
        found = []
        for index, (want, have) in enumerate(zip(desired, observed, strict=True)):
            found += differences(want, have, path=f"{path}[{index}]", quantity=quantity)
        return found
    return [] if _equal_scalars(desired, observed, quantity=quantity) else [path]


def owned_view(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Return the part of a desired manifest that is compared with the live object.

    NB: a Secret's data is written once, at creation, and never compared again:
    regenerating a password would lock the API out of its own database.
    """
    meta = manifest["metadata"]
    view: dict[str, Any] = {
        "metadata": {
            key: meta[key] for key in ("labels", "annotations", "ownerReferences") if key in meta
        }
    }
    for key, value in manifest.items():
        if key in {"apiVersion", "kind", "metadata", "status"}:
            continue
        if manifest["kind"] == "Secret" and key in {"data", "stringData"}:
            continue
        view[key] = value
    return view


def with_applied_hash(manifest: Manifest) -> Manifest:
    """Return ``manifest`` annotated with the hash of what we apply.

    NB: the subset comparison cannot see a field we *stopped* setting (for example
    scrape annotations after monitoring is turned off); the hash changes then, so the
    object is re-applied and server-side apply removes the field we no longer own.
    """
    stamped = copy.deepcopy(manifest)
    annotations = stamped["metadata"].setdefault("annotations", {})
    annotations.pop(APPLIED_HASH_ANNOTATION, None)
    annotations[APPLIED_HASH_ANNOTATION] = content_hash(owned_view(stamped))
    return stamped


# --- changes Kubernetes refuses in place -----------------------------------------------


def _claim_template_view(template: Mapping[str, Any]) -> dict[str, Any]:
    spec = template.get("spec", {})
    return {
        "name": template.get("metadata", {}).get("name"),
        "accessModes": spec.get("accessModes"),
        "storage": spec.get("resources", {}).get("requests", {}).get("storage"),
        "storageClassName": spec.get("storageClassName"),
    }


def _forbidden_paths(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> list[str]:
    """Return the immutable fields ``desired`` would change on ``observed``."""
    kind = desired["kind"]
    want, have = desired.get("spec", {}), observed.get("spec", {})
    found: list[str] = []
    if kind in {"Deployment", "StatefulSet"} and differences(
        want.get("selector"), have.get("selector")
    ):
        found.append("spec.selector")
    if kind == "StatefulSet":
        for key in ("serviceName", "podManagementPolicy"):
            if key in want and want.get(key) != have.get(key):
                found.append(f"spec.{key}")
        wanted = [_claim_template_view(t) for t in want.get("volumeClaimTemplates", [])]
        had = [_claim_template_view(t) for t in have.get("volumeClaimTemplates", [])]
        if wanted != had and differences(wanted, had):
            found.append("spec.volumeClaimTemplates")
    if kind == "Service" and "clusterIP" in want and want["clusterIP"] != have.get("clusterIP"):
        found.append("spec.clusterIP")
    if kind == "PersistentVolumeClaim":
        if want.get("storageClassName") not in {None, have.get("storageClassName")}:
            found.append("spec.storageClassName")
        size = parse_quantity(want.get("resources", {}).get("requests", {}).get("storage"))
        current = parse_quantity(have.get("resources", {}).get("requests", {}).get("storage"))
        if size is not None and current is not None and size < current:
            found.append("spec.resources.requests.storage")
    return found


def _keep_observed(body: Manifest, observed: Mapping[str, Any], paths: Iterable[str]) -> Manifest:
    """Return ``body`` with each dotted ``path`` set to its observed value."""
    kept = copy.deepcopy(body)
    for path in paths:
        *parents, leaf = path.split(".")
        target: dict[str, Any] = kept
        source: Any = observed
        for part in parents:
            target = target.setdefault(part, {})
            source = source.get(part, {}) if isinstance(source, Mapping) else {}
        if isinstance(source, Mapping) and leaf in source:
            value = copy.deepcopy(source[leaf])
            if leaf == "volumeClaimTemplates":
                for template in value:
                    template.pop("status", None)
            target[leaf] = value
        else:
            target.pop(leaf, None)
    return kept


# --- the plan --------------------------------------------------------------------------


def plan(
    desired: Sequence[Manifest], observed: Mapping[ObjectKey, Manifest | None]
) -> list[Action]:
    """Return the writes that bring ``observed`` to ``desired``; empty when converged.

    ``observed`` maps each key that was looked up to the live object, or None when it
    does not exist. Live objects of a prunable kind that are no longer desired are
    deleted; everything else not desired (volumes above all) is left alone.
    """
    actions: list[Action] = []
    wanted_keys = set()
    for manifest in desired:
        body = with_applied_hash(manifest)
        key = key_of(body)
        wanted_keys.add(key)
        live = observed.get(key)
        if live is None:
            actions.append(Action(verb="create", key=key, body=body))
            continue
        if manifest["kind"] == "Secret":
            body = {k: v for k, v in body.items() if k not in {"data", "stringData"}}
        if not differences(owned_view(body), live):
            continue
        forbidden = _forbidden_paths(body, live)
        if forbidden:
            kept = _keep_observed(body, live, forbidden)
            actions.append(
                Action(
                    verb="forbidden",
                    key=key,
                    body=kept,
                    forbidden=tuple(forbidden),
                    write=bool(differences(owned_view(kept), live)),
                )
            )
        else:
            actions.append(Action(verb="patch", key=key, body=body))
    for key, live in observed.items():
        if live is not None and key not in wanted_keys and key[1] in PRUNABLE_KINDS:
            actions.append(Action(verb="delete", key=key, body=dict(live)))
    return actions


# --- checks the schema cannot make ------------------------------------------------------


def _over_limit(requirements: ResourceRequirements) -> list[str]:
    found = []
    for resource, limit in requirements.limits.items():
        request = requirements.requests.get(resource)
        if request is None:
            continue
        low, high = parse_quantity(request), parse_quantity(limit)
        if low is not None and high is not None and low > high:
            found.append(f"{resource} request {request} exceeds its limit {limit}")
    return found


def spec_problems(bot: TraderBot, *, secrets: Mapping[str, Manifest | None]) -> list[str]:
    """Return why the spec cannot be run, in words an SRE can act on; empty when valid.

    ``secrets`` maps the names of the user's Secrets the spec references to the live
    object (or None). These checks need the cluster or quantity arithmetic, which the
    CRD's CEL rules cannot do.
    """
    spec = bot.spec
    problems: list[str] = []
    # NB: trader-api's settings refuse what it would exit on at start (live mode
    # without an exchange adapter, a strategy without its params): accepting it would
    # crash-loop the pods while the status said Progressing.
    problems += engine_problems(bot)
    for component, requirements in (
        ("spec.api.resources", spec.api.resources),
        ("spec.database.resources", spec.database.resources),
        ("spec.redis.resources", spec.redis.resources),
    ):
        problems += [f"{component}: {problem}" for problem in _over_limit(requirements)]
    references: list[tuple[str, str, tuple[str, ...]]] = []
    key_ref = spec.api.api_key_secret_ref
    if key_ref is not None:
        references.append(("spec.api.apiKeySecretRef", key_ref.name, (key_ref.key,)))
    credentials = spec.engine.exchange.credentials_secret_ref
    if spec.mode == "live" and credentials is not None:
        references.append(
            (
                "spec.engine.exchange.credentialsSecretRef",
                credentials.name,
                ("api-key", "api-secret"),
            )
        )
    for field_path, name, keys in references:
        secret = secrets.get(name)
        if secret is None:
            problems.append(
                f"{field_path}: Secret {bot.namespace}/{name} does not exist; create it "
                f"with keys {', '.join(keys)}"
            )
            continue
        present = set((secret.get("data") or {}) | (secret.get("stringData") or {}))
        missing = [key for key in keys if key not in present]
        if missing:
            problems.append(
                f"{field_path}: Secret {bot.namespace}/{name} lacks key(s) {', '.join(missing)}"
            )
    return problems


# Env variables whose value the operator builds from the spec, by the spec field an
# SRE edits; the rest (credentials, hosts) come from the operator itself.
_ENV_FIELDS: Final = {
    "STRATEGIES": "spec.engine.strategies",
    "RISK_MAX_ORDER_NOTIONAL": "spec.engine.risk.maxOrderNotional",
    "RISK_MAX_POSITION_NOTIONAL": "spec.engine.risk.maxPositionNotional",
    "RISK_MAX_OPEN_ORDERS": "spec.engine.risk.maxOpenOrders",
    "RISK_DAILY_LOSS_LIMIT": "spec.engine.risk.dailyLossLimit",
    "RATE_LIMIT_PER_SECOND": "spec.api.rateLimit.perSecond",
    "RATE_LIMIT_BURST": "spec.api.rateLimit.burst",
    "KLINES_RETENTION_DAYS": "spec.database.klinesRetentionDays",
    "KLINES_COMPRESS_AFTER_DAYS": "spec.database.compressAfterDays",
    "LOG_LEVEL": "spec.api.logLevel",
    "PORT": "spec.api.port",
    "TRADING_MODE": "spec.mode",
    "EXCHANGE": "spec.engine.exchange.name",
}
# Stand-ins for what the pod reads from Secrets and the downward API: their
# values are not the spec's to get wrong.
_STAND_IN: Final = "stand-in"
# Env names trader-api reads as another setting.
_ENV_ALIASES: Final = {"RUST_LOG": "LOG_LEVEL"}


def engine_problems(bot: TraderBot) -> list[str]:
    """Return why trader-api would refuse the env the operator builds for this spec.

    NB: trader-api's own settings model (``trader_api.config.Settings``) validates
    the env, so the operator and the engine cannot disagree: a strategy without
    its required params, an interval or symbol trader-api does not know, limits
    it refuses. Such a spec is deployed as nothing (InvalidSpec) instead of pods
    that crash at start. The models are this operator's release's; an image of
    another release is checked against them.
    """
    values: dict[str, str] = {}
    fields = dict(_ENV_FIELDS)
    extras = {variable.name for variable in bot.spec.api.env or ()}
    for variable in api_env(bot):
        # NB: the settings model is validated from a dict, not the environment, so a
        # name trader-api reads through an alias (RUST_LOG for LOG_LEVEL) is mapped.
        name = variable["name"].upper()
        setting = _ENV_ALIASES.get(name, name)
        values[setting.lower()] = variable.get("value", _STAND_IN)
        if variable["name"] in extras:
            fields[setting] = f"spec.api.env[{variable['name']}]"
    try:
        Settings.model_validate(values)
    except ValidationError as error:
        problems = []
        for detail in error.errors():
            env_name = str(detail["loc"][0]).upper() if detail["loc"] else ""
            where = fields.get(env_name, env_name or "spec")
            inner = "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in detail["loc"][1:]
            )
            reason = detail["msg"].removeprefix("Value error, ")
            problems.append(f"{where}{inner}: trader-api refuses it: {reason}")
        return problems
    return []


def database_claim_key(bot: TraderBot) -> ObjectKey:
    """Return the key of the database's data volume claim (made by the StatefulSet)."""
    return ("v1", "PersistentVolumeClaim", f"data-{Names(bot.name).database}-0")


def lost_credentials(bot: TraderBot, *, observed: Mapping[ObjectKey, Manifest | None]) -> list[str]:
    """Return a problem when the database password is gone but its data is not.

    NB: generating a new password then would lock the API out of its own database
    (PostgreSQL keeps the one it was initialised with); an SRE must bring the Secret
    back, or drop the volume, and the operator says so instead of guessing.
    """
    secret_key = ("v1", "Secret", Names(bot.name).database_secret)
    if observed.get(secret_key) is not None or observed.get(database_claim_key(bot)) is None:
        return []
    return [
        f"Secret {bot.namespace}/{Names(bot.name).database_secret} is missing but the database "
        f"volume {database_claim_key(bot)[2]} exists, initialised with that password; "
        "restore the Secret (username, password), or delete the volume to start with an "
        "empty database"
    ]


def made_for(bot: TraderBot, live: Mapping[str, Any]) -> bool:
    """Return whether ``live`` is this bot's child: owned by it, or labelled as made for it.

    NB: the labels alone count for what deletionPolicy Retain keeps (volumes, the
    database Secret): they outlive the bot's uid, and a bot applied again picks
    them up; the owner reference alone counts for a child whose labels were edited.
    """
    meta = live.get("metadata") or {}
    references = meta.get("ownerReferences") or []
    owned = any(ref.get("uid") == bot.uid and ref.get("controller") for ref in references)
    labelled = all((meta.get("labels") or {}).get(k) == v for k, v in instance_labels(bot).items())
    return owned or labelled


def foreign_objects(
    bot: TraderBot, *, desired: Sequence[Manifest], observed: Mapping[ObjectKey, Manifest | None]
) -> list[str]:
    """Return a problem for each object that has a child's name but was not made for this bot.

    NB: the operator creates only what is absent and never adopts: applying over a
    user's Service would overwrite its selector, and adopting a user's Secret that
    lacks the keys would leave the pods unable to start while the bot reads Ready.
    """
    problems = []
    for manifest in desired:
        key = key_of(manifest)
        live = observed.get(key)
        if live is not None and not made_for(bot, live):
            problems.append(
                f"{key[1]} {bot.namespace}/{key[2]} exists but was not made for TraderBot "
                f"{bot.name} (no owner reference to it, no labels {instance_labels(bot)}); "
                "the operator never takes over an object: rename or delete it, or give the "
                "TraderBot another name; nothing was written"
            )
    return problems


def referenced_secret_names(bot: TraderBot) -> list[str]:
    """Return the names of the user-provided Secrets the spec references."""
    names = []
    if bot.spec.api.api_key_secret_ref is not None:
        names.append(bot.spec.api.api_key_secret_ref.name)
    credentials = bot.spec.engine.exchange.credentials_secret_ref
    if bot.spec.mode == "live" and credentials is not None:
        names.append(credentials.name)
    return names


# --- status -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentState:
    """Readiness of one component, with the reason and message for its condition."""

    ready: bool
    reason: str
    message: str
    progressing: bool = False


@dataclass(frozen=True)
class Outcome:
    """What the last reconcile found beyond the children: problems and forbidden changes."""

    invalid_spec: tuple[str, ...] = ()
    forbidden_changes: tuple[str, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)
    held_by: tuple[str, str] | None = None  # (TraderBotRestore name, its phase)


def _generation_seen(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status") or {}
    return int(status.get("observedGeneration") or 0) >= int(
        obj.get("metadata", {}).get("generation") or 0
    )


def api_state(  # noqa: PLR0911 - one return per state, like _phase
    bot: TraderBot, deployment: Mapping[str, Any] | None
) -> ComponentState:
    """Return the API Deployment's readiness."""
    if deployment is None:
        return ComponentState(False, "NotFound", f"Deployment {Names(bot.name).api} does not exist")
    status = deployment.get("status") or {}
    want = int(deployment.get("spec", {}).get("replicas", bot.spec.replicas))
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    rolling = not _generation_seen(deployment) or updated < want or total > want
    if want == 0 and bot.spec.hibernate:
        return ComponentState(False, "Hibernated", "spec.hibernate is true: the API is stopped")
    if want == 0:
        return ComponentState(
            False, "ScaledToZero", "spec.replicas is 0: the API is stopped and nothing trades"
        )
    stuck = next(
        (
            c
            for c in status.get("conditions") or []
            if c.get("type") == "Progressing"
            and c.get("status") == "False"
            and c.get("reason") == "ProgressDeadlineExceeded"
        ),
        None,
    )
    if stuck is not None and ready < want:
        return ComponentState(
            False,
            "ProgressDeadlineExceeded",
            f"{ready}/{want} API pods ready and the rollout gave up: "
            f"{stuck.get('message') or 'progress deadline exceeded'}; see the pods' events "
            "(image pull, crash loop, probes)",
        )
    if rolling:
        return ComponentState(
            ready >= want,
            "RollingOut",
            f"rollout in progress: {updated}/{want} updated, {ready}/{want} ready",
            progressing=True,
        )
    if ready < want:
        return ComponentState(False, "PodsNotReady", f"{ready}/{want} API pods ready")
    return ComponentState(True, "PodsReady", f"{ready}/{want} API pods ready")


def _since(condition: Mapping[str, Any] | None, *, now: datetime) -> timedelta | None:
    """Return how long a component condition has been False, or None when it is not False.

    NB: its lastTransitionTime moves only when the status flips, so it is the moment the
    component was first seen not Ready, kept in the bot's own status across passes and
    operator restarts without any other bookkeeping.
    """
    if condition is None or condition.get("status") != "False":
        return None
    stamp = condition.get("lastTransitionTime")
    if not stamp:
        return None
    try:
        since = datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    return now - since


def statefulset_state(
    name: str,
    statefulset: Mapping[str, Any] | None,
    *,
    not_ready_for: timedelta | None = None,
    deadline: timedelta = STATEFULSET_PROGRESS_DEADLINE,
) -> ComponentState:
    """Return a single-replica StatefulSet's readiness (its pod is ``<name>-0``).

    ``not_ready_for`` is how long its component has been seen not Ready. Past
    ``deadline`` the reason is ProgressDeadlineExceeded, naming the pod: unlike a
    Deployment, a StatefulSet has no progress deadline of its own, and a pod that never
    becomes Ready would otherwise leave the bot Progressing forever.
    """
    if statefulset is None:
        return ComponentState(False, "NotFound", f"StatefulSet {name} does not exist")
    status = statefulset.get("status") or {}
    want = int(statefulset.get("spec", {}).get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    rolling = not _generation_seen(statefulset) or (
        status.get("updateRevision") is not None
        and status.get("currentRevision") != status.get("updateRevision")
    )
    if ready < want and not_ready_for is not None and not_ready_for > deadline:
        # NB: no elapsed time in the message: it would change the status on every pass.
        return ComponentState(
            False,
            "ProgressDeadlineExceeded",
            f"{name}: {ready}/{want} ready, pod {name}-0 not Ready within the "
            f"{int(deadline.total_seconds())}s deadline; see kubectl describe pod {name}-0 "
            "(image pull, crash loop, probes). After fixing the spec, delete the pod: "
            "a StatefulSet does not replace a pod that never became Ready",
        )
    if rolling:
        return ComponentState(
            False, "RollingOut", f"{name}: update in progress, {ready}/{want} ready", True
        )
    if ready < want:
        return ComponentState(False, "PodNotReady", f"{name}: {ready}/{want} ready")
    return ComponentState(True, "PodReady", f"{name}: {ready}/{want} ready")


def backup_state(bot: TraderBot, cronjob: Mapping[str, Any] | None) -> ComponentState:
    """Return whether backups are scheduled."""
    if not bot.spec.backup.enabled:
        return ComponentState(False, "Disabled", "spec.backup.enabled is false")
    if cronjob is None:
        missing = f"CronJob {Names(bot.name).backup_cronjob} does not exist"
        return ComponentState(False, "NotFound", missing)
    if cronjob.get("spec", {}).get("suspend"):
        if bot.spec.hibernate and not bot.spec.backup.suspend:
            return ComponentState(False, "Hibernated", "suspended while the bot hibernates")
        if not bot.spec.backup.suspend:
            return ComponentState(
                False, "HeldForRestore", "suspended while a TraderBotRestore holds the bot"
            )
        return ComponentState(False, "Suspended", "spec.backup.suspend is true")
    return ComponentState(
        True, "Scheduled", f"schedule {bot.spec.backup.schedule!r} ({bot.spec.backup.time_zone})"
    )


def backup_health(
    bot: TraderBot, cronjob: Mapping[str, Any] | None, *, now: datetime
) -> ComponentState | None:
    """Return whether scheduled backups succeed; None when backups are off.

    NB: read from the CronJob's own bookkeeping: a run that was scheduled after the
    last success, with nothing running any more, did not succeed. A failed scheduled
    backup therefore never goes unnoticed, and the next success clears it. No
    success within 2 schedule periods is unhealthy too: runs that never started
    (controller down, missed deadlines) fail nothing, yet back nothing up. A
    suspended CronJob is exempt (BackupScheduled says it is suspended).
    """
    if not bot.spec.backup.enabled or cronjob is None:
        return None
    status = cronjob.get("status") or {}
    scheduled, succeeded = status.get("lastScheduleTime"), status.get("lastSuccessfulTime")
    spec = bot.spec.backup
    overdue = (
        None
        if status.get("active") or (cronjob.get("spec") or {}).get("suspend")
        else backup_overdue(
            schedule=spec.schedule,
            time_zone=spec.time_zone,
            created=(cronjob.get("metadata") or {}).get("creationTimestamp"),
            last_success=succeeded,
            now=now,
        )
    )
    if overdue is not None:
        since = overdue.due_since.strftime("%Y-%m-%dT%H:%M:%S%z")
        return ComponentState(
            False,
            "NoRecentSuccess",
            f"no scheduled backup succeeded within {OVERDUE_PERIODS} periods of "
            f"{spec.schedule!r} ({spec.time_zone}), i.e. since {since} (last success: "
            f"{overdue.last_success or 'never'}); see kubectl get cronjob,tbb and the Jobs' logs",
        )
    if scheduled is None:
        return ComponentState(True, "NoRunYet", "no scheduled backup has run yet")
    if status.get("active"):
        return ComponentState(True, "Running", f"the scheduled backup of {scheduled} is running")
    if succeeded is None or succeeded < scheduled:
        last = succeeded or "never"
        return ComponentState(
            False,
            "LastRunFailed",
            f"the scheduled backup of {scheduled} did not succeed (last success: {last}); "
            "see kubectl get tbb and the Job's logs",
        )
    return ComponentState(
        True, "LastRunSucceeded", f"last scheduled backup succeeded at {succeeded}"
    )


def _condition(
    *,
    type_: str,
    ready: bool,
    reason: str,
    message: str,
    generation: int,
    previous: Mapping[str, Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    status = "True" if ready else "False"
    before = previous.get(type_)
    flipped = before is None or before.get("status") != status
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": (
            now if flipped or before is None else before.get("lastTransitionTime") or now
        ),
        "observedGeneration": generation,
    }


def label_selector(bot: TraderBot) -> str:
    """Return the API pods' selector as a string (scale subresource, HPA)."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(bot, COMPONENT_API).items()))


def _phase(  # noqa: PLR0911, PLR0912 - one return per phase reads as the decision table it is
    bot: TraderBot,
    *,
    api: ComponentState,
    database: ComponentState,
    cache: ComponentState,
    outcome: Outcome,
    any_child: bool,
    pods_left: int = 0,
    trading_halted: Verdict | None = None,
) -> tuple[Phase, ComponentState]:
    """Return the phase and the Ready condition's reason and message.

    ``pods_left`` counts the pods the API Deployment and the two StatefulSets still
    have (for hibernation: Hibernated only once none is left). ``trading_halted`` is
    the TradingHalted verdict when it is True: every component is up, yet nothing
    trades, so the bot is Degraded like one scaled to zero (docs/operator.md).
    NB: Degraded is kept for a bot that *was* up and lost a component; a bot still
    coming up, or rolling out, is Progressing, so creation does not flash Degraded.
    """
    failing = [
        f"{label} ({state.message})"
        for label, state in (("api", api), ("database", database), ("cache", cache))
        if not state.ready
    ]
    rolling = any(state.progressing for state in (api, database, cache))
    if bot.spec.paused:
        return "Paused", ComponentState(False, "Paused", "spec.paused is true: not reconciling")
    if outcome.invalid_spec:
        return "Failed", ComponentState(False, "InvalidSpec", "; ".join(outcome.invalid_spec))
    if outcome.forbidden_changes:
        message = "; ".join(outcome.forbidden_changes)
        return "Degraded", ComponentState(False, "ForbiddenChange", message)
    if outcome.held_by is not None:
        restore, restore_phase = outcome.held_by
        message = f"the API is stopped for TraderBotRestore {restore} ({restore_phase})"
        phase: Phase = "Degraded" if restore_phase == "Failed" else "Progressing"
        return phase, ComponentState(False, "ApiHeldForRestore", message)
    if bot.spec.hibernate:
        if pods_left:
            return "Progressing", ComponentState(
                False, "Hibernating", f"hibernating: {pods_left} pod(s) still running"
            )
        return "Hibernated", ComponentState(False, "Hibernated", HIBERNATED_MESSAGE)
    if api.reason == "ScaledToZero" and database.ready and cache.ready:
        # NB: never Ready while nothing trades, even when asked for: a daily check
        # reading the phase must see that the API is stopped.
        return "Degraded", ComponentState(False, "ScaledToZero", api.message)
    stuck = [
        f"{label} ({state.message})"
        for label, state in (("api", api), ("database", database), ("cache", cache))
        if state.reason == "ProgressDeadlineExceeded"
    ]
    if stuck:
        return "Degraded", ComponentState(False, "ProgressDeadlineExceeded", "; ".join(stuck))
    if not failing and not rolling and trading_halted is not None:
        return "Degraded", ComponentState(False, "TradingHalted", trading_halted.message)
    if not failing and not rolling:
        return "Ready", ComponentState(
            True, "AllComponentsReady", "API, database and cache are ready"
        )
    if not failing:
        return "Progressing", ComponentState(False, "RollingOut", api.message)
    summary = ComponentState(False, "ComponentsNotReady", "not ready: " + "; ".join(failing))
    if not any_child:
        return "Pending", summary
    if bot.status.phase in {"Ready", "Degraded"} and not rolling:
        return "Degraded", summary
    return "Progressing", summary


def _reconciled(bot: TraderBot, outcome: Outcome) -> ComponentState:
    """Return the Reconciled condition: did the last pass apply the whole spec?"""
    if bot.spec.paused:
        return ComponentState(False, "Paused", "spec.paused is true")
    if outcome.invalid_spec:
        return ComponentState(False, "InvalidSpec", "; ".join(outcome.invalid_spec))
    if outcome.forbidden_changes:
        return ComponentState(False, "ForbiddenChange", "; ".join(outcome.forbidden_changes))
    if outcome.errors:
        return ComponentState(False, "ApplyFailed", "; ".join(outcome.errors) + "; retrying")
    return ComponentState(True, "Applied", "children match the spec")


def compute_status(
    bot: TraderBot,
    *,
    observed: Mapping[ObjectKey, Manifest | None],
    outcome: Outcome,
    now: datetime,
    statefulset_deadline: timedelta = STATEFULSET_PROGRESS_DEADLINE,
    trading: TradingRead | None = None,
    trading_policy: TradingPolicy = DEFAULT_TRADING_POLICY,
) -> dict[str, Any]:
    """Return the TraderBot status (camelCase, as written to the API) from its children.

    ``trading`` is the operator's last read of the bot's risk state (made outside
    the pass, by the poller): it is only copied into ``status.trading`` and the
    TradingHalted condition here.
    NB: a condition's lastTransitionTime moves only when its status flips, so an
    unchanged world yields an identical status and the caller writes nothing.
    """
    names = Names(bot.name)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = {c.type: c.model_dump(by_alias=True) for c in bot.status.conditions}
    deployment = observed.get(("apps/v1", "Deployment", names.api))
    api = api_state(bot, deployment)
    database = statefulset_state(
        names.database,
        observed.get(("apps/v1", "StatefulSet", names.database)),
        not_ready_for=_since(previous.get("DatabaseReady"), now=now),
        deadline=statefulset_deadline,
    )
    cache = statefulset_state(
        names.redis,
        observed.get(("apps/v1", "StatefulSet", names.redis)),
        not_ready_for=_since(previous.get("CacheReady"), now=now),
        deadline=statefulset_deadline,
    )
    backup = backup_state(bot, observed.get(("batch/v1", "CronJob", names.backup_cronjob)))

    any_child = any(
        observed.get(key) is not None
        for key in (
            ("apps/v1", "Deployment", names.api),
            ("apps/v1", "StatefulSet", names.database),
            ("apps/v1", "StatefulSet", names.redis),
        )
    )
    pods_left = sum(
        int(((observed.get(key) or {}).get("status") or {}).get("replicas") or 0)
        for key in (
            ("apps/v1", "Deployment", names.api),
            ("apps/v1", "StatefulSet", names.database),
            ("apps/v1", "StatefulSet", names.redis),
        )
    )
    previous_trading = next((c for c in bot.status.conditions if c.type == TRADING_CONDITION), None)
    trading_found = trading_verdict(
        trading, previous=previous_trading, now=now, stale_after=trading_policy.stale_after
    )
    phase, summary = _phase(
        bot,
        api=api,
        database=database,
        cache=cache,
        outcome=outcome,
        any_child=any_child,
        pods_left=pods_left,
        trading_halted=trading_found if halted(trading_found) else None,
    )
    reconciled = _reconciled(bot, outcome)

    def condition(type_: str, *, ready: bool, reason: str, message: str) -> dict[str, Any]:
        return _condition(
            type_=type_,
            ready=ready,
            reason=reason,
            message=message,
            generation=bot.generation,
            previous=previous,
            now=stamp,
        )

    conditions = [
        condition("Ready", ready=phase == "Ready", reason=summary.reason, message=summary.message)
    ]
    conditions += [
        condition(type_, ready=state.ready, reason=state.reason, message=state.message)
        for type_, state in (
            ("ApiReady", api),
            ("DatabaseReady", database),
            ("CacheReady", cache),
            ("BackupScheduled", backup),
        )
    ]
    cronjob = observed.get(("batch/v1", "CronJob", names.backup_cronjob))
    health = backup_health(bot, cronjob, now=now)
    if health is not None:
        conditions.append(
            condition(
                "BackupHealthy", ready=health.ready, reason=health.reason, message=health.message
            )
        )
    conditions.append(
        trading_condition(
            trading_found, previous=previous_trading, generation=bot.generation, now=now
        )
    )
    conditions.append(
        condition(
            "Reconciled",
            ready=reconciled.ready,
            reason=reconciled.reason,
            message=reconciled.message,
        )
    )

    dep_status = (deployment or {}).get("status") or {}
    ready_replicas = int(dep_status.get("readyReplicas") or 0)
    running_version = bot.status.version
    if deployment is not None and api.ready and not api.progressing:
        template_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        running_version = template_labels.get("app.kubernetes.io/version", running_version)
    status: dict[str, Any] = {
        "phase": phase,
        "ready": f"{ready_replicas}/{0 if bot.spec.hibernate else bot.spec.replicas}",
        "observedGeneration": bot.generation,
        "replicas": int(dep_status.get("replicas") or 0),
        "readyReplicas": ready_replicas,
        "selector": label_selector(bot),
        "endpoints": {"api": api_url(bot)},
        "conditions": conditions,
    }
    if running_version is not None:
        status["version"] = running_version
    cronjob = observed.get(("batch/v1", "CronJob", names.backup_cronjob))
    last_success = ((cronjob or {}).get("status") or {}).get("lastSuccessfulTime")
    if last_success is None and bot.status.last_backup is not None:
        last_success = bot.status.last_backup.time
    if last_success is not None:
        status["lastBackup"] = {"time": last_success}
    shown = status_field(
        trading_status(
            trading, previous=bot.status.trading, now=now, refresh=trading_policy.refresh
        )
    )
    if shown is not None:
        status["trading"] = shown
    return status


def trading_target(
    bot: TraderBot, *, observed: Mapping[ObjectKey, Manifest | None]
) -> ReadTarget | None:
    """Return where the poller reads the bot's risk state, or None while nothing can answer.

    NB: only while the API Deployment has a ready pod (a stopped, hibernated or
    starting API has nothing to read), and only with the read-only key: the
    operator never reads with a key that can trade.
    """
    names = Names(bot.name)
    deployment = observed.get(("apps/v1", "Deployment", names.api))
    ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
    key = read_key_of(observed.get(("v1", "Secret", names.api_read_key_secret)))
    if ready == 0 or key is None:
        return None
    return ReadTarget(url=api_url(bot), key=key)


def rejected_status(
    body: Mapping[str, Any], *, problems: Sequence[str], now: datetime
) -> dict[str, Any]:
    """Return the status of a TraderBot whose body the models reject: Failed, with why.

    NB: built from the raw body (there is no model to build from); the other
    conditions are kept as they were, and an unchanged verdict yields an identical
    status, so the drift timer writes nothing on the next pass.
    """
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    current = body.get("status") or {}
    previous = {c.get("type"): c for c in current.get("conditions") or []}
    message = "; ".join(problems)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    verdict = {
        type_: _condition(
            type_=type_,
            ready=False,
            reason="InvalidSpec",
            message=message,
            generation=generation,
            previous=previous,
            now=stamp,
        )
        for type_ in ("Ready", "Reconciled")
    }
    conditions = [verdict.pop(c.get("type"), c) for c in current.get("conditions") or []]
    conditions += list(verdict.values())
    return {
        **current,
        "phase": "Failed",
        "observedGeneration": generation,
        "conditions": conditions,
    }


def status_changed(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Return whether writing ``new`` would change the live status."""
    return bool(differences(new, current or {})) or _dropped_keys(new, current or {})


def _dropped_keys(new: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    ours = {"phase", "ready", "observedGeneration", "version", "replicas", "readyReplicas"}
    return any(key in current and key not in new for key in ours)


def operator_error_status(
    kind: str, body: Mapping[str, Any], *, message: str, now: datetime
) -> dict[str, Any]:
    """Return the status that reports a pass that failed unexpectedly (an operator bug).

    NB: a TraderBot keeps its phase (its pods may be fine) and gets
    ``Reconciled=False, reason OperatorError``; a TraderBotBackup or -Restore keeps
    its phase and gets the message. An unchanged error yields an identical status,
    so a retry writes nothing and posts no second Event.
    """
    current = dict(body.get("status") or {})
    if kind != KIND:
        return {**current, "message": message}
    generation = int((body.get("metadata") or {}).get("generation") or 0)
    previous = {c.get("type"): c for c in current.get("conditions") or []}
    reconciled = _condition(
        type_="Reconciled",
        ready=False,
        reason="OperatorError",
        message=message,
        generation=generation,
        previous=previous,
        now=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    others = [c for c in current.get("conditions") or [] if c.get("type") != "Reconciled"]
    return {**current, "conditions": [*others, reconciled]}
