"""The ``trader-api`` console entry: a bad configuration or an absent database fails fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support.servers import free_port


def run_trader_api(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trader_api"],
        env={**os.environ, "HOST": "127.0.0.1", "PORT": str(free_port()), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def json_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_an_invalid_setting_exits_2_naming_it() -> None:
    result = run_trader_api({"LOG_LEVEL": "loud"})
    assert result.returncode == 2
    (record,) = [r for r in json_lines(result.stdout) if r["level"] == "ERROR"]
    assert "Invalid configuration" in str(record["message"])
    assert "unknown log level 'loud'" in str(record["message"])


def test_an_unreachable_database_exits_3_after_the_connect_timeout() -> None:
    closed_port = free_port()
    result = run_trader_api(
        {
            "DATABASE_URL": f"postgresql://trader:x@127.0.0.1:{closed_port}/trader",
            "DATABASE_CONNECT_TIMEOUT_SECONDS": "1",
        }
    )
    assert result.returncode == 3
    messages = [str(r["message"]) for r in json_lines(result.stdout)]
    assert any(m.startswith("Database not reachable yet; retrying") for m in messages)
    assert any(m.startswith("Cannot start: database unreachable") for m in messages)
