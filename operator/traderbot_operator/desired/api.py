"""The trader-api Deployment, its Service and PodDisruptionBudget."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from traderbot_operator.desired.common import (
    COMPONENT_API,
    CONFIG_HASH_ANNOTATION,
    WORKLOAD_UID,
    Manifest,
    Names,
    build_service,
    content_hash,
    labels,
    metadata,
    placed_template,
    resources,
    restricted_container_security,
    restricted_pod_security,
    secret_env,
    selector_labels,
)
from traderbot_operator.desired.credentials import (
    READ_API_KEY_KEY,
    api_key_ref,
    connection_env,
)
from traderbot_operator.models import TraderBot

TERMINATION_GRACE_SECONDS = 30
PRE_STOP_SLEEP_SECONDS = 5
EXCHANGE_KEY_KEY = "api-key"
EXCHANGE_SECRET_KEY = "api-secret"  # noqa: S105 - the key's name, not a secret


def image(bot: TraderBot) -> str:
    """Return the workload image reference: repository and version tag."""
    return f"{bot.spec.image}:{bot.spec.version}"


def _number(value: float) -> str:
    """Format a limit without a spurious ``.0`` (10000.0 -> "10000")."""
    return str(int(value)) if float(value).is_integer() else repr(value)


RUST_LOG = "RUST_LOG"


def extra_env(bot: TraderBot) -> list[dict[str, Any]]:
    """Return ``spec.api.env``: the extra variables, with literal values, in spec order."""
    return [{"name": e.name, "value": e.value} for e in bot.spec.api.env or ()]


def api_env(bot: TraderBot) -> list[dict[str, Any]]:
    """Return the env of trader-api: the docs/configuration.md contract, then ``spec.api.env``.

    NB: every credential comes from a ``secretKeyRef``; no value here is secret. A
    ``RUST_LOG`` among the extras (the seed's directives, ``debug,trader_api=trace``)
    takes the place of ``LOG_LEVEL``: trader-api reads RUST_LOG only when LOG_LEVEL
    is unset.
    """
    spec = bot.spec
    key_secret, key_key = api_key_ref(bot)
    extras = extra_env(bot)
    directives = any(e["name"].upper() == RUST_LOG for e in extras)
    level = [] if directives else [{"name": "LOG_LEVEL", "value": spec.api.log_level}]
    env: list[dict[str, Any]] = [
        {"name": "PORT", "value": str(spec.api.port)},
        *level,
        {"name": "TRADING_MODE", "value": spec.mode},
        {"name": "EXCHANGE", "value": spec.engine.exchange.name},
        secret_env("API_KEY", secret=key_secret, key=key_key),
        secret_env(
            "READ_API_KEY", secret=Names(bot.name).api_read_key_secret, key=READ_API_KEY_KEY
        ),
        *connection_env(bot),
    ]
    if spec.engine.strategies is not None:
        strategies = [s.model_dump(mode="json") for s in spec.engine.strategies]
        env.append({"name": "STRATEGIES", "value": json.dumps(strategies, sort_keys=True)})
    risk = spec.engine.risk
    env += [
        {"name": "RISK_MAX_ORDER_NOTIONAL", "value": _number(risk.max_order_notional)},
        {"name": "RISK_MAX_POSITION_NOTIONAL", "value": _number(risk.max_position_notional)},
        {"name": "RISK_MAX_OPEN_ORDERS", "value": str(risk.max_open_orders)},
        {"name": "RISK_DAILY_LOSS_LIMIT", "value": _number(risk.daily_loss_limit)},
        {"name": "RATE_LIMIT_PER_SECOND", "value": str(spec.api.rate_limit.per_second)},
        {"name": "RATE_LIMIT_BURST", "value": str(spec.api.rate_limit.burst)},
        {"name": "KLINES_RETENTION_DAYS", "value": str(spec.database.klines_retention_days)},
        {"name": "KLINES_COMPRESS_AFTER_DAYS", "value": str(spec.database.compress_after_days)},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    credentials = spec.engine.exchange.credentials_secret_ref
    if spec.mode == "live" and credentials is not None:
        env += [
            secret_env("EXCHANGE_API_KEY", secret=credentials.name, key=EXCHANGE_KEY_KEY),
            secret_env("EXCHANGE_API_SECRET", secret=credentials.name, key=EXCHANGE_SECRET_KEY),
        ]
    return env + extras


def api_secret_names(bot: TraderBot) -> list[str]:
    """Return the names of the Secrets the API pods read (from their env), in env order."""
    names = [
        env["valueFrom"]["secretKeyRef"]["name"]
        for env in api_env(bot)
        if "secretKeyRef" in env.get("valueFrom", {})
    ]
    return list(dict.fromkeys(names))


def config_hash(bot: TraderBot, *, secret_digests: Mapping[str, str] | None = None) -> str:
    """Return the hash of everything the API pods read at start.

    NB: it sits in a pod-template annotation, so any config change rolls the pods,
    as the seed's "recreate the API after an env change"; replicas are left out so
    scaling does not restart anything. ``secret_digests`` (Secret name -> content
    hash) makes a rotated API key (or any Secret the pods read) roll them too.
    """
    config: dict[str, Any] = {"env": api_env(bot), "image": image(bot)}
    if secret_digests:
        config["secrets"] = dict(secret_digests)
    return content_hash(config)


def scrape_annotations(bot: TraderBot) -> dict[str, str]:
    """Return the prometheus.io annotations used when no ServiceMonitor CRD exists."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(bot.spec.api.port),
        "prometheus.io/path": "/metrics",
    }


