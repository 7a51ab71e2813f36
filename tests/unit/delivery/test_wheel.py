"""The wheel the images install: it declares the console scripts the images run, and they start.

The Dockerfile's final stages do exactly this: install our wheel and run its
console scripts. Building the wheel here and starting each script from it
(not from the editable install) catches a module left out of the wheel or a
script pointing at a function that does not exist.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from traderbot_operator.desired import build_children
from traderbot_operator.models import TraderBot
from unit.delivery.delivery_tools import REPO_ROOT

PIP_INSTALL = (sys.executable, "-m", "pip", "install", "--no-deps", "--quiet")
IMAGE_ENTRY_POINTS = {
    # console script: what runs it
    "traderbot-operator": "the operator image's ENTRYPOINT",
    "trader-api": "the workload image's ENTRYPOINT",
    "trader-backup": "the backup CronJob and TraderBotBackup Jobs (workload image)",
}


def declared_scripts() -> dict[str, str]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        scripts: dict[str, str] = tomllib.load(handle)["project"].get("scripts", {})
    return scripts


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the project's wheel the way the builder stage does (``pip wheel``)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), "."],
        cwd=REPO_ROOT,
        check=True,
    )
    (built,) = out.glob("traderbot_operator-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the wheel alone into a target folder (its dependencies come from .venv)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [*PIP_INSTALL, "--target", str(target), str(wheel)],
        check=True,
    )
    return target


def wheel_console_scripts(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(name).decode())
    return dict(parser["console_scripts"]) if parser.has_section("console_scripts") else {}


def script_marks(script: str) -> list[pytest.MarkDecorator]:
    if script in declared_scripts():
        return []
    return [pytest.mark.xfail(reason=f"{script} is not declared in pyproject yet", strict=True)]


@pytest.mark.parametrize(
    "script", [pytest.param(s, marks=script_marks(s)) for s in IMAGE_ENTRY_POINTS]
)
def test_wheel_declares_the_console_script_an_image_runs(wheel: Path, script: str) -> None:
    scripts = wheel_console_scripts(wheel)
    assert script in scripts, f"{script} ({IMAGE_ENTRY_POINTS[script]}) missing: {scripts}"


def test_wheel_ships_both_import_packages_and_their_type_markers(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for package in ("traderbot_operator", "trader_api"):
        assert f"{package}/__init__.py" in names
        assert f"{package}/py.typed" in names
    assert not any(name.startswith(("operator/", "tests/")) for name in names)


def test_wheel_carries_no_development_tooling(wheel: Path) -> None:
    """The local control plane, its PKI and the demo stay out of the images (issue 13)."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert not [n for n in names if "testing" in n.split("/") or "devtools" in n], sorted(names)
    assert "traderbot-cluster" not in wheel_console_scripts(wheel)


def wheel_env(installed: Path) -> dict[str, str]:
    # NB: PYTHONPATH puts the wheel's copy ahead of the editable install in .venv;
    # -I is not an option because the dependencies live in .venv.
    return {**os.environ, "PYTHONPATH": str(installed)}


def test_the_wheel_copy_is_what_the_scripts_import(installed: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", "import trader_api, traderbot_operator as o; print(o.__file__)"],
        capture_output=True,
        text=True,
        env=wheel_env(installed),
        check=True,
    )
    assert probe.stdout.strip().startswith(str(installed))


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(s, marks=script_marks(s))
        for s in ("traderbot-operator", "trader-backup", "kubectl-traderbot")
    ],
)
def test_command_line_script_from_the_wheel_prints_its_usage(installed: Path, script: str) -> None:
    executable = installed / "bin" / script
    assert executable.is_file(), f"pip did not create {executable}"
    result = subprocess.run(
        [str(executable), "--help"],
        capture_output=True,
        text=True,
        env=wheel_env(installed),
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage" in (result.stdout + result.stderr).lower()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_trader_api_from_the_wheel_serves_health_and_stops_cleanly_on_sigterm(
    installed: Path,
) -> None:
    """Start the workload image's ENTRYPOINT as the image would (env only, no arguments)."""
    port = free_port()
    env = {
        key: value
        for key, value in wheel_env(installed).items()
        if not key.startswith(("DATABASE_", "REDIS_"))
    }
    env |= {"PORT": str(port), "HOST": "127.0.0.1", "SHUTDOWN_GRACE_SECONDS": "2"}
    process = subprocess.Popen(
        [str(installed / "bin" / "trader-api")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            except httpx.TransportError:
                # Not listening yet: pause by waiting for an early exit instead.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.2)
                continue
            if response.status_code == 200:
                body = response.json()
                break
        assert body is not None, f"no /health within 60 s; exit code {process.poll()}"
        assert body["status"] == "healthy"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output, _ = process.communicate()
    assert output, "trader-api logged nothing"


def operator_cronjob_containers() -> dict[str, dict[str, Any]]:
    """Return the container of each CronJob the operator builds for the minimal example."""
    body = yaml.safe_load((REPO_ROOT / "examples" / "traderbot-minimal.yaml").read_text())
    body["metadata"] |= {"namespace": "trading", "uid": "00000000-0000-4000-8000-000000000002"}
    children = build_children(TraderBot.from_body(body), token=lambda _: "unused")
    containers: dict[str, dict[str, Any]] = {}
    for child in children:
        if child["kind"] == "CronJob":
            pod = child["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            (containers[child["metadata"]["name"]],) = pod["containers"]
    return containers


@pytest.mark.parametrize("cronjob", sorted(operator_cronjob_containers()))
def test_each_operator_cronjob_runs_a_valid_trader_backup_command(
    installed: Path, tmp_path: Path, cronjob: str
) -> None:
    """Run the CronJob's command from the wheel with no database: a failed backup, not bad usage.

    NB: the operator and trader-backup are built by different people; this is
    the one place where the CronJob's command line meets the program's parser.
    """
    container = operator_cronjob_containers()[cronjob]
    argv = [*container.get("command", []), *container.get("args", [])]
    assert argv[0] == "trader-backup"
    env = {**wheel_env(installed), "BACKUP_DIR": str(tmp_path), "BOT_NAME": "alpha"}
    env |= {"DATABASE_HOST": "127.0.0.1", "DATABASE_PORT": str(free_port())}
    env |= {"DATABASE_USER": "trader", "DATABASE_PASSWORD": "unused", "REDIS_HOST": "127.0.0.1"}
    env |= {"REDIS_PORT": str(free_port()), "REDIS_PASSWORD": "unused"}
    result = subprocess.run(
        [str(installed / "bin" / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode != 2, f"usage error: {result.stderr}"
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["ok"] is False  # nothing listens on those ports
