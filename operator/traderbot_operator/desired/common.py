"""Names, labels, owner references and pod-security settings shared by every builder."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Final

from traderbot_operator import __version__
from traderbot_operator.models import (
    API_VERSION,
    KIND,
    PodPlacement,
    ResourceRequirements,
    StorageSpec,
    TraderBot,
)

Manifest = dict[str, Any]

MANAGED_BY: Final = "traderbot-operator"
PART_OF: Final = "traderbot"
APP_NAME: Final = "trader-api"
ANNOTATION_PREFIX: Final = "traderbot.dev"
CONFIG_HASH_ANNOTATION: Final = f"{ANNOTATION_PREFIX}/config-hash"

COMPONENT_API: Final = "api"
COMPONENT_DATABASE: Final = "database"
COMPONENT_CACHE: Final = "cache"
COMPONENT_BACKUP: Final = "backup"

DATABASE_PORT: Final = 5432
REDIS_PORT: Final = 6379
DATABASE_NAME: Final = "trader"
DATABASE_USER: Final = "trader"
WORKLOAD_UID: Final = 10001


# A CronJob names its Jobs ``<cronjob>-<minutes since the epoch>`` (8 digits until
# the year 2160), and a backup Job names its TraderBotBackup record, whose name
# is at most RUN_NAME_MAX_LENGTH: so the backup CronJob's name is at most 43.
RUN_NAME_MAX_LENGTH: Final = 52
SCHEDULED_SUFFIX_LENGTH: Final = 9
NAME_HASH_LENGTH: Final = 8


def fit_name(base: str, *, limit: int, suffix: str = "") -> str:
    """Return ``base + suffix`` if it fits ``limit``, else a shortened base, a hash, the suffix.

    NB: the hash is of the whole base, so two long names that share their first
    characters stay distinct, and the same input always gives the same name (a
    restart finds what it made).
    """
    if len(base) + len(suffix) <= limit:
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:NAME_HASH_LENGTH]
    keep = limit - len(suffix) - NAME_HASH_LENGTH - 1
    return f"{base[:keep].rstrip('-.')}-{digest}{suffix}"


class Names:
    """Deterministic child names, so retries and restarts find what they made."""

    def __init__(self, bot_name: str) -> None:
        self.bot = bot_name

    @property
    def api(self) -> str:
        return f"{self.bot}-api"

    @property
    def database(self) -> str:
        return f"{self.bot}-db"

    @property
    def database_headless(self) -> str:
        return f"{self.bot}-db-headless"

    @property
    def redis(self) -> str:
        return f"{self.bot}-redis"

    @property
    def redis_headless(self) -> str:
        return f"{self.bot}-redis-headless"

    @property
    def backup(self) -> str:
        """The backup volume claim (never shortened: a rename would orphan the backups)."""
        return f"{self.bot}-backup"

    @property
    def backup_cronjob(self) -> str:
        """The backup CronJob: short enough that its Jobs' names fit a TraderBotBackup's."""
        return fit_name(f"{self.bot}-backup", limit=RUN_NAME_MAX_LENGTH - SCHEDULED_SUFFIX_LENGTH)

    @property
    def backup_verify(self) -> str:
        """NB: a CronJob name is at most 52 characters; ``<bot>-verify`` fits a 40-character bot."""
        return f"{self.bot}-verify"

    @property
    def database_secret(self) -> str:
        return f"{self.bot}-db-credentials"

    @property
    def redis_secret(self) -> str:
        return f"{self.bot}-redis-credentials"

    @property
    def api_key_secret(self) -> str:
        return f"{self.bot}-api-key"

    @property
    def api_read_key_secret(self) -> str:
        """The read-only API key: generated for every bot, the operator's own to read with."""
        return f"{self.bot}-api-read-key"


def selector_labels(bot: TraderBot, component: str) -> dict[str, str]:
    """Return the labels that select one component's pods.

    NB: selectors are immutable on Deployments and StatefulSets, so these must never
    include anything that changes over a bot's life (such as the version).
    """
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": bot.name,
        "app.kubernetes.io/component": component,
    }


def instance_labels(bot: TraderBot) -> dict[str, str]:
    """Return the labels every child of this bot carries, whatever its component or version."""
    return {"app.kubernetes.io/instance": bot.name, "app.kubernetes.io/managed-by": MANAGED_BY}


def labels(bot: TraderBot, component: str) -> dict[str, str]:
    """Return the standard ``app.kubernetes.io/*`` labels of a child object."""
    return {
        **selector_labels(bot, component),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/version": bot.spec.version,
    }


def stable_pod_labels(bot: TraderBot, component: str) -> dict[str, str]:
    """Return pod-template labels without the version, for the database and Redis.

    NB: any template change restarts a StatefulSet's pod; an upgrade of trader-api
    must not restart the database or Redis under it.
    """
    found = labels(bot, component)
    del found["app.kubernetes.io/version"]
    return found


