"""``trader-backup import``: the docker-compose era's backups, made by the seed's own script.

The files come from the seed's ``scripts/backup.sh`` (docs: /work/shared/seed,
"자동 백업 스크립트"), run by bash against real servers; only what reaches the
servers is adapted: ``docker compose exec timescaledb`` and ``docker compose exec
redis`` become PGHOST/PGPORT/PGPASSWORD and ``-h/-p`` with REDISCLI_AUTH,
``docker compose cp redis:/data/dump.rdb`` a ``cp`` from the throwaway Redis's data
folder, and ``-d trader`` the test's own database (owned by a role ``trader``, as
in compose). Then the import runs as the bot's own, non-superuser role, the
backup is restored into a fresh database and a fresh Redis, and both are
compared row for row and key for key with what the seed backed up.
"""

from __future__ import annotations

import gzip
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from support.backup_data import Cli, snapshot_rows, write_trading_data
from support.servers import PostgresServer, RedisServer, running_redis
from trader_api.backup.manifest import read_manifest

# The seed's scripts/backup.sh, word for word but for the adaptations named above.
SEED_BACKUP_SH = r"""
set -e

BACKUP_DIR="$SEED_BACKUP_DIR"
DATE=$(date +%Y%m%d_%H%M%S)

# 백업 디렉토리 생성
mkdir -p $BACKUP_DIR

# PostgreSQL 백업
pg_dump -U trader -d "$SEED_DATABASE" | gzip > $BACKUP_DIR/db_$DATE.sql.gz

# Redis 백업
redis-cli -h 127.0.0.1 -p "$SEED_REDIS_PORT" BGSAVE
sleep 5
cp "$SEED_REDIS_DATA"/dump.rdb $BACKUP_DIR/redis_$DATE.rdb

echo "Backup completed: $DATE"
"""


@dataclass(frozen=True)
class Roles:
    """The compose role (``trader``) and the bot's role, with their passwords."""

    trader_password: str
    bot: str
    bot_password: str


@pytest.fixture(scope="module")
def roles(postgres_server: PostgresServer) -> Iterator[Roles]:
    """Create ``trader`` (the compose role) and a bot role that may only create databases."""
    made = Roles(
        trader_password=secrets.token_hex(12),
        bot=f"bot_{secrets.token_hex(4)}",
        bot_password=secrets.token_hex(12),
    )
    postgres_server.start()
    postgres_server.psql(f"CREATE ROLE trader LOGIN PASSWORD '{made.trader_password}'")
    postgres_server.psql(f"CREATE ROLE {made.bot} LOGIN CREATEDB PASSWORD '{made.bot_password}'")
    yield made
    postgres_server.start()
    for role in ("trader", made.bot):
        for database in postgres_server.psql(
            f"SELECT datname FROM pg_database WHERE datdba = '{role}'::regrole"  # noqa: S608  # our own role names
        ).split():
            postgres_server.drop_database(database)
        postgres_server.psql(f"DROP ROLE {role}")


def _url(server: PostgresServer, *, user: str, password: str, database: str) -> str:
    return f"postgresql://{user}:{password}@127.0.0.1:{server.port}/{database}"


@pytest.fixture
async def compose_database(postgres_server: PostgresServer, roles: Roles) -> str:
    """The compose database: owned by ``trader``, filled by trader-api's store. Its name."""
    name = f"trader_{secrets.token_hex(4)}"
    postgres_server.psql(f"CREATE DATABASE {name} OWNER trader")
    await write_trading_data(
        _url(postgres_server, user="trader", password=roles.trader_password, database=name)
    )
    return name


@pytest.fixture
def bot_database(postgres_server: PostgresServer, roles: Roles) -> str:
    """The bot's fresh, empty database, owned by the bot's role. Its URL."""
    name = f"bot_{secrets.token_hex(4)}"
    postgres_server.psql(f"CREATE DATABASE {name} OWNER {roles.bot}")
    return _url(postgres_server, user=roles.bot, password=roles.bot_password, database=name)


def _fill_redis(url: str) -> None:
    """Keys of every kind the engine keeps, one with a TTL."""
    client = redis.Redis.from_url(url)
    try:
        client.set("traderbot:kill_switch", "off")
        client.hset("traderbot:strategies", mapping={"btc-sma": "on", "eth-rsi": "off"})
        client.rpush("traderbot:events", "started", "filled", "stopped")
        client.sadd("traderbot:symbols", "BTCUSDT", "ETHUSDT")
        client.zadd("traderbot:pnl", {"btc-sma": 12.5, "eth-rsi": -3.25})
        client.set("traderbot:session", "abc", ex=3600)
    finally:
        client.close()


