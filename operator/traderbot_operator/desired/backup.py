"""Scheduled backups: a CronJob running ``trader-backup`` and the volume it writes to."""

from __future__ import annotations

from typing import Any

from traderbot_operator.desired.api import image
from traderbot_operator.desired.common import (
    COMPONENT_BACKUP,
    WORKLOAD_UID,
    Manifest,
    Names,
    claim_spec,
    labels,
    metadata,
    owner_reference,
    placed_template,
    restricted_container_security,
    restricted_pod_security,
    selector_labels,
)
from traderbot_operator.desired.credentials import connection_env
from traderbot_operator.desired.redis import REDIS_UID
from traderbot_operator.models import (
    API_VERSION,
    BACKUP_KIND,
    RESTORE_KIND,
    BackupRun,
    RestoreRun,
    TraderBot,
)

BACKUP_MOUNT = "/backups"
STARTING_DEADLINE_SECONDS = 3600
ACTIVE_DEADLINE_SECONDS = 3 * 3600


def backup_env(bot: TraderBot) -> list[dict[str, Any]]:
    """Return the env of ``trader-backup`` (documented in docs/operator.md)."""
    spec = bot.spec.backup
    return [
        {"name": "BOT_NAME", "value": bot.name},
        {"name": "BACKUP_DIR", "value": BACKUP_MOUNT},
        {"name": "BACKUP_RETENTION_DAYS", "value": str(spec.retention_days)},
        {"name": "BACKUP_INCLUDE_REDIS", "value": "true" if spec.include_redis else "false"},
        *connection_env(bot),
        # The engine's retention settings, reported in the maintenance part of the result.
        {"name": "KLINES_RETENTION_DAYS", "value": str(bot.spec.database.klines_retention_days)},
        {"name": "KLINES_COMPRESS_AFTER_DAYS", "value": str(bot.spec.database.compress_after_days)},
    ]


def build_backup_pvc(bot: TraderBot) -> Manifest:
    """Build the backup volume claim.

    NB: owner-referenced only with ``deletionPolicy: Delete``; with Retain it outlives
    the TraderBot, so deleting the bot by mistake keeps every backup.
    """
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(
            bot,
            name=Names(bot.name).backup,
            component=COMPONENT_BACKUP,
            owned=bot.spec.deletion_policy == "Delete",
        ),
        "spec": claim_spec(bot.spec.backup.storage),
    }


BACKUP_RUN_LABEL = "traderbot.dev/backup"
# On the TraderBotBackup record the operator makes for each scheduled run.
SCHEDULED_LABEL = "traderbot.dev/scheduled"
# On the TraderBotBackup taken before an upgrade (and on its Job's pods).
PRE_UPGRADE_LABEL = "traderbot.dev/pre-upgrade"
JOB_HISTORY_SECONDS = 7 * 24 * 3600


def _own_labels(labels_: dict[str, str]) -> dict[str, str]:
    """Return a resource's labels that may be copied to its pod (not app.kubernetes.io/*)."""
    return {k: v for k, v in labels_.items() if not k.startswith("app.kubernetes.io/")}


def _backup_job_spec(
    bot: TraderBot,
    *,
    env: list[dict[str, Any]],
    pod_labels: dict[str, str],
    args: list[str] | None = None,
) -> dict[str, Any]:
    """Return the Job spec that runs ``trader-backup`` once (CronJob, on demand, restore).

    NB: every backup pod gets ``spec.backup.pod`` (placement, extra labels and annotations).
    """
    names = Names(bot.name)
    container: dict[str, Any] = {
        "name": "backup",
        "image": image(bot),
        "imagePullPolicy": "IfNotPresent",
        "command": ["trader-backup"],
        "args": args or [],
        "env": env,
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {"name": "backups", "mountPath": BACKUP_MOUNT},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
        ],
        # NB: the one-line JSON result reaches the operator as the termination message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "backoffLimit": 1,
        "activeDeadlineSeconds": ACTIVE_DEADLINE_SECONDS,
        "template": placed_template(
            {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": restricted_pod_security(uid=WORKLOAD_UID),
                    "containers": [container],
                    "volumes": [
                        {"name": "backups", "persistentVolumeClaim": {"claimName": names.backup}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
            bot.spec.backup.pod,
            selector=selector_labels(bot, COMPONENT_BACKUP),
        ),
    }


def build_backup_cronjob(bot: TraderBot, *, held: bool = False) -> Manifest:
    """Build the backup CronJob: one run at a time, never piling up after an outage.

    NB: suspended while a restore ``held`` the bot: a backup taken then would record
    a half-restored database as the newest backup (which retention always keeps);
    and while the bot hibernates (no database to back up).
    """
    spec = bot.spec.backup
    job_labels = labels(bot, COMPONENT_BACKUP)
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(bot, name=Names(bot.name).backup_cronjob, component=COMPONENT_BACKUP),
        "spec": {
            "schedule": spec.schedule,
            "timeZone": spec.time_zone,
            "suspend": spec.suspend or held or bot.spec.hibernate,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": job_labels},
                "spec": _backup_job_spec(bot, env=backup_env(bot), pod_labels=job_labels),
            },
        },
    }


