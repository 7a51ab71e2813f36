"""Prometheus Operator ServiceMonitor for the API's /metrics."""

from __future__ import annotations

from typing import Any, Final

from traderbot_operator.desired.common import (
    COMPONENT_API,
    Manifest,
    Names,
    metadata,
    selector_labels,
)
from traderbot_operator.models import TraderBot

SERVICE_MONITOR_API_VERSION = "monitoring.coreos.com/v1"
# The target label that names the bot on every trader-api series; the chart's alert
# rules and dashboard group by (namespace, bot), as the operator's own series do.
BOT_TARGET_LABEL: Final = "bot"


def build_service_monitor(bot: TraderBot) -> Manifest:
    """Build the ServiceMonitor scraping the API Service (only used when that CRD exists).

    NB: the user's ``spec.monitoring.labels`` come first so the operator's own labels
    win; the models and the CRD refuse those keys anyway.
    """
    meta = metadata(bot, name=Names(bot.name).api, component=COMPONENT_API)
    meta["labels"] = {**(bot.spec.monitoring.labels or {}), **meta["labels"]}
    endpoint: dict[str, Any] = {
        "port": "http",
        "path": "/metrics",
        "interval": bot.spec.monitoring.interval,
        # The Service's instance label is the bot's name: Prometheus copies it onto
        # every series as `bot`, so alerts say which bot without a join.
        "relabelings": [
            {
                "action": "replace",
                "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_instance"],
                "targetLabel": BOT_TARGET_LABEL,
            }
        ],
    }
    return {
        "apiVersion": SERVICE_MONITOR_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": selector_labels(bot, COMPONENT_API)},
            "namespaceSelector": {"matchNames": [bot.namespace]},
            "endpoints": [endpoint],
        },
    }