def redis_contents(url: str) -> dict[str, tuple[str, Any, bool]]:
    """Every key with its type, value and whether it expires: for key-by-key comparison."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        contents: dict[str, tuple[str, Any, bool]] = {}
        for key in sorted(str(k) for k in client.scan_iter()):
            kind = str(client.type(key))
            readers: dict[str, Any] = {
                "string": client.get,
                "hash": client.hgetall,
                "list": lambda k: client.lrange(k, 0, -1),
                "set": lambda k: sorted(client.smembers(k)),
                "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
            }
            contents[key] = (kind, readers[kind](key), client.ttl(key) > 0)
        return contents
    finally:
        client.close()


def run_seed_backup(
    *, server: PostgresServer, roles: Roles, database: str, source: RedisServer, into: Path
) -> tuple[Path, Path]:
    """Run the seed's backup script; return its ``db_<DATE>.sql.gz`` and ``redis_<DATE>.rdb``."""
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(server.port),
        "PGPASSWORD": roles.trader_password,
        "REDISCLI_AUTH": source.password,
        "SEED_BACKUP_DIR": str(into),
        "SEED_DATABASE": database,
        "SEED_REDIS_PORT": str(source.port),
        "SEED_REDIS_DATA": str(source.data_dir),
    }
    proc = subprocess.run(
        ["bash", "-c", SEED_BACKUP_SH],  # the seed's script runs under bash
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("Backup completed: ")
    (sql_gz,) = into.glob("db_*.sql.gz")
    (rdb,) = into.glob("redis_*.rdb")
    return sql_gz, rdb


@pytest.fixture
def seed_files(
    *,
    postgres_server: PostgresServer,
    roles: Roles,
    compose_database: str,
    redis_server: RedisServer,
    redis_url: str,
    tmp_path: Path,
) -> tuple[Path, Path]:
    """The seed's backup files of a filled compose database and Redis."""
    _fill_redis(redis_url)
    return run_seed_backup(
        server=postgres_server,
        roles=roles,
        database=compose_database,
        source=redis_server,
        into=tmp_path / "var-backups-trader",
    )


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _import(cli: Cli, bot_url: str, *args: str) -> Any:
    return cli("import", *args, database_url=bot_url)


def _scratch_databases(server: PostgresServer) -> list[str]:
    query = "SELECT datname FROM pg_database WHERE datname LIKE '%\\_import\\_%'"
    return server.psql(query).split()


async def test_the_seeds_backups_import_and_restore_row_for_row_and_key_for_key(
    *,
    cli: Cli,
    postgres_server: PostgresServer,
    roles: Roles,
    compose_database: str,
    bot_database: str,
    seed_files: tuple[Path, Path],
    redis_url: str,
    backup_dir: Path,
) -> None:
    sql_gz, rdb = seed_files
    compose_url = _url(
        postgres_server, user="trader", password=roles.trader_password, database=compose_database
    )
    rows_before = await snapshot_rows(compose_url)
    keys_before = redis_contents(redis_url)
    assert all(rows_before.values())  # every table has rows to compare
    assert len(keys_before) == 6
    assert b"OWNER TO trader;" in gzip.decompress(sql_gz.read_bytes())  # the compose role

    imported = _import(cli, bot_database, "--sql-gz", str(sql_gz), "--redis-rdb", str(rdb))

    assert imported.code == 0, imported.result
    result = imported.result
    assert result["tables"] == {table: len(rows) for table, rows in rows_before.items()}
    folder = Path(result["location"])
    assert folder.parent == backup_dir
    assert _names(backup_dir) == [folder.name]  # no staging folder left over
    assert _names(folder) == ["database.dump", "manifest.json", "redis.rdb"]
    manifest = read_manifest(folder)
    assert manifest.origin is not None
    assert manifest.origin.sql_gz is not None
    assert manifest.origin.sql_gz.file == sql_gz.name
    assert manifest.origin.rdb_checksum is True
    assert (manifest.origin.redis_version or "").startswith("7.")  # from the RDB's aux fields
    assert manifest.redis is not None
    assert manifest.redis.source == "imported"
    assert _scratch_databases(postgres_server) == []

    verified = cli("verify", folder.name, database_url=bot_database)
    assert verified.code == 0, verified.result

    with running_redis(save="900 1", appendonly=True) as fresh_redis:
        fresh_redis.stop()
        restored = cli(
            "restore",
            folder.name,
            "--what",
            "both",
            database_url=bot_database,
            env={
                "REDIS_URL": fresh_redis.url(),
                "REDIS_DATA_DIR": str(fresh_redis.data_dir),
                "REDIS_APPENDONLY": "true",
            },
        )
        assert restored.code == 0, restored.result
        fresh_redis.start()
        assert redis_contents(fresh_redis.url()) == keys_before
    assert await snapshot_rows(bot_database) == rows_before


async def test_an_import_restores_over_a_bot_that_already_has_data(
    cli: Cli, seed_files: tuple[Path, Path], trading_database: str, postgres_server: PostgresServer
) -> None:
    """The usual case: the bot ran (migrated, wrote rows) before the compose data came."""
    sql_gz, _ = seed_files
    conn = await asyncpg.connect(trading_database)
    await conn.execute("DELETE FROM klines WHERE symbol = 'BTCUSDT'")
    await conn.close()
    expected = {table: len(rows) for table, rows in (await snapshot_rows(trading_database)).items()}

    imported = _import(cli, trading_database, "--sql-gz", str(sql_gz), "--name", "compose-seed")
    restored = cli("restore", "compose-seed", database_url=trading_database)

    assert imported.code == 0, imported.result
    assert restored.code == 0, restored.result
    after = {t: len(r) for t, r in (await snapshot_rows(trading_database)).items()}
    assert after == imported.result["tables"]
    assert after["klines"] == 350 != expected["klines"]


def _pg_dump_died(data: bytes) -> bytes:
    """``pg_dump | gzip`` gives a whole gzip stream even when pg_dump dies half-way."""
    lines = gzip.decompress(data).splitlines(keepends=True)
    return gzip.compress(b"".join(lines[: len(lines) * 2 // 3]))


def _does_not_load(data: bytes) -> bytes:
    text = gzip.decompress(data)
    return gzip.compress(text.replace(b"CREATE TABLE public.fills", b"CREATE TABLE a.b.c", 1))


def _flip_a_byte(data: bytes) -> bytes:
    return data[:200] + bytes([data[200] ^ 0xFF]) + data[201:]


@pytest.mark.parametrize(
    ("damaged", "damage", "why"),
    [
        ("sql", lambda data: data[: len(data) // 2], "truncated: the gzip stream ends early"),
        ("sql", _pg_dump_died, "incomplete pg_dump"),
        ("sql", lambda _: gzip.compress(b"CREATE TABLE t (id int);\n"), "not a pg_dump plain"),
        ("sql", lambda _: b"-- PostgreSQL database dump\n", "not a gzip file"),
        ("sql", _does_not_load, "loading the SQL dump failed"),
        ("rdb", lambda data: data[: len(data) - 100], "truncated or corrupt"),
        ("rdb", _flip_a_byte, "is corrupt: CRC-64"),
        ("rdb", lambda data: b"RADIS" + data[5:], "not a Redis RDB file"),
        ("rdb", lambda data: data[:9], "truncated"),
    ],
    ids=[
        "sql-cut",
        "sql-pg-dump-died",
        "sql-hand-written",
        "sql-not-gzip",
        "sql-does-not-load",
        "rdb-cut",
        "rdb-flipped-byte",
        "rdb-bad-magic",
        "rdb-header-only",
    ],
)
def test_a_damaged_file_is_refused_and_nothing_is_left(
    *,
    cli: Cli,
    bot_database: str,
    seed_files: tuple[Path, Path],
    backup_dir: Path,
    postgres_server: PostgresServer,
    tmp_path: Path,
    damaged: str,
    damage: Callable[[bytes], bytes],
    why: str,
) -> None:
    """One damaged file (the other one intact): one line saying why, no folder, no scratch db."""
    sql_gz, rdb = seed_files
    original = sql_gz if damaged == "sql" else rdb
    broken = tmp_path / f"damaged-{original.name}"
    broken.write_bytes(damage(original.read_bytes()))
    if damaged == "sql":
        sql_gz = broken
    else:
        rdb = broken

    result = _import(cli, bot_database, "--sql-gz", str(sql_gz), "--redis-rdb", str(rdb))

    assert result.code == 1, result.result
    assert result.result["ok"] is False
    assert why in result.result["error"]
    assert "\n" not in result.result["error"]
    assert not backup_dir.exists() or _names(backup_dir) == []
    assert _scratch_databases(postgres_server) == []
