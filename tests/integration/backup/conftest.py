"""Fixtures for ``trader-backup``: a bot's database with data, its Redis, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.backup_data import Cli, CliResult, write_trading_data
from support.servers import PostgresServer, RedisServer


@pytest.fixture
async def trading_database(postgres_url: str) -> str:
    """The URL of a migrated database holding klines, orders, fills and positions."""
    await write_trading_data(postgres_url)
    return postgres_url


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def cli(
    backup_dir: Path, postgres_server: PostgresServer, redis_server: RedisServer, redis_url: str
) -> Cli:
    """Run ``trader-backup`` as the operator's Job would: a process, env, one JSON line out."""

    def run(
        *args: str, database_url: str | None = None, env: dict[str, str] | None = None
    ) -> CliResult:
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))
        }
        environment.update(
            {
                "BACKUP_DIR": str(backup_dir),
                "BOT_NAME": "demo",
                "REDIS_URL": redis_url,
                "REDIS_DATA_DIR": str(redis_server.data_dir),
            }
        )
        if database_url is not None:
            environment["DATABASE_URL"] = database_url
        environment.update(env or {})
        environment = {k: v for k, v in environment.items() if v}  # "" means unset
        proc = subprocess.run(
            [sys.executable, "-m", "trader_api.backup", *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        assert len(lines) == 1, f"expected one JSON line, got {proc.stdout!r} ({proc.stderr})"
        return CliResult(proc.returncode, json.loads(lines[0]), proc.stdout, proc.stderr)

    return run
