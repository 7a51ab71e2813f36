"""A real backup Job (pg_dump of the database pod, Redis snapshot), then a real restore.

The restore brings back exactly the rows (and the Redis key) of the backup,
after they were changed: orders, fills and positions are compared by content,
not by count. The strategies are switched off meanwhile, so only the test
writes orders (market data keeps flowing into klines, which are not compared).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from e2e.stack import Bot, PortForward, place_order
from support.kube import eventually

BACKUP_TIMEOUT = 300.0
# Content of the money tables, in a stable order: equal strings mean equal rows.
FINGERPRINT = """
SELECT (SELECT count(*) || ':' || coalesce(md5(string_agg(
            id::text || client_order_id || status || filled_quantity::text, ',' ORDER BY id)), '')
        FROM orders)
    || '|' || (SELECT count(*) || ':' || coalesce(md5(string_agg(
            id::text || quantity::text || price::text, ',' ORDER BY id)), '') FROM fills)
    || '|' || (SELECT count(*) || ':' || coalesce(md5(string_agg(
            symbol || quantity::text, ',' ORDER BY symbol)), '') FROM positions)
"""


def redis_cli(bot: Bot, *args: str) -> str:
    """redis-cli in the Redis pod (REDISCLI_AUTH comes from the pod's Secret-backed env)."""
    return bot.kubectl.out("exec", f"{bot.name}-redis-0", "--", "redis-cli", *args).strip()


def wait_executed(forward: PortForward, order_id: str) -> None:
    """Wait until the leader took the order (``new`` -> ``open``), so its row is settled."""

    def status() -> bool:
        body = httpx.get(f"{forward.url}/api/v1/orders/{order_id}", timeout=10).json()
        return bool(body["status"] != "new")

    eventually(status, what=f"order {order_id} executed", timeout=60)


def change_what_a_backup_holds(bot: Bot, *, key: str, cancel: str, marker: str) -> str:
    """Move the bot on after a backup: a new executed order, ``cancel`` cancelled, ``marker`` set.

    A restore must then undo all three. Returns the new order's id.
    """
    with bot.forward() as forward:
        extra = place_order(forward, key)
        wait_executed(forward, extra["id"])
        cancelled = httpx.post(
            f"{forward.url}/api/v1/orders/{cancel}/cancel", headers={"X-API-Key": key}, timeout=10
        )
        assert cancelled.status_code == 200, cancelled.text
    redis_cli(bot, "SET", marker, "after")
    new_id: str = extra["id"]
    return new_id


def create(bot: Bot, kind: str, spec: dict[str, Any]) -> str:
    manifest = {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": kind,
        "metadata": {"generateName": f"{bot.name}-e2e-"},
        "spec": {"botName": bot.name, **spec},
    }
    name = bot.kubectl.out("create", "-f", "-", "-o", "name", stdin=json.dumps(manifest))
    return name.strip().split("/")[-1]


def wait_run(bot: Bot, resource: str, name: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        body: dict[str, Any] = bot.kubectl.json("get", resource, name)
        return body if body.get("status", {}).get("phase") in {"Completed", "Failed"} else None

    found: dict[str, Any] = eventually(
        ended, what=f"{resource} {name} ended", timeout=BACKUP_TIMEOUT, interval=2.0
    )
    return found


@pytest.fixture
def strategies_off(bot: Bot) -> Iterator[None]:
    """Switch every strategy off through the API for the test, then back on."""
    with bot.forward() as forward:
        listed = httpx.get(f"{forward.url}/api/v1/strategies", timeout=10).json()
        names = [s["name"] for s in listed if s.get("enabled")]
        for name in names:
            answer = httpx.post(
                f"{forward.url}/api/v1/strategies/{name}/disable",
                headers={"X-API-Key": bot.api_key},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
    yield
    bot.wait_phase("Ready")
    with bot.forward() as forward:
        for name in names:
            httpx.post(
                f"{forward.url}/api/v1/strategies/{name}/enable",
                headers={"X-API-Key": bot.api_key},
                timeout=10,
            )


@pytest.mark.usefixtures("strategies_off")
def test_backup_then_restore_brings_back_exactly_the_backed_up_rows(bot: Bot) -> None:
    key = bot.api_key
    with bot.forward() as forward:
        kept = [place_order(forward, key) for _ in range(3)]
        for order in kept:
            wait_executed(forward, order["id"])
    # Orders a strategy sent just before it was switched off settle too.
    eventually(
        lambda: bot.psql("SELECT count(*) FROM orders WHERE status = 'new'") == "0",
        what="no order waiting for the leader",
        timeout=60,
    )
    marker = f"before-{secrets.token_hex(3)}"
    assert redis_cli(bot, "SET", "e2e:marker", marker) == "OK"
    before = bot.psql(FINGERPRINT)
    orders_before = int(bot.psql("SELECT count(*) FROM orders"))

    backup = wait_run(bot, "tbb", create(bot, "TraderBotBackup", {}))
    assert backup["status"]["phase"] == "Completed", backup["status"]
    job_log = bot.kubectl.out("logs", f"job/{backup['status']['jobName']}")
    report = json.loads(job_log.splitlines()[-1])
    assert report["ok"] is True, report
    assert report["tables"]["orders"] == orders_before, report  # pg_dump's own snapshot
    assert report["redis"] is True, report

    # Change everything the backup holds: new orders, a cancelled one, the Redis key.
    extra_id = change_what_a_backup_holds(bot, key=key, cancel=kept[0]["id"], marker="e2e:marker")
    assert bot.psql(FINGERPRINT) != before

    spec = {"backupName": backup["metadata"]["name"], "what": "both"}
    restore = wait_run(bot, "tbr", create(bot, "TraderBotRestore", spec))
    assert restore["status"]["phase"] == "Completed", restore["status"]
    bot.wait_phase("Ready")
    assert bot.psql(FINGERPRINT) == before
    assert redis_cli(bot, "GET", "e2e:marker") == marker
    with bot.forward() as forward:
        seen = httpx.get(f"{forward.url}/api/v1/orders/{extra_id}", timeout=10)
        assert seen.status_code == 404, seen.text  # made after the backup: gone
        again = httpx.get(f"{forward.url}/api/v1/orders/{kept[0]['id']}", timeout=10).json()
        assert again["status"] == "open", again  # the cancel came after the backup
