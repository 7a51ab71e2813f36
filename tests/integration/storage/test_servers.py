"""The test servers themselves: real, isolated, restartable, and never left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from support.servers import PostgresServer, RedisServer, server_root


async def test_postgres_url_reaches_a_fresh_database_with_a_password(
    postgres_url: str, postgres_database: str
) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT current_database()") == postgres_database
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await conn.close()


async def test_postgres_refuses_a_wrong_password(postgres_server: PostgresServer) -> None:
    wrong = postgres_server.url().replace(postgres_server.password, "not-the-password")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(wrong)


def test_postgres_runs_as_the_unprivileged_postgres_user(postgres_server: PostgresServer) -> None:
    assert postgres_server.process is not None
    status = Path(f"/proc/{postgres_server.process.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert int(uid_line.split()[1]) != 0


async def test_postgres_can_be_stopped_and_started_mid_test(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    conn = await asyncpg.connect(postgres_url)
    await conn.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
    await conn.close()

    postgres_server.stop()
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(postgres_url)

    postgres_server.start()
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT v FROM kept") == 42
    finally:
        await conn.close()


async def test_redis_url_needs_the_password_and_starts_empty(
    redis_server: RedisServer, redis_url: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.dbsize() == 0
        await client.set("leftover", "1")  # the next test must not see it
    finally:
        await client.aclose()
    anonymous = aioredis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        with pytest.raises(redis.exceptions.AuthenticationError):
            await anonymous.ping()
    finally:
        await anonymous.aclose()


async def test_redis_is_flushed_between_tests(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.get("leftover") is None
    finally:
        await client.aclose()


async def test_redis_can_be_stopped_and_started_mid_test(
    redis_server: RedisServer, redis_url: str
) -> None:
    redis_server.stop()
    client = aioredis.Redis.from_url(redis_url)
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.ping()
        redis_server.start()
        assert await client.ping() is True
    finally:
        await client.aclose()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    # A zombie is dead; only its parent's reaping is missing.
    return stat.exists() and stat.read_text().split(") ", 1)[1][0] != "Z"


def test_servers_die_with_a_crashed_test_process() -> None:
    """A SIGKILLed pytest must not leave servers behind (PR_SET_PDEATHSIG)."""
    with server_root("crash") as root:
        _assert_servers_die_with_their_parent(root)


def _assert_servers_die_with_their_parent(root: Path) -> None:
    tests_dir = Path(__file__).parents[2]
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(tests_dir)!r})
        from support.servers import PostgresServer, RedisServer
        from pathlib import Path
        root = Path({str(root)!r})
        (root / "pg").mkdir(); (root / "redis").mkdir()
        pg = PostgresServer(root=root / "pg"); pg.start()
        rd = RedisServer(root=root / "redis"); rd.start()
        print(pg.process.pid, rd.process.pid, flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    pids = [int(pid) for pid in child.stdout.readline().split()]
    assert len(pids) == 2
    assert all(_process_exists(pid) for pid in pids)

    child.send_signal(signal.SIGKILL)
    child.wait()

    deadline = time.monotonic() + 15
    while any(_process_exists(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_process_exists(pid) for pid in pids)