VERIFY_JOB_HISTORY = 3


def build_verify_cronjob(bot: TraderBot, *, held: bool = False) -> Manifest:
    """Build the CronJob that verifies the newest backup on a schedule (weekly by default).

    NB: ``trader-backup verify`` restores the newest successful backup into a scratch
    database and compares row counts and checksums with its manifest: a backup that
    cannot be restored is found on a quiet Sunday, not during an incident. Its pods
    are labelled as backup pods, so the NetworkPolicies let them reach the database.
    Suspended like the backup CronJob while a restore ``held`` the bot.
    """
    spec = bot.spec.backup
    job_labels = labels(bot, COMPONENT_BACKUP)
    job_spec = _backup_job_spec(bot, env=backup_env(bot), pod_labels=job_labels, args=["verify"])
    job_spec["backoffLimit"] = 0  # a failed verification is a finding, not a flake to retry
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(bot, name=Names(bot.name).backup_verify, component=COMPONENT_BACKUP),
        "spec": {
            "schedule": spec.verify.schedule,
            "timeZone": spec.time_zone,
            "suspend": spec.suspend or held or bot.spec.hibernate,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
            "successfulJobsHistoryLimit": VERIFY_JOB_HISTORY,
            "failedJobsHistoryLimit": VERIFY_JOB_HISTORY,
            "jobTemplate": {"metadata": {"labels": job_labels}, "spec": job_spec},
        },
    }


def _job_of_run(
    run: BackupRun | RestoreRun, *, kind: str, job_labels: dict[str, str], spec: dict[str, Any]
) -> Manifest:
    """Wrap a Job spec into the Job of one run, named after it and controlled by it.

    NB: kept 7 days after it finishes (``ttlSecondsAfterFinished``); the run's record
    keeps the outcome after that.
    """
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": run.name,
            "namespace": run.namespace,
            "labels": job_labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": kind,
                    "name": run.name,
                    "uid": run.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {**spec, "ttlSecondsAfterFinished": JOB_HISTORY_SECONDS},
    }


def build_backup_job(bot: TraderBot, *, run: BackupRun) -> Manifest:
    """Build the Job of an on-demand TraderBotBackup, owned by that TraderBotBackup.

    NB: the run's own labels (other than app.kubernetes.io/*) are copied to the pod,
    so a TraderBotBackup can carry scheduling or cost-allocation labels to it.
    """
    job_labels = {**labels(bot, COMPONENT_BACKUP), BACKUP_RUN_LABEL: run.name}
    pod_labels = {**_own_labels(run.labels), **job_labels}
    extra_env: list[dict[str, Any]] = [
        {"name": "BACKUP_INCLUDE_REDIS", "value": "true" if run.spec.redis else "false"},
        {"name": "BACKUP_INCLUDE_DATABASE", "value": "true" if run.spec.database else "false"},
    ]
    if run.spec.tables:
        extra_env.append({"name": "BACKUP_TABLES", "value": ",".join(run.spec.tables)})
    overridden = {entry["name"] for entry in extra_env}
    env = [entry for entry in backup_env(bot) if entry["name"] not in overridden] + extra_env
    spec = _backup_job_spec(bot, env=env, pod_labels=pod_labels, args=import_args(run))
    return _job_of_run(run, kind=BACKUP_KIND, job_labels=job_labels, spec=spec)


