"""The Dockerfile's two pip steps, run here without Docker: wheelhouse, then an offline install.

The builder stage runs ``pip wheel .[operator,workload]``; each final stage
runs ``pip install --no-index --find-links=/wheels traderbot-operator[extra]``
in an image without a compiler. This reproduces both steps on this machine
(with its Python; the images have Debian's python3, and ``hack/images.sh``
runs these steps there) into a fresh, isolated virtualenv, which is what
can break an image build: a dependency without a binary wheel (the final
stages have no compiler), an extra that pulls in the wrong packages, a
console script that needs a package the extra does not install.
"""

from __future__ import annotations

import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from unit.delivery.delivery_tools import REPO_ROOT

PROJECT = "traderbot-operator"
PIP = (sys.executable, "-m", "pip")
VERSION_ARG = re.compile(r"^ARG VERSION=(\S+)$", flags=re.MULTILINE)


def image_version() -> str:
    versions: set[str] = set(VERSION_ARG.findall((REPO_ROOT / "Dockerfile").read_text()))
    (version,) = versions
    return version


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the builder stage's command: every wheel both final stages need."""
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [*PIP, "wheel", "--quiet", "--wheel-dir", str(wheels), ".[operator,workload]"],
        cwd=REPO_ROOT,
        check=True,
        timeout=280,
    )
    return wheels


def install_offline(wheelhouse: Path, target: Path, extra: str) -> Path:
    """Run a final stage's command into a fresh virtualenv; return its bin folder."""
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    requirement = f"{PROJECT}[{extra}]=={image_version()}"
    offline = ("--no-index", "--find-links", str(wheelhouse))
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *offline, requirement],
        check=True,
        timeout=280,
    )
    return target / "bin"


def installed_distributions(bin_dir: Path) -> set[str]:
    listing = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("==")[0].lower() for line in listing.splitlines() if "==" in line}


def test_every_wheel_is_pure_or_a_published_binary_so_no_stage_needs_a_compiler(
    wheelhouse: Path,
) -> None:
    wheels = sorted(wheelhouse.glob("*.whl"))
    assert len(wheels) > 10
    built_from_source = []
    for wheel in wheels:
        _name, _version, _build, tags = parse_wheel_filename(wheel.name)
        platforms = {tag.platform for tag in tags}
        # A wheel pip compiled here is tagged plain linux_*; published ones are manylinux/any.
        if any(p.startswith("linux_") for p in platforms):
            built_from_source.append(wheel.name)
    assert not built_from_source, f"would need a compiler in the builder: {built_from_source}"


def test_operator_stage_installs_offline_without_the_workloads_dependencies(
    wheelhouse: Path, tmp_path: Path
) -> None:
    bin_dir = install_offline(wheelhouse, tmp_path / "operator", "operator")
    installed = installed_distributions(bin_dir)
    assert {"kopf", "lightkube", PROJECT} <= installed
    assert not {"fastapi", "asyncpg", "uvicorn"} & installed
    result = subprocess.run(
        [str(bin_dir / "traderbot-operator"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--liveness-port" in result.stdout
    # `kubectl traderbot` needs nothing beyond the operator extra (docs/plugin.md installs that).
    plugin = subprocess.run(
        [str(bin_dir / "kubectl-traderbot"), "status", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plugin.returncode == 0, plugin.stderr
    assert "--namespace" in plugin.stdout


def test_workload_stage_installs_offline_and_its_programs_import(
    wheelhouse: Path, tmp_path: Path
) -> None:
    bin_dir = install_offline(wheelhouse, tmp_path / "workload", "workload")
    installed = installed_distributions(bin_dir)
    assert {"fastapi", "uvicorn", "asyncpg", "redis", PROJECT} <= installed
    assert not {"kopf", "lightkube"} & installed
    result = subprocess.run(
        [str(bin_dir / "trader-backup"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # trader-api takes no arguments (the environment configures it): import its entry point.
    probe = subprocess.run(
        [str(bin_dir / "python"), "-I", "-c", "from trader_api.__main__ import main"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
