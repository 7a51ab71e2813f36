"""status.maintenance: trader-backup's report of TimescaleDB jobs, copied into the TraderBot."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import kubernetes_validate
import yaml

from trader_api.backup.maintenance import jobs_from_rows
from traderbot_operator.desired.backup import build_backup_cronjob
from traderbot_operator.handlers.backups import converge_backup
from traderbot_operator.models import MaintenanceJob, MaintenanceStatus
from traderbot_operator.reconcile import Action, ObjectKey
from traderbot_operator.runs import maintenance_status
from unit.backup.test_maintenance import TIMESCALE_ROWS
from unit.operator.bots import bot
from unit.operator.crd_schema import ROOT, model_mismatches
from unit.operator.fake_kube import FakeKube

CRD = yaml.safe_load((ROOT / "crds" / "traderbot.dev_traderbots.yaml").read_text())
STATUS = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
COMPLETED = "2026-01-28T03:01:40Z"
# What trader-backup reports for TimescaleDB-shaped rows: the contract, end to end.
TIMESCALE_REPORT: dict[str, Any] = {
    "backend": "timescaledb",
    "retention": "timescaledb-jobs",
    "klines_retention_days": 90,
    "klines_compress_after_days": 7,
    "jobs": jobs_from_rows(TIMESCALE_ROWS),
}


def test_the_models_have_the_crd_fields() -> None:
    maintenance = STATUS["properties"]["maintenance"]
    assert model_mismatches(MaintenanceStatus, maintenance, "status.maintenance") == []
    jobs = maintenance["properties"]["jobs"]["items"]
    assert model_mismatches(MaintenanceJob, jobs, "status.maintenance.jobs[]") == []


def test_timescaledb_jobs_are_copied_in_camel_case_with_the_backup_that_read_them() -> None:
    status = maintenance_status(
        {"ok": True, "maintenance": TIMESCALE_REPORT}, backup="nightly", completed=COMPLETED
    )
    assert status == {
        "backend": "timescaledb",
        "retention": "timescaledb-jobs",
        "klinesRetentionDays": 90,
        "klinesCompressAfterDays": 7,
        "jobs": [
            {
                "jobId": 1000,
                "proc": "policy_compression",
                "hypertable": "public.klines",
                "scheduleInterval": "12:00:00",
                "lastRunStatus": "Success",
                "lastRunStartedAt": "2026-01-28T00:00:01Z",
                "nextStart": "2026-01-28T12:00:01Z",
            },
            {
                "jobId": 1001,
                "proc": "policy_retention",
                "hypertable": "public.klines",
                "scheduleInterval": "1 day",
                "nextStart": "2026-01-29T00:00:00Z",
            },
        ],
        "observedAt": COMPLETED,
        "backupName": "nightly",
    }


def test_plain_postgresql_says_engine_retention() -> None:
    report = {
        "backend": "postgresql",
        "retention": "engine-retention",
        "klines_retention_days": 45,
        "jobs": [],
    }
    status = maintenance_status({"maintenance": report}, backup="nightly", completed=COMPLETED)
    assert status is not None
    assert (status["retention"], status["klinesRetentionDays"], status["jobs"]) == (
        "engine-retention",
        45,
        [],
    )


def test_no_report_means_no_status_and_a_strange_one_is_reported_not_dropped() -> None:
    assert maintenance_status({"ok": True}, backup="b", completed=COMPLETED) is None
    assert maintenance_status(None, backup="b", completed=COMPLETED) is None
    odd = maintenance_status(
        {"maintenance": {"backend": "timescaledb", "jobs": [{"proc": "x"}]}},
        backup="b",
        completed=COMPLETED,
    )
    assert odd is not None
    assert odd["backend"] == "unknown"
    assert "unreadable" in odd["error"]


def test_the_backup_job_gets_the_engine_retention_settings() -> None:
    cronjob = build_backup_cronjob(bot(database={"klinesRetentionDays": 45}))
    kubernetes_validate.validate(cronjob, "1.34.0", strict=True)
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["KLINES_RETENTION_DAYS"], env["KLINES_COMPRESS_AFTER_DAYS"]) == ("45", "7")


class _RunFake(FakeKube):
    """FakeKube that also holds one TraderBotBackup, its Job, and its pod's result line."""

    def __init__(self, bot: dict[str, Any], run: dict[str, Any], job: dict[str, Any], line: str):
        super().__init__(bot)
        self.objects = {
            (run["apiVersion"], run["kind"], run["metadata"]["name"]): run,
            ("batch/v1", "Job", job["metadata"]["name"]): job,
        }
        self.line = line
        self.writes: list[tuple[str, str, dict[str, Any]]] = []
        self.lists = 0
        self.actions: list[Action] = []

    async def backup_runs(self, *, namespace: str) -> list[dict[str, Any]]:
        self.lists += 1
        return [copy.deepcopy(o) for k, o in self.objects.items() if k[1] == "TraderBotBackup"]

    async def execute(self, *, namespace: str, action: Action) -> dict[str, Any] | None:
        self.actions.append(action)
        return None

    async def get(self, *, namespace: str, key: ObjectKey) -> dict[str, Any] | None:
        found = self.objects.get(key)
        return None if found is None else copy.deepcopy(found)

    async def termination_message(self, *, namespace: str, job: str) -> str | None:
        return self.line

    async def patch_status(
        self,
        *,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        kind: str = "TraderBot",
        **_: Any,
    ) -> None:
        self.writes.append((kind, name, dict(status)))


