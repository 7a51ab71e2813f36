"""NetworkPolicies: who may reach each component, and where the API pods may connect.

The database and Redis accept traffic only from this bot's API and backup pods; the
API pods accept connections on their port (from anywhere unless the spec lists
clients) and connect only to this bot's database and Redis, DNS, and, in live mode,
an exchange over HTTPS.
"""

from __future__ import annotations

from typing import Any, Final

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

DNS_PORT: Final = 53
HTTPS_PORT: Final = 443


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


def _to_component(bot: TraderBot, *, component: str, port: int) -> dict[str, Any]:
    return {
        "to": [{"podSelector": {"matchLabels": selector_labels(bot, component)}}],
        "ports": [{"protocol": "TCP", "port": port}],
    }


def build_api_network_policy(bot: TraderBot) -> Manifest:
    """Build the policy of the API pods: who may connect to them, and where they may connect.

    NB: DNS is allowed to any destination on port 53, not only to kube-dns pods: the
    DNS pods' labels differ between distributions and node-local caches listen on a
    link-local address no pod selector matches. /metrics is served on the API port, so
    a spec that lists allowed clients must list the scraper too.
    """
    ingress: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": bot.spec.api.port}]}
    if bot.spec.api.allowed_clients:
        ingress["from"] = [
            peer.model_dump(by_alias=True, exclude_none=True)
            for peer in bot.spec.api.allowed_clients
        ]
    egress = [
        _to_component(bot, component=COMPONENT_DATABASE, port=DATABASE_PORT),
        _to_component(bot, component=COMPONENT_CACHE, port=REDIS_PORT),
        {
            "ports": [
                {"protocol": "UDP", "port": DNS_PORT},
                {"protocol": "TCP", "port": DNS_PORT},
            ]
        },
    ]
    if bot.spec.mode == "live":
        # The exchange is on the internet; paper mode trades in-process and needs none.
        egress.append({"ports": [{"protocol": "TCP", "port": HTTPS_PORT}]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(bot, name=Names(bot.name).api, component=COMPONENT_API),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(bot, COMPONENT_API)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [ingress],
            "egress": egress,
        },
    }
