"""The bot's ServiceMonitor: interval, extra labels for a Prometheus's selector, the bot label."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from traderbot_operator.desired.common import COMPONENT_API, labels
from traderbot_operator.desired.monitoring import BOT_TARGET_LABEL, build_service_monitor
from traderbot_operator.models import TraderBotSpec
from unit.operator.bots import bot


def test_labels_and_interval_land_on_the_service_monitor_beside_the_operators_own() -> None:
    monitor = build_service_monitor(
        bot(
            monitoring={
                "enabled": True,
                "interval": "15s",
                "labels": {"release": "kube-prometheus-stack", "team": "quant"},
            }
        )
    )
    meta_labels = monitor["metadata"]["labels"]
    assert meta_labels["release"] == "kube-prometheus-stack"
    assert meta_labels["team"] == "quant"
    assert labels(bot(), COMPONENT_API).items() <= meta_labels.items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["interval"] == "15s"


def test_without_labels_the_service_monitor_carries_only_the_operators_labels() -> None:
    monitor = build_service_monitor(bot(monitoring={"enabled": True}))
    assert monitor["metadata"]["labels"] == labels(bot(), COMPONENT_API)
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"


def test_every_series_scraped_is_labelled_with_the_bots_name() -> None:
    """The alert rules group trader-api series by (namespace, bot)."""
    monitor = build_service_monitor(bot("gamma", monitoring={"enabled": True}))
    [relabeling] = monitor["spec"]["endpoints"][0]["relabelings"]
    # The Service's instance label is the bot's name (the source label's Kubernetes form).
    assert labels(bot("gamma"), COMPONENT_API)["app.kubernetes.io/instance"] == "gamma"
    assert relabeling == {
        "action": "replace",
        "sourceLabels": ["__meta_kubernetes_service_label_app_kubernetes_io_instance"],
        "targetLabel": BOT_TARGET_LABEL,
    }


@pytest.mark.parametrize(
    "key", ["app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "traderbot.dev/x"]
)
def test_the_operators_label_keys_are_refused(key: str) -> None:
    with pytest.raises(ValidationError, match=f"labels {key} are set by the operator"):
        TraderBotSpec.model_validate({"monitoring": {"labels": {key: "mine"}}})


@pytest.mark.parametrize("labels_", [{"bad key!": "x"}, {"team": "no spaces"}, {"team": "x" * 64}])
def test_malformed_labels_are_refused(labels_: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        TraderBotSpec.model_validate({"monitoring": {"labels": labels_}})


@pytest.mark.parametrize("interval", ["30", "30 s", "1h", "", "30sec"])
def test_an_interval_outside_the_crds_pattern_is_refused(interval: str) -> None:
    with pytest.raises(ValidationError):
        TraderBotSpec.model_validate({"monitoring": {"interval": interval}})