async def test_a_completed_backup_writes_only_status_maintenance_into_its_bot() -> None:
    bot_body = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBot",
        "metadata": {"name": "alpha", "namespace": "trading", "uid": "u-1", "generation": 1},
        "spec": {},
    }
    run = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotBackup",
        "metadata": {
            "name": "alpha-backup-29440980",
            "namespace": "trading",
            "uid": "r-1",
            "resourceVersion": "7",
            "labels": {"traderbot.dev/scheduled": "true"},
        },
        "spec": {"botName": "alpha"},
    }
    job = {
        "metadata": {"name": "alpha-backup-29440980"},
        "status": {
            "startTime": "2026-01-28T03:00:01Z",
            "completionTime": COMPLETED,
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    line = json.dumps({"ok": True, "location": "/backups/x", "maintenance": TIMESCALE_REPORT})
    kube = _RunFake(bot_body, run, job, line)

    phase = await converge_backup(kube.state(), namespace="trading", name="alpha-backup-29440980")

    assert phase == "Completed"
    [(kind, name, status)] = [w for w in kube.writes if w[0] == "TraderBot"]
    assert (kind, name) == ("TraderBot", "alpha")
    assert list(status) == ["maintenance"]  # a merge patch of that field alone
    assert status["maintenance"]["backupName"] == "alpha-backup-29440980"
    assert [j["jobId"] for j in status["maintenance"]["jobs"]] == [1000, 1001]


def _old_record(name: str, *, labels: dict[str, str], completed: str) -> dict[str, Any]:
    return {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotBackup",
        "metadata": {"name": name, "namespace": "trading", "uid": f"{name}-uid", "labels": labels},
        "spec": {"botName": "alpha"},
        "status": {
            "phase": "Completed",
            "completionTime": completed,
            "location": f"/backups/alpha-{name}",
        },
    }


async def test_a_completed_backup_deletes_and_marks_the_records_its_retention_pruned() -> None:
    bot_body = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBot",
        "metadata": {"name": "alpha", "namespace": "trading", "uid": "u-1", "generation": 1},
        "spec": {},
    }
    run = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotBackup",
        "metadata": {
            "name": "alpha-backup-29440980",
            "namespace": "trading",
            "uid": "r-1",
            "resourceVersion": "7",
            "labels": {"traderbot.dev/scheduled": "true"},
        },
        "spec": {"botName": "alpha"},
    }
    job = {
        "metadata": {"name": "alpha-backup-29440980"},
        "status": {
            "startTime": "2026-01-28T03:00:01Z",
            "completionTime": COMPLETED,
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    pruned = ["alpha-nightly-old", "alpha-by-hand-old"]
    line = json.dumps({"ok": True, "location": "/backups/alpha-new", "pruned": pruned})
    kube = _RunFake(bot_body, run, job, line)
    for record in (
        _old_record(
            "nightly-old",
            labels={"traderbot.dev/scheduled": "true"},
            completed="2025-12-01T03:01:00Z",
        ),
        _old_record("by-hand-old", labels={"team": "quant"}, completed="2025-12-02T10:00:00Z"),
        # The newest Completed one in the list (the run's own status is not in it yet).
        _old_record(
            "kept-old", labels={"traderbot.dev/scheduled": "true"}, completed="2025-12-03T03:01:00Z"
        ),
    ):
        kube.objects[("traderbot.dev/v1alpha1", "TraderBotBackup", record["metadata"]["name"])] = (
            record
        )

    phase = await converge_backup(kube.state(), namespace="trading", name="alpha-backup-29440980")

    assert phase == "Completed"
    assert kube.lists == 1  # one list of the records, not a GET per record
    assert [(a.verb, a.key[1], a.key[2]) for a in kube.actions] == [
        ("delete", "TraderBotBackup", "nightly-old")
    ]
    [marked] = [w[2] for w in kube.writes if w[1] == "by-hand-old"]
    assert marked["prunedBy"] == "alpha-backup-29440980"
    assert marked["prunedAt"]
    assert not [w for w in kube.writes if w[1] == "kept-old"]
