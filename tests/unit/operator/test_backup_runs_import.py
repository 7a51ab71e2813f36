"""A TraderBotBackup with ``spec.importFrom``: compose-era files become a restorable backup."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from traderbot_operator.desired.backup import build_backup_job
from traderbot_operator.models import BACKUP_VOLUME_PATH_PATTERN, BackupRun, BackupRunSpec
from traderbot_operator.runs import backup_run_status
from unit.operator.bots import bot
from unit.operator.crd_schema import apply_defaults
from unit.operator.test_backup_runs import SCHEMA, _job

SPEC_SCHEMA = SCHEMA["properties"]["spec"]
SQL = "incoming/db_20250128_030000.sql.gz"
RDB = "incoming/redis_20250128_030000.rdb"


def _spec(**spec: Any) -> BackupRunSpec:
    return BackupRunSpec.model_validate(apply_defaults(SPEC_SCHEMA, {"botName": "alpha", **spec}))


def _run(**spec: Any) -> BackupRun:
    return BackupRun(name="compose", namespace="trading", uid="run-uid", spec=_spec(**spec))


def test_the_job_imports_the_files_from_the_backup_volume() -> None:
    job = build_backup_job(bot(), run=_run(importFrom={"sqlGz": SQL, "redisRdb": RDB}))

    kubernetes_validate.validate(job, "1.34.0", strict=True)
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["trader-backup"]
    assert container["args"] == [
        "import",
        "--sql-gz",
        f"/backups/{SQL}",
        "--redis-rdb",
        f"/backups/{RDB}",
    ]
    env = {e["name"] for e in container["env"]}
    assert {"BACKUP_DIR", "BOT_NAME"} <= env  # the folder lands where restores look


def test_a_database_only_import_says_redis_false() -> None:
    run = _run(importFrom={"sqlGz": SQL}, redis=False)

    [container] = build_backup_job(bot(), run=run)["spec"]["template"]["spec"]["containers"]

    assert container["args"] == ["import", "--sql-gz", f"/backups/{SQL}"]


def test_a_plain_backup_keeps_its_default_command() -> None:
    [container] = build_backup_job(bot(), run=_run())["spec"]["template"]["spec"]["containers"]

    assert container["args"] == []  # trader-backup alone backs up


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"importFrom": {}}, "needs sqlGz, redisRdb or both"),
        ({"importFrom": {"sqlGz": SQL}}, "spec.redis must be true exactly when"),
        ({"importFrom": {"redisRdb": RDB}}, "spec.database must be true exactly when"),
        (
            {"importFrom": {"sqlGz": SQL}, "redis": False, "tables": ["orders"]},
            "drop spec.tables",
        ),
    ],
)
def test_an_import_that_contradicts_itself_is_refused(spec: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        _spec(**spec)


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../other-bot/db.sql.gz", "incoming/../../x", ".hidden", "a//b", ""]
)
def test_a_path_that_could_leave_the_backup_volume_is_refused(path: str) -> None:
    with pytest.raises(ValidationError):
        _spec(importFrom={"sqlGz": path}, redis=False)


def test_the_crd_refuses_the_same_paths_as_the_model() -> None:
    properties = SPEC_SCHEMA["properties"]["importFrom"]["properties"]
    for field in ("sqlGz", "redisRdb"):
        assert properties[field]["pattern"] == BACKUP_VOLUME_PATH_PATTERN
    assert re.match(BACKUP_VOLUME_PATH_PATTERN, SQL)
    rules = [rule["rule"] for rule in SPEC_SCHEMA["x-kubernetes-validations"]]
    assert any("importFrom" in rule and "tables" in rule for rule in rules)


def test_a_completed_import_records_where_the_backup_is() -> None:
    result = {
        "ok": True,
        "action": "import",
        "location": "/backups/alpha-20260128T030000123456Z",
        "size": 4242,
        "checksum": "sha256:" + "cd" * 32,
        "imported": {"kind": "compose"},
    }
    job = _job(
        startTime="2026-01-28T03:00:00Z",
        completionTime="2026-01-28T03:01:00Z",
        conditions=[{"type": "Complete", "status": "True"}],
    )

    status = backup_run_status(
        _run(importFrom={"sqlGz": SQL, "redisRdb": RDB}), job=job, result=result, scheduled=False
    )

    assert status["phase"] == "Completed"
    assert status["location"] == result["location"]
    assert status["sizeBytes"] == 4242
