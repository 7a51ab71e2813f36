"""Pydantic models of the TraderBot spec and status.

They mirror ``crds/traderbot.dev_traderbots.yaml`` field for field, with the same
defaults, so the pure builders can be called with a spec the API server has not
defaulted (unit tests, dry runs). A unit test walks both and fails when they drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from traderbot_operator import __version__

GROUP = "traderbot.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TraderBot"
PLURAL = "traderbots"

WORKLOAD_IMAGE = "ghcr.io/traderbot-dev/trader-api"
TIMESCALEDB_IMAGE = "timescale/timescaledb:2.17.2-pg16"
REDIS_IMAGE = "redis:7.4.1-alpine"

# A Kubernetes object name (DNS-1123 subdomain, as the API server checks
# metadata.name). Every spec field that names an object carries it, in the CRDs
# as a pattern and here: such a name goes into a URL path, and one like
# ``../../ns/x/secrets/y`` would otherwise leave the namespace.
OBJECT_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
OBJECT_NAME_MAX_LENGTH: Final = 253
BOT_NAME_MAX_LENGTH: Final = 40
ObjectName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=OBJECT_NAME_MAX_LENGTH, pattern=OBJECT_NAME_PATTERN),
]
BotName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=BOT_NAME_MAX_LENGTH, pattern=OBJECT_NAME_PATTERN),
]

# Image references, by the OCI distribution reference grammar
# (github.com/distribution/reference): an optional registry host[:port], then
# lower-case path components; a reference may add a tag and a digest. Written
# out here and in the CRDs (a test compares them), so ``;rm -rf /``, a leading
# blank, upper case or two tags are refused at admission, not by every pod.
_DOMAIN_COMPONENT = r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_COMPONENT = r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = (
    rf"({_DOMAIN_COMPONENT}(\.{_DOMAIN_COMPONENT})*(:[0-9]+)?/)?"
    rf"{_PATH_COMPONENT}(/{_PATH_COMPONENT})*"
)
IMAGE_NAME_PATTERN: Final = rf"^{_IMAGE_NAME}$"
IMAGE_REFERENCE_PATTERN: Final = (
    rf"^{_IMAGE_NAME}(:[a-zA-Z0-9_][a-zA-Z0-9_.-]{{0,127}})?"
    r"(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[a-fA-F0-9]{32,})?$"
)
ImageName = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=IMAGE_NAME_PATTERN)
]
ImageReference = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=IMAGE_REFERENCE_PATTERN)
]

# Every number of the spec is bounded (the CRD's maximum, mirrored here) by what
# the code can handle: a retention of a billion days is a valid int32 but
# overflows ``timedelta`` arithmetic; 100 years and 10^12 (in quote currency)
# are far past any real setting and well inside what the code computes with.
MAX_DAYS: Final = 36_500
MAX_NOTIONAL: Final = 10**12

LogLevel = Literal["error", "warn", "info", "debug", "trace"]
Mode = Literal["paper", "live"]
StrategyKind = Literal["sma_crossover", "rsi_mean_reversion"]
Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Paused", "Hibernated", "Failed"]
Quantity = int | str


class _Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields refused.

    NB: ``extra="forbid"`` makes a CR with a field the models do not know fail loudly
    instead of being silently ignored; the API server prunes unknown fields first.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ResourceRequirements(_Model):
    """CPU/memory requests and limits, as in a container spec."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class SecretKeyRef(_Model):
    """A key of a Secret in the TraderBot's namespace."""

    name: ObjectName
    key: str = "api-key"


class SecretRef(_Model):
    """A Secret in the TraderBot's namespace."""

    name: ObjectName


class RateLimit(_Model):
    """Token bucket per client IP."""

    per_second: int = Field(20, ge=1, le=100_000)
    burst: int = Field(40, ge=1, le=1_000_000)


class LabelSelectorRequirement(_Model):
    """One matchExpressions entry of a Kubernetes label selector."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(_Model):
    """A Kubernetes label selector; empty selects everything."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class IpBlock(_Model):
    """A CIDR range, optionally minus some sub-ranges."""

    cidr: str
    except_: list[str] | None = Field(default=None, alias="except")


