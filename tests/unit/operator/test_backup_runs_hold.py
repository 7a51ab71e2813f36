"""An on-demand backup waits while a restore holds its bot, and says why."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from traderbot_operator.handlers.backups import converge_backup
from traderbot_operator.runs import HOLD_ANNOTATION, backup_must_wait
from unit.operator.test_backup_runs_maintenance import _RunFake

RUN = "alpha-now"


def _bot(annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBot",
        "metadata": {
            "name": "alpha",
            "namespace": "trading",
            "uid": "u-1",
            "generation": 1,
            "annotations": annotations,
        },
        "spec": {},
    }


def _on_demand_run() -> dict[str, Any]:
    return {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotBackup",
        "metadata": {"name": RUN, "namespace": "trading", "uid": "r-1", "resourceVersion": "3"},
        "spec": {"botName": "alpha"},
    }


def _fake(annotations: dict[str, str], *, restore_phase: str | None = None) -> _RunFake:
    # NB: the fake's Job belongs to another run, so this run has none yet.
    other_job = {"metadata": {"name": "someone-else"}, "status": {}}
    fake = _RunFake(_bot(annotations), copy.deepcopy(_on_demand_run()), other_job, "")
    if restore_phase is not None:
        restore = {"metadata": {"name": "restore-1"}, "status": {"phase": restore_phase}}
        fake.objects[("traderbot.dev/v1alpha1", "TraderBotRestore", "restore-1")] = restore
    return fake


def test_only_a_holding_restore_makes_a_backup_wait() -> None:
    assert backup_must_wait(None) is None
    assert "TraderBotRestore restore-1 holds the bot" in (backup_must_wait("restore-1") or "")


async def test_an_on_demand_backup_of_a_held_bot_stays_pending_and_starts_no_job() -> None:
    kube = _fake({HOLD_ANNOTATION: "restore-1"}, restore_phase="Failed")

    phase = await converge_backup(kube.state(), namespace="trading", name=RUN)

    assert phase == "Pending"
    assert kube.actions == []
    [(kind, name, status)] = kube.writes
    assert (kind, name, status["phase"]) == ("TraderBotBackup", RUN, "Pending")
    assert "TraderBotRestore restore-1 holds the bot" in status["message"]


@pytest.mark.parametrize(
    ("annotations", "restore_phase"),
    [
        ({}, None),
        ({HOLD_ANNOTATION: "restore-1"}, None),  # the restore was deleted: a stale mark
        ({HOLD_ANNOTATION: "restore-1"}, "Completed"),
    ],
    ids=["never-held", "restore-deleted", "restore-completed"],
)
async def test_the_backup_starts_its_job_once_no_restore_holds_the_bot(
    annotations: dict[str, str], restore_phase: str | None
) -> None:
    kube = _fake(annotations, restore_phase=restore_phase)

    await converge_backup(kube.state(), namespace="trading", name=RUN)

    [action] = kube.actions
    assert (action.verb, action.key) == ("create", ("batch/v1", "Job", RUN))


async def test_the_waiting_note_goes_once_the_job_exists() -> None:
    kube = _fake({})
    run_key = ("traderbot.dev/v1alpha1", "TraderBotBackup", RUN)
    kube.objects[run_key]["status"] = {"phase": "Pending", "message": "waiting: ..."}
    kube.objects[("batch/v1", "Job", RUN)] = {"metadata": {"name": RUN}, "status": {}}

    await converge_backup(kube.state(), namespace="trading", name=RUN)

    [(_, _, status)] = kube.writes
    assert status["message"] is None  # merge patch: removes the field