def import_args(run: BackupRun) -> list[str] | None:
    """Return ``trader-backup import``'s arguments for a run with ``spec.importFrom``.

    NB: the paths are relative to the backup volume and the model's pattern keeps
    them inside it (no absolute path, no ``..``); the import writes a backup folder
    there like any run, and its result line is what the record's status shows.
    """
    source = run.spec.import_from
    if source is None:
        return None
    args = ["import"]
    if source.sql_gz is not None:
        args += ["--sql-gz", f"{BACKUP_MOUNT}/{source.sql_gz}"]
    if source.redis_rdb is not None:
        args += ["--redis-rdb", f"{BACKUP_MOUNT}/{source.redis_rdb}"]
    return args


def build_backup_record(bot: TraderBot, *, name: str, label: str) -> Manifest:
    """Build a TraderBotBackup the operator makes for a bot, marked with ``label``.

    For the record of a scheduled run and for the backup taken before an upgrade.
    NB: owned (not controlled) by the bot only with ``deletionPolicy: Delete``. With
    Retain the backup volume outlives the bot, and so must the records naming its
    backups: a bot re-created under the same name can then restore them.
    """
    owners = (
        [{**owner_reference(bot), "controller": False}]
        if bot.spec.deletion_policy == "Delete"
        else []
    )
    return {
        "apiVersion": API_VERSION,
        "kind": BACKUP_KIND,
        "metadata": {
            "name": name,
            "namespace": bot.namespace,
            "labels": {**labels(bot, COMPONENT_BACKUP), label: "true"},
            "ownerReferences": owners,
        },
        "spec": {"botName": bot.name, "database": True, "redis": bot.spec.backup.include_redis},
    }


RESTORE_RUN_LABEL = "traderbot.dev/restore"
REDIS_DATA_MOUNT = "/redis-data"


def redis_data_claim(bot: TraderBot) -> str:
    """Return the name of the Redis StatefulSet's data claim (of its only pod).

    NB: the StatefulSet controller names claims ``<template>-<statefulset>-<ordinal>``;
    the template is ``data`` (``desired/redis.py``, checked by a unit test).
    """
    return f"data-{Names(bot.name).redis}-0"


def build_restore_job(bot: TraderBot, *, restore: RestoreRun, location: str) -> Manifest:
    """Build the Job that runs ``trader-backup restore``, owned by its TraderBotRestore.

    NB: the pod is labelled as a backup pod, so the NetworkPolicies let it reach the
    database and Redis; it is never retried (``backoffLimit: 0``): a restore that
    failed half-way must be looked at, not repeated. A Redis restore mounts Redis's
    data claim (free: Redis is at zero replicas by then) and runs as Redis's own
    user, so what it writes there is Redis's to open and rewrite. fsGroup alone
    does not do it: volumes without ownership management (hostPath, kind's
    local-path) ignore it, and Redis then failed to open its AOF (seen on a real
    node). No fsGroup either: it would re-own the whole backup volume, which this
    pod only reads (trader-backup writes its files 0644).
    """
    job_labels = {**labels(bot, COMPONENT_BACKUP), RESTORE_RUN_LABEL: restore.name}
    pod_labels = {**_own_labels(restore.labels), **job_labels}
    env = backup_env(bot)
    if restore.spec.what != "database":
        # NB: redis_args() runs Redis with --appendonly yes whenever persistence is on.
        appendonly = "true" if bot.spec.redis.persistence else "false"
        env += [
            {"name": "REDIS_DATA_DIR", "value": REDIS_DATA_MOUNT},
            {"name": "REDIS_APPENDONLY", "value": appendonly},
        ]
    spec = _backup_job_spec(
        bot,
        env=env,
        pod_labels=pod_labels,
        args=["restore", location, "--what", restore.spec.what],
    )
    if restore.spec.what != "database":
        pod = spec["template"]["spec"]
        pod["volumes"].append(
            {"name": "redis-data", "persistentVolumeClaim": {"claimName": redis_data_claim(bot)}}
        )
        pod["containers"][0]["volumeMounts"].append(
            {"name": "redis-data", "mountPath": REDIS_DATA_MOUNT}
        )
        security = restricted_pod_security(uid=REDIS_UID)
        for key in ("fsGroup", "fsGroupChangePolicy"):
            del security[key]
        pod["securityContext"] = security
    spec["backoffLimit"] = 0
    return _job_of_run(restore, kind=RESTORE_KIND, job_labels=job_labels, spec=spec)