class NetworkPeer(_Model):
    """A NetworkPolicy peer: pods (by namespace and labels) or an IP range."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IpBlock | None = None


# Names the operator sets itself, refused in the spec's extras: the CRD's CEL
# rules carry the same lists (a unit test compares them), so the API server
# refuses them at admission; the models refuse them too, for a CR stored before.
# Labels: the pods' selector and identity (a selector label of another value
# would orphan the pods); annotations: the config hash, the scrape annotations
# of spec.monitoring. Every key under traderbot.dev/ is the operator's.
OWNED_KEY_PREFIX: Final = "traderbot.dev/"
OWNED_LABEL_KEYS: Final = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
)
OWNED_ANNOTATION_KEYS: Final = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")
# trader-api's env (desired/api.py api_env, docs/configuration.md): each has its
# spec field. NB: trader-api reads its env case-insensitively, so names are
# compared upper-cased; the prefixes cover the connection settings (DATABASE_URL
# would redirect the bot to another database) and every engine limit.
OWNED_ENV_NAMES: Final = (
    "PORT",
    "LOG_LEVEL",
    "TRADING_MODE",
    "EXCHANGE",
    "API_KEY",
    "READ_API_KEY",
    "STRATEGIES",
    "POD_NAME",
)
OWNED_ENV_PREFIXES: Final = ("DATABASE_", "REDIS_", "RISK_", "RATE_LIMIT_", "KLINES_", "EXCHANGE_")


def env_name_owned(name: str) -> bool:
    """Return whether the operator sets the env variable ``name`` of trader-api itself."""
    upper = name.upper()
    return upper in OWNED_ENV_NAMES or upper.startswith(OWNED_ENV_PREFIXES)


def key_owned(key: str, *, owned: tuple[str, ...]) -> bool:
    """Return whether a label or annotation key is the operator's (listed, or traderbot.dev/)."""
    return key in owned or key.startswith(OWNED_KEY_PREFIX)


def refuse_owned_keys(
    field: str, keys: Mapping[str, str] | None, *, owned: tuple[str, ...]
) -> None:
    """Raise ValueError naming the keys of ``keys`` the operator sets itself."""
    taken = [key for key in keys or {} if key_owned(key, owned=owned)]
    if taken:
        msg = (
            f"{field} {', '.join(sorted(taken))} are set by the operator "
            f"({', '.join(owned)} and every {OWNED_KEY_PREFIX} key); use other keys"
        )
        raise ValueError(msg)


# Label and annotation keys (a Kubernetes qualified name with an optional DNS
# prefix) and label values, as the API server checks them on a pod.
QUALIFIED_NAME_PATTERN: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
QualifiedName = Annotated[
    str, StringConstraints(min_length=1, max_length=317, pattern=QUALIFIED_NAME_PATTERN)
]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]
ENV_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ENV_NAME_PATTERN)]


class Toleration(_Model):
    """A pod toleration (core/v1 Toleration)."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0, le=31_536_000)


class TopologySpreadConstraint(_Model):
    """A pod topology spread constraint; fields beyond these are passed through as given.

    NB: ``extra="allow"`` (unlike every other model): the CRD preserves the rest of
    Kubernetes' shape (minDomains, matchLabelKeys, ...) and the API server checks it.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )

    max_skew: int = Field(ge=1, le=1000)
    topology_key: str = Field(min_length=1)
    when_unsatisfiable: Literal["DoNotSchedule", "ScheduleAnyway"]
    label_selector: dict[str, Any] | None = None


class LocalObjectReference(_Model):
    """An object in the TraderBot's namespace, by name."""

    name: ObjectName


class PodPlacement(_Model):
    """Where one component's pods run, and what extra labels and annotations they carry.

    One shape for the API, the database, Redis and the backup Jobs (a YAML anchor in
    the CRD). ``affinity`` and the constraints' selectors are Kubernetes' own shapes,
    passed through as given: the API server checks them on the pod template.
    """

    node_selector: dict[str, str] | None = None
    tolerations: tuple[Toleration, ...] | None = None
    affinity: dict[str, Any] | None = None
    topology_spread_constraints: tuple[TopologySpreadConstraint, ...] | None = None
    priority_class_name: ObjectName | None = None
    image_pull_secrets: tuple[LocalObjectReference, ...] | None = None
    labels: dict[QualifiedName, LabelValue] | None = None
    annotations: dict[QualifiedName, str] | None = None

    @model_validator(mode="after")
    def _no_owned_keys(self) -> Self:
        refuse_owned_keys("labels", self.labels, owned=OWNED_LABEL_KEYS)
        refuse_owned_keys("annotations", self.annotations, owned=OWNED_ANNOTATION_KEYS)
        return self


