"""The compose-era backups brought along on the real node, as docs/migration.md says.

The seed's ``scripts/backup.sh`` runs with ``docker compose exec`` replaced by
``kubectl exec`` into the bot's database and Redis pods (``docker compose cp`` by
``kubectl exec ... cat``: the Redis image need not have ``tar``), so its files are
what compose made, from the data of this bot. The data then changes; the files go
onto the backup volume through a helper pod and ``kubectl cp``; a TraderBotBackup
with ``spec.importFrom`` runs ``trader-backup import`` in the workload image; a
TraderBotRestore (``what: both``) brings back exactly the rows of orders, fills
and positions and the Redis key the seed's files hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from e2e.stack import Bot, place_order, unique
from e2e.test_backup_restore import (
    FINGERPRINT,
    change_what_a_backup_holds,
    create,
    redis_cli,
    strategies_off,  # noqa: F401  # the fixture, used by name below
    wait_executed,
    wait_run,
)
from support.kube import eventually

# The seed's scripts/backup.sh, with `docker compose exec|cp` as kubectl exec.
SEED_BACKUP_SH = r"""
set -e

BACKUP_DIR="{backup_dir}"
DATE=$(date +%Y%m%d_%H%M%S)

mkdir -p $BACKUP_DIR

kubectl -n {namespace} exec {bot}-db-0 -- pg_dump -U trader -d trader \
    | gzip > $BACKUP_DIR/db_$DATE.sql.gz

kubectl -n {namespace} exec {bot}-redis-0 -- redis-cli BGSAVE
sleep 5
kubectl -n {namespace} exec {bot}-redis-0 -- cat /data/dump.rdb > $BACKUP_DIR/redis_$DATE.rdb

echo "Backup completed: $DATE"
"""


def _helper_pod(bot: Bot, *, name: str) -> dict[str, object]:
    """The helper pod of docs/migration.md step 2: the backup volume, as the Jobs' user."""
    image = bot.kubectl.out(
        "get", "deploy", f"{bot.name}-api",
        "-o", "jsonpath={.spec.template.spec.containers[0].image}",
    ).strip()  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "files",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "backups", "mountPath": "/backups"}],
                }
            ],
            "volumes": [
                {"name": "backups", "persistentVolumeClaim": {"claimName": f"{bot.name}-backup"}}
            ],
        },
    }


def _copy_onto_backup_volume(bot: Bot, files: list[Path]) -> None:
    pod = unique(f"{bot.name}-import-files")
    bot.kubectl("apply", "-f", "-", stdin=json.dumps(_helper_pod(bot, name=pod)))
    try:
        bot.kubectl("wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=180s", timeout=200)
        bot.kubectl("exec", pod, "--", "mkdir", "-p", "/backups/incoming")
        for file in files:
            bot.kubectl("cp", str(file), f"{pod}:/backups/incoming/{file.name}", timeout=300)
    finally:
        bot.kubectl("delete", "pod", pod, "--wait=true", "--timeout=120s", timeout=150)


@pytest.mark.usefixtures("strategies_off")
def test_the_seeds_backups_are_imported_and_restored_on_the_real_node(
    bot: Bot, tmp_path: Path
) -> None:
    key = bot.api_key
    with bot.forward() as forward:
        kept = [place_order(forward, key) for _ in range(2)]
        for order in kept:
            wait_executed(forward, order["id"])
    eventually(
        lambda: bot.psql("SELECT count(*) FROM orders WHERE status = 'new'") == "0",
        what="no order waiting for the leader",
        timeout=60,
    )
    marker = unique("compose")
    assert redis_cli(bot, "SET", "e2e:compose-marker", marker) == "OK"
    before = bot.psql(FINGERPRINT)
    orders_before = int(bot.psql("SELECT count(*) FROM orders"))

    backup_dir = tmp_path / "var-backups-trader"
    script = SEED_BACKUP_SH.format(backup_dir=backup_dir, namespace=bot.namespace, bot=bot.name)
    seed = bot.kubectl.shell(script, timeout=180)
    assert seed.returncode == 0, seed.stderr
    assert seed.stdout.strip().splitlines()[-1].startswith("Backup completed: ")
    (sql_gz,) = backup_dir.glob("db_*.sql.gz")
    (rdb,) = backup_dir.glob("redis_*.rdb")

    # After the compose backup, the bot moves on: all of it must be undone by the import.
    extra_id = change_what_a_backup_holds(
        bot, key=key, cancel=kept[0]["id"], marker="e2e:compose-marker"
    )
    assert bot.psql(FINGERPRINT) != before

    _copy_onto_backup_volume(bot, [sql_gz, rdb])
    source = {"sqlGz": f"incoming/{sql_gz.name}", "redisRdb": f"incoming/{rdb.name}"}
    imported = wait_run(bot, "tbb", create(bot, "TraderBotBackup", {"importFrom": source}))
    assert imported["status"]["phase"] == "Completed", imported["status"]
    report = json.loads(
        bot.kubectl.out("logs", f"job/{imported['status']['jobName']}").splitlines()[-1]
    )
    assert report["ok"] is True, report
    assert report["action"] == "import", report
    assert report["tables"]["orders"] == orders_before, report
    assert report["imported"]["sql_gz"]["file"] == sql_gz.name, report

    spec = {"backupName": imported["metadata"]["name"], "what": "both"}
    restore = wait_run(bot, "tbr", create(bot, "TraderBotRestore", spec))
    assert restore["status"]["phase"] == "Completed", restore["status"]
    bot.wait_phase("Ready")
    assert bot.psql(FINGERPRINT) == before
    assert redis_cli(bot, "GET", "e2e:compose-marker") == marker
    with bot.forward() as forward:
        seen = httpx.get(f"{forward.url}/api/v1/orders/{extra_id}", timeout=10)
        assert seen.status_code == 404, seen.text  # made after the compose backup: gone
