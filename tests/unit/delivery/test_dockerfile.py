"""The Dockerfile: lint-clean, two non-root targets, ports and users the chart and operator expect.

No Docker engine runs here, so the image itself is never built in this suite;
these tests pin down everything that can be known without building it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from traderbot_operator.__main__ import parse_args
from traderbot_operator.desired.common import WORKLOAD_UID
from unit.delivery.delivery_tools import CHART_DIR, REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
APP_UID = 10001
WORKLOAD_PORT = 3000
OPERATOR_HEALTH_PORT = 8080
OPERATOR_METRICS_PORT = 9090
COMPILERS = ("gcc", "g++", "clang", "build-essential", "cc1", "make")


@dataclass
class Stage:
    """One FROM ... AS name block and its instructions, in order."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


def parse_stages() -> dict[str, Stage]:
    """Split the Dockerfile into its named stages."""
    parser = DockerfileParser(path=str(DOCKERFILE))
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            base, _, name = value.partition(" AS ")
            current = Stage(name=name.strip(), base=base.strip())
            stages[current.name] = current
        elif current is not None:
            current.instructions.append((instruction, value))
    return stages


def global_args() -> dict[str, str]:
    """Return the ARGs declared before the first FROM, with their defaults."""
    parsed: dict[str, str] = {}
    for item in DockerfileParser(path=str(DOCKERFILE)).structure:
        if item["instruction"] == "FROM":
            break
        if item["instruction"] == "ARG":
            name, _, default = item["value"].partition("=")
            parsed[name] = default
    return parsed


def stage_lineage(stages: dict[str, Stage], name: str) -> list[Stage]:
    """Return a stage and the stages it is built FROM, nearest first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def project_version() -> str:
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        version: str = tomllib.load(handle)["project"]["version"]
    return version


def test_hadolint_finds_nothing_at_warning_level(hadolint: Path) -> None:
    result = subprocess.run(
        [str(hadolint), "--config", str(REPO_ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(hadolint: Path, tmp_path: Path) -> None:
    """Guard the guard: the same config rejects a root, unpinned, cache-keeping image."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install fastapi\nRUN apt-get install curl\n")
    result = subprocess.run(
        [str(hadolint), "--config", str(REPO_ROOT / ".hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3013" in result.stdout  # unpinned pip install


def test_both_image_targets_exist_and_build_from_the_wheel_stage() -> None:
    stages = parse_stages()
    assert {"builder", "operator", "workload"} <= stages.keys()
    assert "pip wheel" in " ".join(stages["builder"].values("RUN"))
    for target, extra in (("operator", "[operator]"), ("workload", "[workload]")):
        installs = [run for run in stages[target].values("RUN") if "pip install" in run]
        assert len(installs) == 1, f"{target}: one pip install from the wheels"
        assert "--no-index" in installs[0]
        assert "from=builder" in installs[0]
        assert f"traderbot-operator{extra}" in installs[0]


def test_base_image_is_pinned_to_an_exact_python_patch_release() -> None:
    image = global_args()["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    stages = parse_stages()
    roots = {stage_lineage(stages, name)[-1].base for name in ("builder", "operator", "workload")}
    assert roots == {"${PYTHON_IMAGE}"}


def test_image_version_defaults_to_the_project_version() -> None:
    stages = parse_stages()
    for target in ("operator", "workload"):
        declared = [v for stage in stage_lineage(stages, target) for v in stage.values("ARG")]
        assert f"VERSION={project_version()}" in declared


@pytest.mark.parametrize(
    ("target", "ports", "entrypoint"),
    [
        ("operator", f"{OPERATOR_HEALTH_PORT} {OPERATOR_METRICS_PORT}", "traderbot-operator"),
        ("workload", str(WORKLOAD_PORT), "trader-api"),
    ],
)
def test_final_stages_run_as_uid_10001_with_their_ports_and_entry_point(
    target: str, ports: str, entrypoint: str
) -> None:
    stage = parse_stages()[target]
    assert stage.values("USER") == [f"{APP_UID}:{APP_UID}"]
    assert stage.values("EXPOSE") == [ports]
    port = ports.split(maxsplit=1)[0]
    assert stage.values("ENTRYPOINT") == [f'["{entrypoint}"]']
    healthchecks = stage.values("HEALTHCHECK")
    assert len(healthchecks) == 1
    assert f"127.0.0.1:{port}/" in healthchecks[0]


def test_the_runtime_user_is_created_with_the_fixed_uid_and_gid() -> None:
    stages = parse_stages()
    runs = " ".join(
        run for stage in stage_lineage(stages, "operator") for run in stage.values("RUN")
    )
    words = shlex.split(runs.replace("${APP_UID}", str(APP_UID)).replace('"', ""))
    assert "useradd" in words
    assert words[words.index("--uid") + 1] == str(APP_UID)
    assert words[words.index("--gid") + 1] == str(APP_UID)
    declared = [v for stage in stage_lineage(stages, "operator") for v in stage.values("ARG")]
    assert f"APP_UID={APP_UID}" in declared


def test_workload_carries_the_backup_clients_and_no_stage_after_builder_a_compiler() -> None:
    stages = parse_stages()
    workload_runs = " ".join(stages["workload"].values("RUN"))
    assert re.search(r"postgresql-client-1[6-9]", workload_runs), "pg_dump >= the server's 16"
    assert "redis-tools" in workload_runs
    assert "--no-install-recommends" in workload_runs
    assert "rm -rf /var/lib/apt/lists/*" in workload_runs
    for target in ("operator", "workload"):
        runs = " ".join(
            run for stage in stage_lineage(stages, target) for run in stage.values("RUN")
        )
        for compiler in COMPILERS:
            assert not re.search(rf"(^|\s){re.escape(compiler)}(\s|$)", runs), (target, compiler)


def test_dockerignore_keeps_the_context_to_what_the_builder_copies() -> None:
    rules = [
        line
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = {
        source.rstrip("/")
        for value in parse_stages()["builder"].values("COPY")
        for source in value.split()[:-1]
    }
    assert copied <= allowed
    assert ".venv" not in allowed
    assert ".git" not in allowed


def test_chart_runs_the_operator_image_on_the_port_and_uid_the_dockerfile_declares() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["image"]["repository"] == "ghcr.io/traderbot-dev/traderbot-operator"
    assert values["metrics"]["port"] == OPERATOR_METRICS_PORT
    assert values["healthPort"] == OPERATOR_HEALTH_PORT
    deployment = (CHART_DIR / "templates" / "deployment.yaml").read_text()
    assert f"runAsUser: {APP_UID}" in deployment
    assert f"runAsGroup: {APP_UID}" in deployment
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["appVersion"] == project_version()


def test_operator_defaults_listen_on_the_ports_the_image_exposes() -> None:
    defaults = parse_args([])
    assert defaults.liveness_port == OPERATOR_HEALTH_PORT
    assert defaults.metrics_port == OPERATOR_METRICS_PORT


def test_operator_builds_workload_pods_for_the_image_uid() -> None:
    assert WORKLOAD_UID == APP_UID


def test_crd_defaults_point_bots_at_the_workload_image_and_port() -> None:
    crd = yaml.safe_load((REPO_ROOT / "crds" / "traderbot.dev_traderbots.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["image"]["default"] == "ghcr.io/traderbot-dev/trader-api"
    assert spec["properties"]["version"]["default"] == project_version()
    assert spec["properties"]["api"]["properties"]["port"]["default"] == WORKLOAD_PORT
