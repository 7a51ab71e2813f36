"""TraderBotBackup ``spec.importFrom`` on a real API server: compose files in, a restore out.

kwok runs no container: the import Job's pod "succeeds" with a result line naming
``/backups/<job name>`` as the location (operator/.../testing/kwok/stages.yaml).
What is checked here is the operator's part: the API server refuses paths that
could leave the backup volume, the Job runs ``trader-backup import`` on the given
files, the record turns Completed with the import's location, and a
TraderBotRestore that names it restores from that location.
"""

from __future__ import annotations

from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.resources.batch_v1 import Job

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_backups import run_phase
from cluster.operator.test_operator import _create_bot, _get, _wait_phase
from traderbot_operator.kube import TraderBotBackupResource, TraderBotRestoreResource

SQL = "incoming/db_20250128_030000.sql.gz"
RDB = "incoming/redis_20250128_030000.rdb"


def _import_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotBackup",
        "metadata": {"name": name},
        "spec": {"botName": "alpha", **spec},
    }


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"importFrom": {"sqlGz": "../beta/db.sql.gz"}, "redis": False}, "importFrom.sqlGz"),
        ({"importFrom": {"sqlGz": "/etc/passwd"}, "redis": False}, "importFrom.sqlGz"),
        ({"importFrom": {"sqlGz": SQL}}, "spec.redis must be true exactly when"),
        ({"importFrom": {}}, "spec.importFrom needs sqlGz, redisRdb or both"),
    ],
    ids=["dot-dot", "absolute", "redis-left-true", "empty"],
)
@pytest.mark.usefixtures("crd")
def test_the_api_server_refuses_an_import_that_could_not_be_restored(
    kube: Client, namespace: str, spec: dict[str, Any], why: str
) -> None:
    with pytest.raises(ApiError) as refused:
        kube.create(
            TraderBotBackupResource.from_dict(_import_body("bad", **spec)), namespace=namespace
        )
    assert refused.value.status.code == 422
    assert why in str(refused.value.status.message)


def test_an_imported_backup_completes_and_a_restore_takes_it(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "alpha")
    _wait_phase(kube, namespace, "alpha", "Ready")
    body = _import_body("compose", importFrom={"sqlGz": SQL, "redisRdb": RDB})
    kube.create(TraderBotBackupResource.from_dict(body), namespace=namespace)

    done = run_phase(kube, TraderBotBackupResource, namespace, "compose", "Completed")

    location = done["status"]["location"]
    assert location.startswith("/backups/compose-")  # kwok's result names the Job's pod
    job = _get(kube, Job, "compose", namespace)
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == [
        "import", "--sql-gz", f"/backups/{SQL}", "--redis-rdb", f"/backups/{RDB}",
    ]  # fmt: skip
    assert {"name": "backups", "mountPath": "/backups"} in container["volumeMounts"]

    restore = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBotRestore",
        "metadata": {"name": "from-compose"},
        "spec": {"botName": "alpha", "backupName": "compose", "what": "database"},
    }
    kube.create(TraderBotRestoreResource.from_dict(restore), namespace=namespace)
    run_phase(kube, TraderBotRestoreResource, namespace, "from-compose", "Completed")
    restore_job = _get(kube, Job, "from-compose", namespace)
    assert restore_job["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "restore", location, "--what", "database",
    ]  # fmt: skip
    _wait_phase(kube, namespace, "alpha", "Ready")
