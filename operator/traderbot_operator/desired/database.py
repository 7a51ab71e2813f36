"""TimescaleDB: StatefulSet with a volumeClaimTemplate, headless and client Services."""

from __future__ import annotations

from typing import Any

from traderbot_operator.desired.common import (
    COMPONENT_DATABASE,
    DATABASE_NAME,
    DATABASE_PORT,
    Manifest,
    Names,
    build_statefulset_services,
    claim_spec,
    metadata,
    placed_template,
    resources,
    restricted_container_security,
    restricted_pod_security,
    secret_env,
    selector_labels,
    stable_pod_labels,
)
from traderbot_operator.desired.credentials import DATABASE_PASSWORD_KEY, DATABASE_USER_KEY
from traderbot_operator.models import StorageSpec, TraderBot

# NB: the timescaledb image (alpine postgres) runs postgres as UID/GID 70.
POSTGRES_UID = 70
DATA_MOUNT = "/var/lib/postgresql/data"


def volume_claim_template(*, name: str, storage: StorageSpec) -> dict[str, Any]:
    """Return a StatefulSet volumeClaimTemplate for ``storage``."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": claim_spec(storage),
    }


def claim_retention_policy(bot: TraderBot) -> dict[str, str]:
    """Return the StatefulSet PVC retention policy that implements ``deletionPolicy``."""
    when_deleted = "Delete" if bot.spec.deletion_policy == "Delete" else "Retain"
    return {"whenDeleted": when_deleted, "whenScaled": "Retain"}


def build_database_statefulset(bot: TraderBot) -> Manifest:
    """Build the TimescaleDB StatefulSet (one replica, none while hibernating; data on a PVC).

    NB: ``readOnlyRootFilesystem`` is false here: the postgres entrypoint writes to
    /var/run/postgresql and the data dir; everything else of "restricted" holds.
    """
    names = Names(bot.name)
    db = bot.spec.database
    pg_isready = [
        "pg_isready",
        "--host=127.0.0.1",
        f"--port={DATABASE_PORT}",
        f"--dbname={DATABASE_NAME}",
        "--username=$(POSTGRES_USER)",
    ]
    container: dict[str, Any] = {
        "name": "timescaledb",
        "image": db.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "postgres", "containerPort": DATABASE_PORT, "protocol": "TCP"}],
        "env": [
            secret_env("POSTGRES_USER", secret=names.database_secret, key=DATABASE_USER_KEY),
            secret_env(
                "POSTGRES_PASSWORD", secret=names.database_secret, key=DATABASE_PASSWORD_KEY
            ),
            {"name": "POSTGRES_DB", "value": DATABASE_NAME},
            {"name": "PGDATA", "value": f"{DATA_MOUNT}/pgdata"},
            {"name": "TIMESCALEDB_TELEMETRY", "value": "off"},
        ],
        "resources": resources(db.resources),
        "readinessProbe": {
            "exec": {"command": ["sh", "-c", " ".join(pg_isready)]},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "exec": {"command": ["sh", "-c", " ".join(pg_isready)]},
            "initialDelaySeconds": 30,
            "periodSeconds": 15,
            "timeoutSeconds": 5,
            "failureThreshold": 6,
        },
        "securityContext": restricted_container_security(read_only_root=False),
        "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(bot, name=names.database, component=COMPONENT_DATABASE),
        "spec": {
            "replicas": 0 if bot.spec.hibernate else 1,
            "serviceName": names.database_headless,
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": selector_labels(bot, COMPONENT_DATABASE)},
            "updateStrategy": {"type": "RollingUpdate"},
            "persistentVolumeClaimRetentionPolicy": claim_retention_policy(bot),
            "template": placed_template(
                {
                    "metadata": {"labels": stable_pod_labels(bot, COMPONENT_DATABASE)},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "terminationGracePeriodSeconds": 60,
                        "securityContext": restricted_pod_security(uid=POSTGRES_UID),
                        "containers": [container],
                    },
                },
                db.pod,
                selector=selector_labels(bot, COMPONENT_DATABASE),
            ),
            "volumeClaimTemplates": [volume_claim_template(name="data", storage=db.storage)],
        },
    }


def build_database_services(bot: TraderBot) -> list[Manifest]:
    """Build the headless Service of the StatefulSet and the client Service of the API."""
    names = Names(bot.name)
    return build_statefulset_services(
        bot,
        name=names.database,
        headless_name=names.database_headless,
        component=COMPONENT_DATABASE,
        port_name="postgres",
        port=DATABASE_PORT,
    )
