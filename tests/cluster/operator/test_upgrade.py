"""Upgrades on a real API server: pre-upgrade backup, automatic rollback, then a good version.

A version whose image tag ends in ``-broken`` never gets Ready on the local cluster
(the kwok stage ``traderbot-pod-start-not-ready``, a test-only hook), as a release
whose readiness probe fails would.
"""

from __future__ import annotations

from typing import Any

from lightkube import Client
from lightkube.resources.apps_v1 import Deployment

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_operator import (
    _bot,
    _conditions,
    _create_bot,
    _events_of,
    _get,
    _patch_spec,
    _wait_phase,
    _wait_timer_passes,
)
from support.kube import eventually
from traderbot_operator.desired.backup import PRE_UPGRADE_LABEL
from traderbot_operator.kube import TraderBotBackupResource
from traderbot_operator.models import WORKLOAD_IMAGE

DEADLINE_SECONDS = 15
UPGRADE_TIMEOUT = 90.0


def _api_image(kube: Client, namespace: str, name: str) -> str:
    [container] = _get(kube, Deployment, f"{name}-api", namespace)["spec"]["template"]["spec"][
        "containers"
    ]
    image: str = container["image"]
    return image


def _pre_upgrade_backups(kube: Client, namespace: str) -> list[dict[str, Any]]:
    resource: Any = TraderBotBackupResource  # a generic resource: its to_dict is untyped
    return [
        backup.to_dict()
        for backup in kube.list(resource, namespace=namespace, labels={PRE_UPGRADE_LABEL: "true"})
    ]


def _status_when(
    kube: Client, namespace: str, name: str, *, what: str, check: Any
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status: dict[str, Any] = _bot(kube, namespace, name).get("status") or {}
        return status if check(status) else None

    found: dict[str, Any] = eventually(probe, what=what, timeout=UPGRADE_TIMEOUT)
    return found


def test_a_version_that_never_gets_ready_is_rolled_back_then_a_good_one_rolls_forward(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(
        kube,
        namespace,
        "alpha",
        {"version": "1.0.0", "upgrade": {"progressDeadlineSeconds": DEADLINE_SECONDS}},
    )
    ready = _wait_phase(kube, namespace, "alpha", "Ready")
    assert ready["status"]["version"] == "1.0.0"

    _patch_spec(kube, namespace, "alpha", {"version": "1.1.0-broken"})

    # The backup comes first: the old version keeps running until it completed.
    [backup] = eventually(
        lambda: _pre_upgrade_backups(kube, namespace), what="a pre-upgrade TraderBotBackup"
    )
    assert backup["spec"]["botName"] == "alpha"
    assert _api_image(kube, namespace, "alpha") == f"{WORKLOAD_IMAGE}:1.0.0"
    eventually(
        lambda: (
            _get(kube, TraderBotBackupResource, backup["metadata"]["name"], namespace)
            .get("status", {})
            .get("phase")
            == "Completed"
        ),
        what="the pre-upgrade backup Completed",
        timeout=UPGRADE_TIMEOUT,
    )
    eventually(
        lambda: _api_image(kube, namespace, "alpha") == f"{WORKLOAD_IMAGE}:1.1.0-broken",
        what="the broken version rolling out",
        timeout=UPGRADE_TIMEOUT,
    )

    rolled_back = _status_when(
        kube,
        namespace,
        "alpha",
        what="the upgrade RolledBack",
        check=lambda s: (s.get("upgrade") or {}).get("phase") == "RolledBack",
    )
    assert _api_image(kube, namespace, "alpha") == f"{WORKLOAD_IMAGE}:1.0.0"
    assert rolled_back["upgrade"]["targetVersion"] == "1.1.0-broken"
    assert rolled_back["upgrade"]["fromVersion"] == "1.0.0"
    failed = {c["type"]: c for c in rolled_back["conditions"]}["UpgradeFailed"]
    assert (failed["status"], failed["reason"]) == ("True", "RolledBack")
    assert f"not Ready within {DEADLINE_SECONDS}s" in failed["message"]
    warnings = [e for e in _events_of(kube, namespace, "alpha") if e.get("reason") == "RolledBack"]
    assert [e["type"] for e in warnings] == ["Warning"]

    back = _wait_phase(kube, namespace, "alpha", "Ready")
    assert back["status"]["version"] == "1.0.0"
    assert [(h["version"], h["outcome"]) for h in back["status"]["versionHistory"]] == [
        ("1.0.0", "Installed"),
        ("1.1.0-broken", "RolledBack"),
    ]

    # No loop: the failed version is not tried again while spec.version still names it.
    _wait_timer_passes(operator, 3)
    assert _api_image(kube, namespace, "alpha") == f"{WORKLOAD_IMAGE}:1.0.0"
    assert len(_pre_upgrade_backups(kube, namespace)) == 1
    assert _conditions(_bot(kube, namespace, "alpha"))["UpgradeFailed"]["status"] == "True"

    _patch_spec(kube, namespace, "alpha", {"version": "1.2.0"})
    upgraded = _status_when(
        kube,
        namespace,
        "alpha",
        what="version 1.2.0 running and Ready",
        check=lambda s: s.get("version") == "1.2.0" and s.get("phase") == "Ready",
    )
    assert _api_image(kube, namespace, "alpha") == f"{WORKLOAD_IMAGE}:1.2.0"
    assert "upgrade" not in upgraded
    assert [(h["version"], h["outcome"]) for h in upgraded["versionHistory"]] == [
        ("1.0.0", "Installed"),
        ("1.1.0-broken", "RolledBack"),
        ("1.2.0", "Upgraded"),
    ]
    assert {c["type"]: c for c in upgraded["conditions"]}["UpgradeFailed"]["status"] == "False"
    assert len(_pre_upgrade_backups(kube, namespace)) == 2
    reasons = {e.get("reason") for e in _events_of(kube, namespace, "alpha")}
    assert {"UpgradeStarted", "RolledBack", "Upgraded"} <= reasons


def test_the_longest_bot_name_upgrades_through_its_pre_upgrade_backup(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    """At 40 characters the backup's name (55 before) is shortened to fit 52, not stuck."""
    name = "trading-bot-for-the-european-desk-eth-01"
    _create_bot(kube, namespace, name, {"version": "1.0.0"})
    _wait_phase(kube, namespace, name, "Ready")
    _patch_spec(kube, namespace, name, {"version": "1.2.0"})
    upgraded = _status_when(
        kube,
        namespace,
        name,
        what="version 1.2.0 running and Ready",
        check=lambda s: s.get("version") == "1.2.0" and s.get("phase") == "Ready",
    )
    [backup] = _pre_upgrade_backups(kube, namespace)
    assert len(backup["metadata"]["name"]) <= 52
    assert backup["status"]["phase"] == "Completed"
    assert [(h["version"], h["outcome"]) for h in upgraded["versionHistory"]] == [
        ("1.0.0", "Installed"),
        ("1.2.0", "Upgraded"),
    ]
