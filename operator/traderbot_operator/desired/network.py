"""NetworkPolicies: the database and Redis accept traffic only from this bot's API and backups."""

from __future__ import annotations

from traderbot_operator.desired.common import (
    APP_NAME,
    COMPONENT_API,
    COMPONENT_BACKUP,
    COMPONENT_CACHE,
    COMPONENT_DATABASE,
    DATABASE_PORT,
    REDIS_PORT,
    Manifest,
    Names,
    metadata,
    selector_labels,
)
from traderbot_operator.models import TraderBot


def _ingress_only_from_clients(bot: TraderBot, *, name: str, component: str, port: int) -> Manifest:
    client_selector = {
        "matchLabels": {
            "app.kubernetes.io/name": APP_NAME,
            "app.kubernetes.io/instance": bot.name,
        },
        "matchExpressions": [
            {
                "key": "app.kubernetes.io/component",
                "operator": "In",
                "values": [COMPONENT_API, COMPONENT_BACKUP],
            }
        ],
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(bot, name=name, component=component),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(bot, component)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": client_selector}],
                    "ports": [{"protocol": "TCP", "port": port}],
                }
            ],
        },
    }


def build_database_network_policy(bot: TraderBot) -> Manifest:
    """Build the policy letting only this bot's API and backup pods reach PostgreSQL."""
    return _ingress_only_from_clients(
        bot, name=Names(bot.name).database, component=COMPONENT_DATABASE, port=DATABASE_PORT
    )


def build_redis_network_policy(bot: TraderBot) -> Manifest:
    """Build the policy letting only this bot's API and backup pods reach Redis."""
    return _ingress_only_from_clients(
        bot, name=Names(bot.name).redis, component=COMPONENT_CACHE, port=REDIS_PORT
    )
