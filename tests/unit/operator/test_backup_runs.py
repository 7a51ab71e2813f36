"""TraderBotBackup: its CRD matches the models, its Job is valid, its status tells the truth."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import yaml

from traderbot_operator.desired.backup import build_backup_cronjob, build_backup_job
from traderbot_operator.handlers.backups import scheduled_run_record
from traderbot_operator.models import BackupRun, BackupRunSpec, BackupRunStatus, TraderBot
from traderbot_operator.runs import (
    backup_run_problem,
    backup_run_status,
    owners_to_keep,
    parse_backup_result,
)
from unit.operator.bots import bot
from unit.operator.crd_schema import ROOT, apply_defaults, model_mismatches

CRD = yaml.safe_load((ROOT / "crds" / "traderbot.dev_traderbotbackups.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
RESULT = {
    "ok": True,
    "action": "backup",
    "bot": "alpha",
    "name": "alpha-20260128T030000Z",
    "location": "/backups/alpha/alpha-20260128T030000Z",
    "size": 123456,
    "checksum": "sha256:" + "ab" * 32,
}


def _run(name: str = "nightly-extra", **spec: Any) -> BackupRun:
    defaulted = apply_defaults(SCHEMA["properties"]["spec"], {"botName": "alpha", **spec})
    return BackupRun(
        name=name,
        namespace="trading",
        uid="run-uid",
        labels={"team": "quant", "app.kubernetes.io/name": "ignored"},
        spec=BackupRunSpec.model_validate(defaulted),
    )


def _job(*, conditions: list[dict[str, Any]] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "nightly-extra"},
        "status": {**status, "conditions": conditions or []},
    }


@pytest.mark.parametrize(("model", "path"), [(BackupRunSpec, "spec"), (BackupRunStatus, "status")])
def test_models_have_the_crd_fields(model: Any, path: str) -> None:
    assert model_mismatches(model, SCHEMA["properties"][path], path) == []


def test_job_is_valid_owned_by_the_run_and_carries_its_labels() -> None:
    job = build_backup_job(bot(), run=_run(tables=["orders", "positions"], redis=False))
    kubernetes_validate.validate(job, "1.34.0", strict=True)
    [owner] = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "TraderBotBackup",
        "nightly-extra",
        "run-uid",
    )
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "quant"
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "trader-api"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "backup"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["BACKUP_TABLES"] == "orders,positions"
    assert env["BACKUP_INCLUDE_REDIS"] == "false"
    assert [e["name"] for e in pod["spec"]["containers"][0]["env"]].count(
        "BACKUP_INCLUDE_REDIS"
    ) == 1


def test_scheduled_and_on_demand_runs_share_one_pod_spec() -> None:
    model = bot()
    scheduled = build_backup_cronjob(model)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    on_demand = build_backup_job(model, run=_run())["spec"]["template"]["spec"]
    assert scheduled["volumes"] == on_demand["volumes"]
    assert scheduled["securityContext"] == on_demand["securityContext"]
    assert scheduled["containers"][0]["image"] == on_demand["containers"][0]["image"]


def test_result_is_found_after_log_lines_and_garbage() -> None:
    message = "2026-01-28 INFO dumping\n{not json\n" + json.dumps(RESULT) + "\n"
    assert parse_backup_result(message) == RESULT
    assert parse_backup_result("plain text only") is None
    assert parse_backup_result(None) is None


def test_status_follows_the_job() -> None:
    run = _run()
    assert backup_run_status(run, job=None, result=None, scheduled=False)["phase"] == "Pending"
    running = backup_run_status(
        run, job=_job(active=1, startTime="2026-01-28T03:00:01Z"), result=None, scheduled=True
    )
    assert (running["phase"], running["startTime"], running["scheduled"]) == (
        "Running",
        "2026-01-28T03:00:01Z",
        True,
    )
    done = backup_run_status(
        run,
        job=_job(
            startTime="2026-01-28T03:00:01Z",
            completionTime="2026-01-28T03:02:11Z",
            conditions=[{"type": "Complete", "status": "True"}],
        ),
        result=RESULT,
        scheduled=False,
    )
    assert done == {
        "phase": "Completed",
        "scheduled": False,
        "jobName": "nightly-extra",
        "startTime": "2026-01-28T03:00:01Z",
        "completionTime": "2026-01-28T03:02:11Z",
        "location": RESULT["location"],
        "sizeBytes": 123456,
        "checksum": RESULT["checksum"],
    }


def test_a_failed_run_says_why() -> None:
    failed_job = _job(
        conditions=[
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": "2026-01-28T03:05:00Z",
            }
        ]
    )
    from_result = backup_run_status(
        _run(),
        job=failed_job,
        result={"ok": False, "error": "pg_dump: connection refused"},
        scheduled=False,
    )
    assert (from_result["phase"], from_result["error"]) == ("Failed", "pg_dump: connection refused")
    from_job = backup_run_status(_run(), job=failed_job, result=None, scheduled=False)
    assert from_job["error"] == "BackoffLimitExceeded: Job has reached the specified backoff limit"


def test_an_ended_run_keeps_its_record_when_the_job_is_gone() -> None:
    ended = _run().model_copy(
        update={"status": BackupRunStatus(phase="Completed", location="/backups/x", size_bytes=5)}
    )
    status = backup_run_status(ended, job=None, result=None, scheduled=False)
    assert status == {"phase": "Completed", "location": "/backups/x", "sizeBytes": 5}


def test_runs_that_cannot_start_are_refused_with_the_fix() -> None:
    run = _run()
    assert "TraderBot trading/alpha does not exist" in (backup_run_problem(run, None) or "")
    disabled: TraderBot = bot(backup={"enabled": False})
    assert "enable backups first" in (backup_run_problem(run, disabled) or "")
    assert backup_run_problem(run, bot()) is None
    status = backup_run_status(run, job=None, result=None, scheduled=False, problem="gone")
    assert (status["phase"], status["error"]) == ("Failed", "gone")


def test_a_completed_job_without_a_result_is_not_a_backup() -> None:
    silent = backup_run_status(
        _run(),
        job=_job(
            startTime="2026-01-28T03:00:01Z",
            conditions=[{"type": "Complete", "status": "True", "lastTransitionTime": "t"}],
        ),
        result=None,
        scheduled=True,
    )
    assert silent["phase"] == "Failed"
    assert "without reporting a result" in silent["error"]
    assert "location" not in silent


def test_scheduled_records_outlive_a_retained_bot_with_its_backups() -> None:
    kept = scheduled_run_record(bot(deletionPolicy="Retain"), name="alpha-backup-29001")
    assert kept["metadata"]["ownerReferences"] == []
    assert kept["spec"]["botName"] == "alpha"
    dropped = scheduled_run_record(bot(deletionPolicy="Delete"), name="alpha-backup-29001")
    [owner] = dropped["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("TraderBot", "alpha", False)


def test_a_retain_bot_s_old_scheduled_record_drops_only_that_bot_as_owner() -> None:
    retain, delete = bot(), bot(deletionPolicy="Delete")
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "other-uid"}
    mine = {"apiVersion": "traderbot.dev/v1alpha1", "kind": "TraderBot", "uid": retain.uid}
    assert owners_to_keep({"ownerReferences": [mine, other]}, retain) == [other]
    assert owners_to_keep({"ownerReferences": [other]}, retain) is None
    assert owners_to_keep({}, retain) is None
    # With deletionPolicy Delete the records go with the bot, as its backups do.
    assert owners_to_keep({"ownerReferences": [mine]}, delete) is None
