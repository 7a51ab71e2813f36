"""The delivery scripts: shellcheck-clean, and consistent with what they drive.

hack/e2e-kind.sh cannot run here (no Docker); these tests pin down everything
it relies on, so a renamed example, chart or image breaks here, not on a
user's laptop.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unit.delivery.delivery_tools import CHART_DIR, REPO_ROOT

HACK = REPO_ROOT / "hack"
SCRIPTS = sorted(HACK.glob("*.sh"))
E2E = HACK / "e2e-kind.sh"


def assignment(script: Path, name: str) -> str:
    match = re.search(rf"^{name}=(.+)$", script.read_text(), flags=re.MULTILINE)
    assert match, f"{name}= not found in {script.name}"
    return match.group(1).strip('"')


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_script_is_shellcheck_clean_and_executable(shellcheck: Path, script: Path) -> None:
    # -x follows `. hack/lib.sh` (its `source=` path is relative to the repository root).
    result = subprocess.run(
        [str(shellcheck), "--severity=style", "-x", str(script.relative_to(REPO_ROOT))],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    # The shared library is sourced, never run.
    assert os.access(script, os.X_OK) == (script.name != "lib.sh")


def test_shellcheck_does_flag_an_unquoted_variable(shellcheck: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    result = subprocess.run(
        [str(shellcheck), str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "SC2086" in result.stdout


def test_e2e_builds_the_images_the_chart_and_the_crd_expect() -> None:
    text = E2E.read_text()
    assert "--target operator" in text
    assert "--target workload" in text
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert assignment(E2E, "operator_image") == values["image"]["repository"] + ":${version}"
    crd = yaml.safe_load((REPO_ROOT / "crds" / "traderbot.dev_traderbots.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    default_image = spec["properties"]["image"]["default"]
    assert assignment(E2E, "workload_image") == default_image + ":${version}"


def test_e2e_applies_an_example_that_exists_under_the_name_it_waits_for() -> None:
    text = E2E.read_text()
    (example,) = re.findall(r"apply -f (examples/\S+\.yaml)", text)
    body = yaml.safe_load((REPO_ROOT / example).read_text())
    assert body["kind"] == "TraderBot"
    assert body["metadata"]["name"] == assignment(E2E, "bot")
    assert "charts/traderbot-operator" in text
    assert (REPO_ROOT / "charts" / "traderbot-operator" / "Chart.yaml").exists()


def test_e2e_runs_the_suites_cluster_tier_with_the_existing_cluster_option() -> None:
    text = E2E.read_text()
    assert "pytest tests/cluster --use-existing-cluster --kubeconfig" in text
    usage = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/cluster", "--help", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "--use-existing-cluster" in usage
    assert "--kubeconfig" in usage


def test_make_targets_call_the_scripts() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "bash hack/e2e-kind.sh" in makefile
    assert "bash hack/install-tools.sh" in makefile
    assert "bash hack/promtool.sh" in makefile
    # CI runs `make test` on a bare machine: it must build promtool before the tests need it.
    [test_target] = re.findall(r"^test: (.*?) ##", makefile, flags=re.MULTILINE)
    assert "promtool" in test_target.split()


def test_install_tools_check_reports_missing_tools(tmp_path: Path) -> None:
    env = {**os.environ, "TRADERBOT_TOOLS_DIR": str(tmp_path / "empty")}
    result = subprocess.run(
        ["bash", "hack/install-tools.sh", "--check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    for tool in ("hadolint", "checkov", "shellcheck"):
        assert f"missing: {tool}" in result.stderr


def test_system_deps_on_a_bare_machine_would_install_every_tool_the_scripts_and_tests_run(
    tmp_path: Path,
) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "bash").symlink_to(shutil.which("bash") or "/bin/bash")
    result = subprocess.run(
        ["bash", "hack/install-system-deps.sh", "--check"],
        cwd=REPO_ROOT,
        env={"PATH": str(bare)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    (missing,) = re.findall(r"missing: (.*)", result.stderr)
    for package in ("postgresql-client", "redis-server", "redis-tools", "python3-venv", "git"):
        assert package in missing.split()
    for package in ("curl", "unzip"):  # the Go toolchain fetch of hack/k8s-binaries.sh
        assert package in missing.split()
