"""Redis restore into a persistent Redis (``appendonly yes``), as the operator runs it.

NB: with AOF on, Redis loads its append-only folder at start and ignores ``dump.rdb``
(and starts empty without one), so a restore that only replaced ``dump.rdb`` would
silently keep the live data. These tests start their own Redis with AOF on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from support.backup_data import Cli, CliResult
from support.servers import RedisServer, running_redis


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    """A Redis with the operator's persistence flags (AOF on, RDB saves)."""
    with running_redis(save="900 1", appendonly=True) as server:
        yield server


def _keys(server: RedisServer) -> dict[str, str]:
    client = redis.Redis.from_url(server.url(), decode_responses=True)
    try:
        return {str(key): str(client.get(key)) for key in sorted(client.keys("*"))}
    finally:
        client.close()


def _env(server: RedisServer, **extra: str) -> dict[str, str]:
    return {"REDIS_URL": server.url(), "REDIS_DATA_DIR": str(server.data_dir), **extra}


def _restore_redis(cli: Cli, server: RedisServer, backup: str) -> CliResult:
    """Restore only Redis from ``backup``, as the operator's Job does with persistence on."""
    return cli("restore", backup, "--what", "redis", env=_env(server, REDIS_APPENDONLY="true"))


def test_a_restored_snapshot_is_what_a_persistent_redis_loads_on_start(
    cli: Cli, persistent_redis: RedisServer
) -> None:
    client = redis.Redis.from_url(persistent_redis.url(), decode_responses=True)
    client.set("traderbot:kill_switch", "off")
    client.set("traderbot:strategy:btc-sma", "on")
    backed_up = _keys(persistent_redis)
    made = cli("backup", env=_env(persistent_redis))
    assert made.code == 0, made.result
    # After the backup the live data moves on, and is written to the AOF on shutdown.
    client.set("traderbot:kill_switch", "on")
    client.set("traderbot:written-after-the-backup", "1")
    client.close()
    persistent_redis.stop()
    assert (persistent_redis.data_dir / "appendonlydir").is_dir()

    restored = _restore_redis(cli, persistent_redis, made.result["name"])

    assert restored.code == 0, restored.result
    persistent_redis.start()
    assert _keys(persistent_redis) == backed_up
    # Redis carries on appending to the new AOF: a write after the restore survives a restart.
    client = redis.Redis.from_url(persistent_redis.url(), decode_responses=True)
    client.set("traderbot:after-restore", "kept")
    client.close()
    persistent_redis.stop()
    persistent_redis.start()
    assert _keys(persistent_redis) == {**backed_up, "traderbot:after-restore": "kept"}


def test_a_redis_restore_of_a_running_redis_is_refused_and_touches_nothing(
    cli: Cli, persistent_redis: RedisServer
) -> None:
    client = redis.Redis.from_url(persistent_redis.url(), decode_responses=True)
    client.set("traderbot:kill_switch", "off")
    client.close()
    made = cli("backup", env=_env(persistent_redis))
    assert made.code == 0, made.result
    aof = persistent_redis.data_dir / "appendonlydir"
    before = {p.name: p.stat().st_mtime_ns for p in aof.iterdir()}

    refused = _restore_redis(cli, persistent_redis, made.result["name"])

    assert refused.code == 1
    assert "redis is running" in refused.result["error"]
    assert {p.name: p.stat().st_mtime_ns for p in aof.iterdir()} == before
    assert not list(Path(persistent_redis.data_dir).glob(".appendonlydir*"))


def test_a_redis_6_append_only_file_is_refused_before_anything_is_written(
    cli: Cli, persistent_redis: RedisServer
) -> None:
    made = cli("backup", env=_env(persistent_redis))
    assert made.code == 0, made.result
    persistent_redis.stop()
    legacy = persistent_redis.data_dir / "appendonly.aof"
    legacy.write_bytes(b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n")
    before = sorted(p.name for p in persistent_redis.data_dir.iterdir())

    refused = _restore_redis(cli, persistent_redis, made.result["name"])

    assert refused.code == 1
    assert "Redis 7 or later" in refused.result["error"]
    assert sorted(p.name for p in persistent_redis.data_dir.iterdir()) == before