def owner_reference(bot: TraderBot) -> dict[str, Any]:
    """Return the controller owner reference that lets garbage collection delete children."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": bot.name,
        "uid": bot.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(bot: TraderBot, *, name: str, component: str, owned: bool = True) -> dict[str, Any]:
    """Return child metadata: name, namespace, labels and (unless ``owned`` is false) owner.

    NB: volumes kept on deletion (``deletionPolicy: Retain``) are built with
    ``owned=False`` so garbage collection leaves them alone.
    """
    meta: dict[str, Any] = {
        "name": name,
        "namespace": bot.namespace,
        "labels": labels(bot, component),
        "annotations": {f"{ANNOTATION_PREFIX}/operator-version": __version__},
    }
    # NB: an explicit empty list (not a missing key), so that switching a kept object
    # from Delete to Retain also takes the owner reference away.
    meta["ownerReferences"] = [owner_reference(bot)] if owned else []
    return meta


def restricted_pod_security(*, uid: int, gid: int | None = None) -> dict[str, Any]:
    """Return a pod securityContext meeting the "restricted" Pod Security Standard."""
    group = uid if gid is None else gid
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": group,
        "fsGroup": group,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_container_security(*, read_only_root: bool = True) -> dict[str, Any]:
    """Return a container securityContext meeting the "restricted" Pod Security Standard."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
    }


def resources(requirements: ResourceRequirements) -> dict[str, Any]:
    """Return a container ``resources`` block, leaving out empty maps."""
    block: dict[str, Any] = {}
    if requirements.requests:
        block["requests"] = {key: str(value) for key, value in requirements.requests.items()}
    if requirements.limits:
        block["limits"] = {key: str(value) for key, value in requirements.limits.items()}
    return block


def content_hash(value: Any) -> str:
    """Return a short, stable hash of JSON-able data (dict key order does not matter)."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def secret_env(name: str, *, secret: str, key: str) -> dict[str, Any]:
    """Return an env var read from a Secret key (never a literal value)."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def build_service(
    bot: TraderBot, *, name: str, component: str, port_name: str, port: int, headless: bool
) -> Manifest:
    """Build a Service selecting one component's pods, headless or ClusterIP.

    NB: headless Services publish not-ready addresses so a StatefulSet pod has its
    DNS name while it starts (peers and probes need it before readiness).
    """
    spec: dict[str, Any] = {
        "selector": selector_labels(bot, component),
        "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}],
    }
    if headless:
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True
    else:
        spec["type"] = "ClusterIP"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(bot, name=name, component=component),
        "spec": spec,
    }


def build_statefulset_services(
    bot: TraderBot, *, name: str, headless_name: str, component: str, port_name: str, port: int
) -> list[Manifest]:
    """Build a StatefulSet's headless Service (its pod's stable DNS name) and client Service."""
    return [
        build_service(
            bot,
            name=headless_name,
            component=component,
            port_name=port_name,
            port=port,
            headless=True,
        ),
        build_service(
            bot, name=name, component=component, port_name=port_name, port=port, headless=False
        ),
    ]


def claim_spec(storage: StorageSpec) -> dict[str, Any]:
    """Return a PersistentVolumeClaim spec for ``storage`` (one node reads and writes it)."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name is not None:
        spec["storageClassName"] = storage.storage_class_name
    return spec


def placed_template(
    template: dict[str, Any], placement: PodPlacement, *, selector: dict[str, str]
) -> dict[str, Any]:
    """Return a pod template with ``placement``'s scheduling fields and extra metadata.

    Only what is set is added, so a bot without placement keeps the template (and the
    applied hash) it had. The operator's own labels and annotations win over the extra
    ones (the CRD refuses those keys anyway). A topology spread constraint without a
    labelSelector counts this component's pods (``selector``): one it does not count
    would spread nothing.
    """
    meta = dict(template.get("metadata") or {})
    if placement.labels:
        meta["labels"] = {**placement.labels, **meta.get("labels", {})}
    if placement.annotations:
        meta["annotations"] = {**placement.annotations, **meta.get("annotations", {})}
    pod = dict(template["spec"])
    if placement.node_selector:
        pod["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        pod["tolerations"] = [
            t.model_dump(by_alias=True, exclude_none=True) for t in placement.tolerations
        ]
    if placement.affinity:
        pod["affinity"] = copy.deepcopy(placement.affinity)
    if placement.topology_spread_constraints:
        pod["topologySpreadConstraints"] = [
            {
                "labelSelector": {"matchLabels": dict(selector)},
                **constraint.model_dump(by_alias=True, exclude_none=True),
            }
            for constraint in placement.topology_spread_constraints
        ]
    if placement.priority_class_name is not None:
        pod["priorityClassName"] = placement.priority_class_name
    if placement.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": ref.name} for ref in placement.image_pull_secrets]
    return {**template, "metadata": meta, "spec": pod}