class EnvVar(_Model):
    """An extra env variable of trader-api, with a literal value."""

    name: EnvName
    value: str = Field(max_length=4096)


class ApiSpec(_Model):
    """The trader-api HTTP service."""

    port: int = Field(3000, ge=1024, le=65535)
    log_level: LogLevel = "info"
    resources: ResourceRequirements = ResourceRequirements(
        requests={"cpu": "100m", "memory": "256Mi"}, limits={"memory": "512Mi"}
    )
    rate_limit: RateLimit = RateLimit()
    api_key_secret_ref: SecretKeyRef | None = None
    allowed_clients: list[NetworkPeer] | None = None
    env: tuple[EnvVar, ...] | None = None
    pod: PodPlacement = PodPlacement()

    @model_validator(mode="after")
    def _no_owned_env(self) -> Self:
        names = [entry.name for entry in self.env or ()]
        taken = [name for name in names if env_name_owned(name)]
        if taken:
            msg = (
                f"env {', '.join(taken)} are set by the operator from the spec "
                "(docs/operator.md, trader-api environment); set the spec field instead"
            )
            raise ValueError(msg)
        upper = [name.upper() for name in names]
        if len(set(upper)) != len(upper):
            msg = "env names must be unique (trader-api reads them case-insensitively)"
            raise ValueError(msg)
        return self


class Strategy(_Model):
    """One strategy instance the engine runs."""

    name: str
    kind: StrategyKind
    symbol: str
    interval: str = "1m"
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class RiskLimits(_Model):
    """Limits checked before every order."""

    max_order_notional: float = Field(10000, gt=0, le=MAX_NOTIONAL)
    max_position_notional: float = Field(50000, gt=0, le=MAX_NOTIONAL)
    max_open_orders: int = Field(20, ge=1, le=1_000_000)
    daily_loss_limit: float = Field(5000, gt=0, le=MAX_NOTIONAL)


class ExchangeSpec(_Model):
    """Broker the engine sends orders to."""

    name: str = "paper"
    credentials_secret_ref: SecretRef | None = None


class EngineSpec(_Model):
    """The trading engine inside trader-api."""

    strategies: tuple[Strategy, ...] | None = None
    risk: RiskLimits = RiskLimits()
    exchange: ExchangeSpec = ExchangeSpec()


class StorageSpec(_Model):
    """A PersistentVolumeClaim request."""

    size: str
    storage_class_name: ObjectName | None = None


class DatabaseSpec(_Model):
    """The TimescaleDB StatefulSet."""

    image: ImageReference = TIMESCALEDB_IMAGE
    storage: StorageSpec = StorageSpec(size="10Gi")
    resources: ResourceRequirements = ResourceRequirements(
        requests={"cpu": "250m", "memory": "512Mi"}, limits={"memory": "1Gi"}
    )
    klines_retention_days: int = Field(90, ge=1, le=MAX_DAYS)
    compress_after_days: int = Field(7, ge=1, le=MAX_DAYS)
    pod: PodPlacement = PodPlacement()


class RedisSpec(_Model):
    """The Redis StatefulSet."""

    image: ImageReference = REDIS_IMAGE
    persistence: bool = True
    storage: StorageSpec = StorageSpec(size="1Gi")
    resources: ResourceRequirements = ResourceRequirements(
        requests={"cpu": "50m", "memory": "64Mi"}, limits={"memory": "256Mi"}
    )
    pod: PodPlacement = PodPlacement()


class BackupVerifySpec(_Model):
    """Scheduled verification of the newest backup (restored into a scratch database)."""

    enabled: bool = True
    schedule: str = "0 5 * * 0"


class BackupSpec(_Model):
    """Scheduled backups."""

    enabled: bool = True
    schedule: str = "0 3 * * *"
    time_zone: str = "Etc/UTC"
    retention_days: int = Field(30, ge=1, le=MAX_DAYS)
    include_redis: bool = True
    suspend: bool = False
    storage: StorageSpec = StorageSpec(size="20Gi")
    verify: BackupVerifySpec = BackupVerifySpec()
    pod: PodPlacement = PodPlacement()


# A Prometheus duration as the CRD allows it for a scrape interval (30s, 1m).
SCRAPE_INTERVAL_PATTERN: Final = r"^[0-9]+(s|m)$"


