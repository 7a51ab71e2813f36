"""Prometheus Operator ServiceMonitor for the API's /metrics."""

from __future__ import annotations

from traderbot_operator.desired.common import (
    COMPONENT_API,
    Manifest,
    Names,
    metadata,
    selector_labels,
)
from traderbot_operator.models import TraderBot

SERVICE_MONITOR_API_VERSION = "monitoring.coreos.com/v1"


def build_service_monitor(bot: TraderBot) -> Manifest:
    """Build the ServiceMonitor scraping the API Service (only used when that CRD exists)."""
    return {
        "apiVersion": SERVICE_MONITOR_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": metadata(bot, name=Names(bot.name).api, component=COMPONENT_API),
        "spec": {
            "selector": {"matchLabels": selector_labels(bot, COMPONENT_API)},
            "namespaceSelector": {"matchNames": [bot.namespace]},
            "endpoints": [
                {"port": "http", "path": "/metrics", "interval": bot.spec.monitoring.interval}
            ],
        },
    }