def build_api_deployment(
    bot: TraderBot,
    *,
    scrape_annotated: bool = False,
    secret_digests: Mapping[str, str] | None = None,
) -> Manifest:
    """Build the trader-api Deployment.

    ``scrape_annotated`` adds prometheus.io annotations (monitoring enabled and no
    ServiceMonitor CRD in the cluster); ``secret_digests`` go into the config hash.
    """
    spec = bot.spec
    port = spec.api.port
    template_annotations = {CONFIG_HASH_ANNOTATION: config_hash(bot, secret_digests=secret_digests)}
    if scrape_annotated:
        template_annotations.update(scrape_annotations(bot))
    http_get = {"port": "http", "scheme": "HTTP"}
    container: dict[str, Any] = {
        "name": "trader-api",
        "image": image(bot),
        "imagePullPolicy": "IfNotPresent",
        "command": ["trader-api"],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": api_env(bot),
        "resources": resources(spec.api.resources),
        "startupProbe": {
            "httpGet": {**http_get, "path": "/health"},
            "periodSeconds": 2,
            "failureThreshold": 60,
            "timeoutSeconds": 2,
        },
        "livenessProbe": {
            "httpGet": {**http_get, "path": "/health"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 2,
        },
        "readinessProbe": {
            "httpGet": {**http_get, "path": "/health/ready"},
            "periodSeconds": 5,
            "failureThreshold": 2,
            "timeoutSeconds": 2,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(bot, name=Names(bot.name).api, component=COMPONENT_API),
        "spec": {
            "replicas": 0 if spec.hibernate else spec.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector_labels(bot, COMPONENT_API)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": placed_template(
                {
                    "metadata": {
                        "labels": labels(bot, COMPONENT_API),
                        "annotations": template_annotations,
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                        "securityContext": restricted_pod_security(uid=WORKLOAD_UID),
                        "containers": [container],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                    },
                },
                spec.api.pod,
                selector=selector_labels(bot, COMPONENT_API),
            ),
        },
    }


def build_api_service(bot: TraderBot) -> Manifest:
    """Build the ClusterIP Service in front of the API pods."""
    return build_service(
        bot,
        name=Names(bot.name).api,
        component=COMPONENT_API,
        port_name="http",
        port=bot.spec.api.port,
        headless=False,
    )


def build_api_pdb(bot: TraderBot) -> Manifest:
    """Build the PodDisruptionBudget: voluntary evictions take one API pod at a time.

    NB: ``maxUnavailable: 1`` rather than ``minAvailable: 1``; with one replica the
    latter would block every node drain forever.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(bot, name=Names(bot.name).api, component=COMPONENT_API),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(bot, COMPONENT_API)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def api_url(bot: TraderBot) -> str:
    """Return the in-cluster URL of the API Service."""
    return f"http://{Names(bot.name).api}.{bot.namespace}.svc:{bot.spec.api.port}"