class MonitoringSpec(_Model):
    """Prometheus scraping: the ServiceMonitor's interval and extra labels.

    NB: ``labels`` go on the ServiceMonitor so a Prometheus's serviceMonitorSelector
    (kube-prometheus-stack: ``release: <its release>``) finds it; the operator's own
    keys are refused, as on pods: they identify the object as the bot's child.
    """

    enabled: bool = False
    interval: Annotated[str, StringConstraints(pattern=SCRAPE_INTERVAL_PATTERN)] = "30s"
    labels: dict[QualifiedName, LabelValue] | None = None

    @model_validator(mode="after")
    def _no_owned_keys(self) -> Self:
        refuse_owned_keys("labels", self.labels, owned=OWNED_LABEL_KEYS)
        return self


class UpgradeSpec(_Model):
    """How a change of ``spec.version`` rolls out."""

    pre_upgrade_backup: bool = True
    progress_deadline_seconds: int = Field(300, ge=5, le=86_400)


class TraderBotSpec(_Model):
    """Desired state of one trading stack."""

    version: str = __version__
    image: ImageName = WORKLOAD_IMAGE
    replicas: int = Field(1, ge=0, le=20)
    mode: Mode = "paper"
    paused: bool = False
    hibernate: bool = False
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    api: ApiSpec = ApiSpec()
    engine: EngineSpec = EngineSpec()
    database: DatabaseSpec = DatabaseSpec()
    redis: RedisSpec = RedisSpec()
    backup: BackupSpec = BackupSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    upgrade: UpgradeSpec = UpgradeSpec()


