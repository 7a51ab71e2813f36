"""The Argo CD health check of docs/gitops.md, run in a real Lua interpreter.

The Lua is read from the page itself, so what users copy is what is tested.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from lupa import LuaRuntime

from unit.delivery.delivery_tools import REPO_ROOT

GITOPS_PAGE = REPO_ROOT / "docs" / "gitops.md"


def health_check_source(kind: str) -> str:
    """Return the Lua block of docs/gitops.md whose first line names ``kind``."""
    blocks: list[str] = re.findall(r"```lua\n(.*?)```", GITOPS_PAGE.read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if b.startswith(f"-- health of traderbot.dev/{kind}\n")]
    return block


def argo_health(body: dict[str, Any], kind: str = "TraderBot") -> tuple[str, str]:
    """Run a health check the way Argo CD does: ``obj`` global, script body as a function."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(body, recursive=True)
    result = lua.execute(health_check_source(kind))
    return str(result.status), str(result.message)


def bot(
    *,
    phase: str | None,
    generation: int = 3,
    observed: int | None = 3,
    conditions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if observed is not None:
        status["observedGeneration"] = observed
    if conditions is not None:
        status["conditions"] = conditions
    body: dict[str, Any] = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBot",
        "metadata": {"name": "alpha", "namespace": "trading", "generation": generation},
        "spec": {},
    }
    if status:
        body["status"] = status
    return body


READY = {"type": "Ready", "status": "True", "reason": "AllComponentsReady", "message": "all good"}
NOT_READY = {
    "type": "Ready",
    "status": "False",
    "reason": "ComponentsNotReady",
    "message": "not ready: database (alpha-db: 0/1 ready)",
}
INVALID = {
    "type": "Reconciled",
    "status": "False",
    "reason": "InvalidSpec",
    "message": "spec.api.apiKeySecretRef: Secret missing does not exist",
}


def test_a_new_bot_without_status_is_progressing() -> None:
    assert argo_health(bot(phase=None, observed=None)) == (
        "Progressing",
        "Waiting for the operator to report status",
    )


def test_a_spec_change_not_yet_seen_by_the_operator_is_progressing_even_if_ready() -> None:
    status, message = argo_health(bot(phase="Ready", generation=4, observed=3, conditions=[READY]))
    assert status == "Progressing"
    assert "generation 4" in message


def test_old_status_without_observed_generation_is_not_trusted() -> None:
    status, _ = argo_health(bot(phase="Ready", observed=None, conditions=[READY]))
    assert status == "Progressing"


@pytest.mark.parametrize(
    ("phase", "conditions", "expected"),
    [
        ("Ready", [READY], ("Healthy", "all good")),
        ("Pending", [], ("Progressing", "Pending")),
        ("Progressing", [NOT_READY], ("Progressing", NOT_READY["message"])),
        ("Paused", [], ("Suspended", "Paused")),
        ("Hibernated", [], ("Suspended", "Hibernated")),
        ("Degraded", [NOT_READY], ("Degraded", NOT_READY["message"])),
        ("Failed", [NOT_READY, INVALID], ("Degraded", INVALID["message"])),
        ("SomethingNew", [], ("Unknown", "SomethingNew")),
    ],
)
def test_each_phase_maps_to_the_documented_argo_health(
    phase: str, conditions: list[dict[str, str]], expected: tuple[str, str]
) -> None:
    assert argo_health(bot(phase=phase, conditions=conditions)) == expected


ROLLED_BACK = {
    "type": "UpgradeFailed",
    "status": "True",
    "reason": "RolledBack",
    "message": "0.2.0 was not Ready within 300s; rolled back to 0.1.0",
}
UPGRADE_OK = {"type": "UpgradeFailed", "status": "False", "reason": "NoFailure", "message": ""}


def test_a_rolled_back_upgrade_is_degraded_although_the_old_pods_are_ready() -> None:
    assert argo_health(bot(phase="Ready", conditions=[READY, ROLLED_BACK])) == (
        "Degraded",
        ROLLED_BACK["message"],
    )


def test_a_false_upgrade_failed_condition_changes_nothing() -> None:
    assert argo_health(bot(phase="Ready", conditions=[READY, UPGRADE_OK])) == (
        "Healthy",
        "all good",
    )


def test_the_lua_handles_every_phase_the_crd_allows() -> None:
    crd_text = (REPO_ROOT / "crds" / "traderbot.dev_traderbots.yaml").read_text()
    (phases,) = re.findall(r"enum: \[(Pending[^\]]*)\]", crd_text)
    for phase in (p.strip() for p in phases.split(",")):
        status, _ = argo_health(bot(phase=phase, conditions=[READY]))
        assert status != "Unknown", phase


def backup(status: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotBackup",
        "metadata": {"name": "alpha-pre-sync", "namespace": "trading", "generation": 1},
        "spec": {"botName": "alpha"},
    }
    if status is not None:
        body["status"] = status
    return body


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, ("Progressing", "Waiting for the operator to start the backup")),
        ({"phase": "Pending"}, ("Progressing", "Backup Pending")),
        ({"phase": "Running"}, ("Progressing", "Backup Running")),
        (
            {"phase": "Completed", "location": "/backups/alpha/20250128T030000Z"},
            ("Healthy", "Backup written to /backups/alpha/20250128T030000Z"),
        ),
        (
            {"phase": "Failed", "error": "pg_dump: connection refused"},
            ("Degraded", "pg_dump: connection refused"),
        ),
        ({"phase": "Failed"}, ("Degraded", "Backup failed")),
    ],
)
def test_backup_health_follows_its_phase(
    status: dict[str, Any] | None, expected: tuple[str, str]
) -> None:
    assert argo_health(backup(status), kind="TraderBotBackup") == expected


def test_the_backup_lua_handles_every_phase_the_crd_allows() -> None:
    crd_text = (REPO_ROOT / "crds" / "traderbot.dev_traderbotbackups.yaml").read_text()
    (phases,) = re.findall(r"enum: \[(Pending[^\]]*)\]", crd_text)
    for phase in (p.strip() for p in phases.split(",")):
        status, message = argo_health(backup({"phase": phase}), kind="TraderBotBackup")
        assert status in {"Progressing", "Healthy", "Degraded"}, phase
        assert message
