"""spec.hibernate: everything scaled to zero and the schedules suspended, data kept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from traderbot_operator.desired import build_children
from traderbot_operator.models import (
    BackupRun,
    BackupRunSpec,
    RestoreRun,
    RestoreRunSpec,
    TraderBot,
    TraderBotStatus,
)
from traderbot_operator.reconcile import HIBERNATED_MESSAGE, ObjectKey, Outcome, compute_status
from traderbot_operator.runs import backup_run_problem, restore_refusal
from unit.operator.bots import bot
from unit.operator.test_reconcile import _running

NOW = datetime(2026, 1, 28, 10, 30, tzinfo=UTC)


def _by_name(model: TraderBot) -> dict[str, dict[str, Any]]:
    return {
        f"{c['kind']}/{c['metadata']['name']}": c
        for c in build_children(model, token=lambda n: "x" * n)
    }


def test_hibernation_scales_everything_to_zero_and_suspends_the_schedules() -> None:
    awake, asleep = _by_name(bot(replicas=3)), _by_name(bot(replicas=3, hibernate=True))
    assert asleep.keys() == awake.keys()  # nothing is deleted: volumes, Secrets, Services stay
    for name in ("Deployment/alpha-api", "StatefulSet/alpha-db", "StatefulSet/alpha-redis"):
        assert awake[name]["spec"]["replicas"] > 0
        assert asleep[name]["spec"]["replicas"] == 0, name
    for name in ("CronJob/alpha-backup", "CronJob/alpha-verify"):
        assert awake[name]["spec"]["suspend"] is False
        assert asleep[name]["spec"]["suspend"] is True, name
    for name, child in asleep.items():
        if child["kind"] in {"Secret", "PersistentVolumeClaim", "Service"}:
            assert child == awake[name], name
    for name in ("StatefulSet/alpha-db", "StatefulSet/alpha-redis"):
        assert (
            asleep[name]["spec"]["volumeClaimTemplates"]
            == awake[name]["spec"]["volumeClaimTemplates"]
        )
    # Only the replicas change: the pods come back as they were (no roll on resume).
    api_awake, api_asleep = awake["Deployment/alpha-api"], asleep["Deployment/alpha-api"]
    assert api_asleep["spec"]["template"] == api_awake["spec"]["template"]


def _scaled(observed: dict[ObjectKey, dict[str, Any] | None], *, pods: int) -> None:
    for key, live in observed.items():
        if live is not None and key[1] in {"Deployment", "StatefulSet"}:
            live["spec"]["replicas"] = 0
            live["status"] = {"observedGeneration": 1, "replicas": pods, "readyReplicas": pods}
        if live is not None and key[1] == "CronJob":
            live["spec"]["suspend"] = True


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_the_phase_is_hibernated_once_no_pod_is_left() -> None:
    awake = bot()
    ready = compute_status(awake, observed=_running(awake), outcome=Outcome(), now=NOW)
    assert ready["phase"] == "Ready"
    asleep = bot(hibernate=True).model_copy(
        update={"status": TraderBotStatus.model_validate(ready)}
    )
    observed = _running(asleep)
    _scaled(observed, pods=1)
    going = compute_status(asleep, observed=observed, outcome=Outcome(), now=NOW)
    assert going["phase"] == "Progressing"
    assert _conditions(going)["Ready"]["reason"] == "Hibernating"

    _scaled(observed, pods=0)
    status = compute_status(asleep, observed=observed, outcome=Outcome(), now=NOW)
    conditions = _conditions(status)
    assert status["phase"] == "Hibernated"
    assert status["ready"] == "0/0"
    assert (conditions["Ready"]["reason"], conditions["Ready"]["message"]) == (
        "Hibernated",
        HIBERNATED_MESSAGE,
    )
    assert conditions["ApiReady"]["reason"] == "Hibernated"
    assert conditions["BackupScheduled"]["reason"] == "Hibernated"
    assert conditions["Reconciled"]["status"] == "True"


def test_a_hibernating_bot_is_neither_backed_up_nor_restored_on_demand() -> None:
    asleep = bot(hibernate=True)
    run = BackupRun(
        name="adhoc", namespace="trading", uid="u", spec=BackupRunSpec(bot_name="alpha")
    )
    assert "hibernates (spec.hibernate)" in (backup_run_problem(run, asleep) or "")
    assert backup_run_problem(run, bot()) is None
    restore = RestoreRun(
        name="undo",
        namespace="trading",
        uid="u",
        spec=RestoreRunSpec(bot_name="alpha", backup_name="nightly"),
    )
    refusal = restore_refusal(restore, bot=asleep, backup=None, now=NOW)
    assert "hibernates (spec.hibernate)" in (refusal or "")