class Condition(_Model):
    """A Kubernetes-style condition (metav1.Condition without the required-ness)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None
    observed_generation: int | None = None


class Endpoints(_Model):
    """Where to reach the bot from inside the cluster."""

    api: str | None = None


class LastBackup(_Model):
    """The last successful backup."""

    time: str | None = None


class MaintenanceJob(_Model):
    """One TimescaleDB policy job, as the last backup read it."""

    job_id: int
    proc: str
    hypertable: str | None = None
    schedule_interval: str | None = None
    last_run_status: str | None = None
    last_run_started_at: str | None = None
    next_start: str | None = None


class MaintenanceStatus(_Model):
    """What keeps old klines in check (TimescaleDB's jobs or the engine), per the last backup."""

    backend: str
    retention: str | None = None
    klines_retention_days: int | None = None
    klines_compress_after_days: int | None = None
    jobs: tuple[MaintenanceJob, ...] = ()
    error: str | None = None
    observed_at: str | None = None
    backup_name: str | None = None


class TradingStatus(_Model):
    """The bot's risk state, as the operator last read it from GET /api/v1/risk.

    NB: copied from the operator's cache of its reads, never read during a pass;
    ``observed_at`` is when the values shown were read, ``error`` why the last
    read failed (the values are then the last good ones).
    """

    kill_switch: bool | None = None
    daily_loss_halt: bool | None = None
    halt_reason: str | None = None
    halted_since: str | None = None
    realized_pnl_today: str | None = None
    open_orders: int | None = None
    leader: str | None = None
    pod: str | None = None
    observed_at: str | None = None
    error: str | None = None


UpgradePhase = Literal["BackingUp", "BackupFailed", "RollingOut", "RolledBack"]
VersionOutcome = Literal["Installed", "Upgraded", "RolledBack", "Cancelled"]


class UpgradeStatus(_Model):
    """The version change in progress, or the last one that failed."""

    phase: UpgradePhase
    from_version: str | None = None
    target_version: str
    backup_name: str | None = None
    started_at: str | None = None
    message: str | None = None


class VersionRecord(_Model):
    """One entry of ``status.versionHistory``."""

    version: str
    time: str
    outcome: VersionOutcome


class TraderBotStatus(_Model):
    """Observed state, written by the operator only."""

    phase: Phase | None = None
    ready: str | None = None
    observed_generation: int | None = None
    version: str | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    selector: str | None = None
    endpoints: Endpoints | None = None
    last_backup: LastBackup | None = None
    maintenance: MaintenanceStatus | None = None
    trading: TradingStatus | None = None
    upgrade: UpgradeStatus | None = None
    version_history: tuple[VersionRecord, ...] = ()
    conditions: tuple[Condition, ...] = ()


class TraderBot(BaseModel):
    """A TraderBot resource as the operator sees it: identity, spec and status.

    NB: only the metadata the builders need is kept; ``uid`` feeds owner references.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    namespace: str
    uid: str
    generation: int = 1
    spec: TraderBotSpec = TraderBotSpec()
    status: TraderBotStatus = TraderBotStatus()

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> TraderBot:
        """Build from a resource body as the API server (or kopf) returns it."""
        metadata = body.get("metadata") or {}
        return cls(
            name=metadata["name"],
            namespace=metadata["namespace"],
            uid=metadata["uid"],
            generation=metadata.get("generation", 1),
            spec=TraderBotSpec.model_validate(body.get("spec") or {}),
            status=TraderBotStatus.model_validate(body.get("status") or {}),
        )


BACKUP_KIND = "TraderBotBackup"
BACKUP_PLURAL = "traderbotbackups"
BackupPhase = Literal["Pending", "Running", "Completed", "Failed"]


# A file on the backup volume, relative to its root: segments of safe characters, none
# empty, hidden or "..", so the path cannot leave the volume (the CRD has the same pattern).
BACKUP_VOLUME_PATH_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$"
BackupVolumePath = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=BACKUP_VOLUME_PATH_PATTERN)
]


class BackupImport(_Model):
    """docker-compose era backup files on the bot's backup volume, imported instead of dumped."""

    sql_gz: BackupVolumePath | None = None
    redis_rdb: BackupVolumePath | None = None


class BackupRunSpec(_Model):
    """What one TraderBotBackup backs up (mirrors crds/traderbot.dev_traderbotbackups.yaml)."""

    bot_name: BotName
    database: bool = True
    redis: bool = True
    tables: tuple[str, ...] | None = None
    import_from: BackupImport | None = None

    @model_validator(mode="after")
    def _import_matches(self) -> Self:
        """Keep ``database``/``redis`` true to what an import holds (restores check them)."""
        source = self.import_from
        if source is None:
            return self
        problems = [
            message
            for broken, message in (
                (
                    source.sql_gz is None and source.redis_rdb is None,
                    "importFrom needs sqlGz, redisRdb or both",
                ),
                (self.tables is not None, "importFrom imports whole files; drop spec.tables"),
                (
                    self.database != (source.sql_gz is not None),
                    "spec.database must be true exactly when importFrom.sqlGz is set",
                ),
                (
                    self.redis != (source.redis_rdb is not None),
                    "spec.redis must be true exactly when importFrom.redisRdb is set",
                ),
            )
            if broken
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class BackupRunStatus(_Model):
    """One backup run as observed."""

    phase: BackupPhase | None = None
    scheduled: bool | None = None
    job_name: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    location: str | None = None
    size_bytes: int | None = None
    checksum: str | None = None
    error: str | None = None
    message: str | None = None
    observed_generation: int | None = None
    pruned_at: str | None = None
    pruned_by: str | None = None


class _RunResource(BaseModel):
    """A run resource (TraderBotBackup, TraderBotRestore) as the operator sees it."""

    model_config = ConfigDict(frozen=True)

    name: str
    namespace: str
    uid: str
    labels: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Self:
        """Build from a resource body as the API server (or kopf) returns it."""
        metadata = body.get("metadata") or {}
        return cls.model_validate(
            {
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
                "labels": metadata.get("labels") or {},
                "spec": body.get("spec") or {},
                "status": body.get("status") or {},
            }
        )


class BackupRun(_RunResource):
    """A TraderBotBackup as the operator sees it."""

    spec: BackupRunSpec
    status: BackupRunStatus = BackupRunStatus()


RESTORE_KIND = "TraderBotRestore"
RESTORE_PLURAL = "traderbotrestores"
RestorePhase = Literal[
    "Pending", "StoppingApi", "Restoring", "StartingRedis", "Completed", "Failed"
]


class RestoreRunSpec(_Model):
    """What one TraderBotRestore restores (mirrors crds/traderbot.dev_traderbotrestores.yaml)."""

    bot_name: BotName
    backup_name: ObjectName
    what: Literal["database", "redis", "both"] = "database"


class RestoreRunStatus(_Model):
    """One restore as observed."""

    phase: RestorePhase | None = None
    message: str | None = None
    job_name: str | None = None
    api_stopped_at: str | None = None
    restored_at: str | None = None
    completion_time: str | None = None


class RestoreRun(_RunResource):
    """A TraderBotRestore as the operator sees it."""

    spec: RestoreRunSpec
    status: RestoreRunStatus = RestoreRunStatus()
