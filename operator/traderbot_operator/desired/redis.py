"""Redis: StatefulSet with password auth, persistence per spec, headless and client Services."""

from __future__ import annotations

from typing import Any

from traderbot_operator.desired.common import (
    COMPONENT_CACHE,
    REDIS_PORT,
    Manifest,
    Names,
    build_statefulset_services,
    metadata,
    placed_template,
    resources,
    restricted_container_security,
    restricted_pod_security,
    secret_env,
    selector_labels,
    stable_pod_labels,
)
from traderbot_operator.desired.credentials import REDIS_PASSWORD_KEY
from traderbot_operator.desired.database import claim_retention_policy, volume_claim_template
from traderbot_operator.models import TraderBot

# NB: the redis alpine image runs redis as UID/GID 999.
REDIS_UID = 999


def redis_args(bot: TraderBot) -> list[str]:
    """Return redis-server's arguments: auth always, persistence per spec.

    NB: ``$(REDIS_PASSWORD)`` is expanded by the kubelet from the Secret-backed env
    var; the manifest never holds the password.
    """
    args = ["--port", str(REDIS_PORT), "--requirepass", "$(REDIS_PASSWORD)", "--dir", "/data"]
    if bot.spec.redis.persistence:
        args += ["--appendonly", "yes", "--save", "900 1 300 10 60 10000"]
    else:
        args += ["--appendonly", "no", "--save", ""]
    return args


def build_redis_statefulset(bot: TraderBot, *, stopped: bool = False) -> Manifest:
    """Build the Redis StatefulSet: one replica, none while hibernating or held by a restore."""
    names = Names(bot.name)
    spec_redis = bot.spec.redis
    ping = {"exec": {"command": ["sh", "-c", "redis-cli -p 6379 ping | grep -q PONG"]}}
    container: dict[str, Any] = {
        "name": "redis",
        "image": spec_redis.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["redis-server"],
        "args": redis_args(bot),
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "env": [
            secret_env("REDIS_PASSWORD", secret=names.redis_secret, key=REDIS_PASSWORD_KEY),
            # redis-cli reads the password from here, so the probes need no argument.
            secret_env("REDISCLI_AUTH", secret=names.redis_secret, key=REDIS_PASSWORD_KEY),
        ],
        "resources": resources(spec_redis.resources),
        "readinessProbe": {**ping, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {
            **ping,
            "initialDelaySeconds": 15,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 6,
        },
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": restricted_pod_security(uid=REDIS_UID),
        "containers": [container],
    }
    sts_spec: dict[str, Any] = {
        "replicas": 0 if stopped or bot.spec.hibernate else 1,
        "serviceName": names.redis_headless,
        "selector": {"matchLabels": selector_labels(bot, COMPONENT_CACHE)},
        "updateStrategy": {"type": "RollingUpdate"},
    }
    if spec_redis.persistence:
        sts_spec["persistentVolumeClaimRetentionPolicy"] = claim_retention_policy(bot)
        sts_spec["volumeClaimTemplates"] = [
            volume_claim_template(name="data", storage=spec_redis.storage)
        ]
    else:
        pod_spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    sts_spec["template"] = placed_template(
        {"metadata": {"labels": stable_pod_labels(bot, COMPONENT_CACHE)}, "spec": pod_spec},
        spec_redis.pod,
        selector=selector_labels(bot, COMPONENT_CACHE),
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(bot, name=names.redis, component=COMPONENT_CACHE),
        "spec": sts_spec,
    }


def build_redis_services(bot: TraderBot) -> list[Manifest]:
    """Build the headless Service of the StatefulSet and the client Service of the API."""
    names = Names(bot.name)
    return build_statefulset_services(
        bot,
        name=names.redis,
        headless_name=names.redis_headless,
        component=COMPONENT_CACHE,
        port_name="redis",
        port=REDIS_PORT,
    )
