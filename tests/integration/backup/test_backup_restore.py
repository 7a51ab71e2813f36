"""``trader-backup`` against real PostgreSQL and Redis: back up, wipe, restore, identical."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from support.backup_data import Cli, snapshot_rows
from support.servers import PostgresServer, RedisServer
from trader_api.backup.manifest import read_manifest


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def _wipe_database(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE fills, positions, orders, klines, schema_migrations")
    finally:
        await conn.close()


async def test_backup_then_restore_gives_back_every_row_and_key(
    cli: Cli,
    trading_database: str,
    redis_server: RedisServer,
    redis_url: str,
    backup_dir: Path,
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    await client.set("traderbot:kill_switch", "off")
    await client.hset("traderbot:strategies", mapping={"btc-sma": "on", "eth-rsi": "off"})
    before = await snapshot_rows(trading_database)

    made = cli("backup", database_url=trading_database)

    assert made.code == 0, made.stderr
    result = made.result
    assert result["ok"] is True
    assert result["tables"] == {t: len(rows) for t, rows in before.items()}
    assert result["redis"] is True
    assert result["checksum"].startswith("sha256:")
    folder = Path(result["location"])
    assert folder.parent == backup_dir
    assert _names(folder) == [
        "database.dump",
        "manifest.json",
        "redis.rdb",
    ]
    assert _names(backup_dir) == [folder.name]  # no staging folder left over
    manifest = read_manifest(folder)
    assert manifest.bot == "demo"
    assert manifest.database is not None
    assert manifest.database.server_version.startswith("15")
    assert manifest.size == result["size"] > 0

    # Disaster: the database and Redis lose everything.
    await _wipe_database(trading_database)
    await client.flushall()
    await client.aclose()
    redis_server.stop()
    (redis_server.data_dir / "dump.rdb").unlink()

    restored = cli("restore", folder.name, "--what", "both", database_url=trading_database)

    assert restored.code == 0, restored.result
    assert restored.result["tables"] == result["tables"]
    assert await snapshot_rows(trading_database) == before
    redis_server.start()
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.get("traderbot:kill_switch") == b"off"
        assert await client.hgetall("traderbot:strategies") == {
            b"btc-sma": b"on",
            b"eth-rsi": b"off",
        }
    finally:
        await client.aclose()


async def test_restore_defaults_to_the_newest_backup(cli: Cli, trading_database: str) -> None:
    first = cli("backup", "--no-redis", database_url=trading_database)
    conn = await asyncpg.connect(trading_database)
    await conn.execute("DELETE FROM klines WHERE symbol = 'ETHUSDT'")
    await conn.close()
    second = cli("backup", "--no-redis", database_url=trading_database)
    assert first.code == second.code == 0

    restored = cli("restore", database_url=trading_database)

    assert restored.result["name"] == second.result["name"]
    assert restored.result["tables"]["klines"] == 300


async def test_a_table_scoped_backup_restores_only_its_tables(
    cli: Cli, trading_database: str
) -> None:
    made = cli("backup", "--tables", "positions", "--no-redis", database_url=trading_database)
    assert made.code == 0, made.result
    assert made.result["scope"] == "tables"
    assert list(made.result["tables"]) == ["positions"]
    before = await snapshot_rows(trading_database)
    conn = await asyncpg.connect(trading_database)
    await conn.execute("UPDATE positions SET quantity = 999")
    await conn.execute("DELETE FROM klines WHERE symbol = 'ETHUSDT'")  # outside the scope
    await conn.close()

    restored = cli("restore", made.result["name"], database_url=trading_database)

    assert restored.code == 0, restored.result
    after = await snapshot_rows(trading_database)
    assert after["positions"] == before["positions"]
    assert len(after["klines"]) == 300  # untouched: not in the backup


async def test_a_scoped_restore_that_would_break_other_tables_is_refused(
    cli: Cli, trading_database: str
) -> None:
    made = cli(
        "backup", "--tables", "orders,positions", "--no-redis", database_url=trading_database
    )
    assert made.code == 0, made.result
    before = await snapshot_rows(trading_database)

    refused = cli("restore", made.result["name"], database_url=trading_database)

    assert refused.code == 1
    assert "fills -> orders" in refused.result["error"]
    assert await snapshot_rows(trading_database) == before


async def test_restore_refuses_while_the_api_is_still_connected(
    cli: Cli, trading_database: str
) -> None:
    made = cli("backup", "--no-redis", database_url=trading_database)
    api_session = await asyncpg.connect(trading_database)
    try:
        refused = cli("restore", made.result["name"], database_url=trading_database)
        assert refused.code == 1
        assert "scale the API to 0" in refused.result["error"]
        forced = cli("restore", made.result["name"], "--force", database_url=trading_database)
        assert forced.code == 0, forced.result
    finally:
        await api_session.close()


async def test_verify_restores_into_a_scratch_database_and_drops_it(
    cli: Cli, trading_database: str, postgres_server: PostgresServer
) -> None:
    made = cli("backup", database_url=trading_database)
    verified = cli("verify", made.result["name"], database_url=trading_database)
    assert verified.code == 0, verified.result
    assert verified.result["checksums"] == "ok"
    assert verified.result["redis"] == "ok"
    assert verified.result["tables"] == made.result["tables"]
    remaining = postgres_server.psql("SELECT datname FROM pg_database").split()
    assert verified.result["scratch_database"] not in remaining


def test_the_result_line_is_json_even_when_nothing_is_configured(cli: Cli) -> None:
    failed = cli("backup", env={"REDIS_URL": ""})
    assert failed.code == 1
    assert failed.result == {
        "ok": False,
        "action": "backup",
        "error": "nothing to back up: no database URL and no Redis URL",
    }
    assert json.loads(failed.stdout) == failed.result


def test_back_to_back_snapshots_each_wait_for_a_new_save(redis_url: str) -> None:
    """Two BGSAVEs within one second: LASTSAVE cannot move, the save counter must."""
    import redis as sync_redis

    from trader_api.backup.redis import bgsave_snapshot

    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        saves_before = int(client.info("persistence")["rdb_saves"])
        first = bgsave_snapshot(client, timeout_s=30)
        second = bgsave_snapshot(client, timeout_s=30)
        assert second >= first
        assert int(client.info("persistence")["rdb_saves"]) == saves_before + 2
    finally:
        client.close()


async def test_the_cronjob_way_env_parts_no_command_and_redis_over_the_network(
    cli: Cli,
    trading_database: str,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    """As the operator's CronJob runs it: DATABASE_*/REDIS_* parts, no Redis volume, no args."""
    postgres_database = trading_database.rsplit("/", 1)[1]
    client = aioredis.Redis.from_url(redis_url)
    await client.set("traderbot:kill_switch", "on")
    await client.aclose()
    operator_env = {
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": str(postgres_server.port),
        "DATABASE_NAME": postgres_database,
        "DATABASE_USER": postgres_server.user,
        "DATABASE_PASSWORD": postgres_server.password,
        "REDIS_URL": "",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(redis_server.port),
        "REDIS_PASSWORD": redis_server.password,
        "REDIS_DATA_DIR": "",
    }

    made = cli(env=operator_env)

    assert made.code == 0, made.result
    assert made.result["action"] == "backup"
    assert made.result["redis"] is True
    folder = Path(made.result["location"])
    manifest = read_manifest(folder)
    assert manifest.redis is not None
    assert manifest.redis.source == "replication"
    assert manifest.database is not None
    assert manifest.database.database == postgres_database

    # The streamed snapshot restores like a copied one (Redis stopped, its volume mounted).
    redis_server.stop()
    (redis_server.data_dir / "dump.rdb").unlink(missing_ok=True)
    restored = cli("restore", folder.name, "--what", "redis")
    assert restored.code == 0, restored.result
    redis_server.start()
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.get("traderbot:kill_switch") == b"on"
    finally:
        await client.aclose()


def test_backup_include_redis_false_skips_redis(cli: Cli, trading_database: str) -> None:
    made = cli(env={"BACKUP_INCLUDE_REDIS": "false"}, database_url=trading_database)
    assert made.code == 0, made.result
    assert made.result["redis"] is False
    assert read_manifest(Path(made.result["location"])).redis is None


async def test_restoring_redis_while_it_runs_is_refused(cli: Cli, trading_database: str) -> None:
    made = cli(database_url=trading_database)
    refused = cli("restore", made.result["name"], "--what", "both", database_url=trading_database)
    assert refused.code == 1
    assert "redis is running" in refused.result["error"]


def test_redis_answering_with_a_wrong_password_still_counts_as_running(
    redis_server: RedisServer, redis_url: str
) -> None:
    from trader_api.backup.redis import redis_is_running

    wrong = redis_url.replace(redis_server.password, "wrong-password")
    assert redis_is_running(wrong)
    redis_server.stop()
    assert not redis_is_running(redis_url)
