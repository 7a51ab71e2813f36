"""The Dockerfile: lint-clean, two non-root targets, ports and users the chart and operator expect.

The suite runs no Docker engine, so the image itself is never built here
(``hack/images.sh`` builds and smoke-tests it, docs/images.md); these tests
pin down everything that can be known without building it.
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
IMAGES_SH = REPO_ROOT / "hack" / "images.sh"
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


def shell_assignment(script: Path, name: str) -> str:
    """Return the value of a top-level ``NAME=value`` line of a shell script."""
    match = re.search(rf"^{name}=(\S+)$", script.read_text(), flags=re.MULTILINE)
    assert match, f"{name}= not found in {script.name}"
    return match.group(1).strip('"')


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


def test_base_image_is_debians_own_pinned_by_a_dated_tag_of_the_suite_images_sh_builds() -> None:
    image = global_args()["BASE_IMAGE"]
    match = re.fullmatch(r"debian:([a-z]+)-(\d{8})-slim(@sha256:[0-9a-f]{64})?", image)
    assert match, image
    # hack/images.sh tests this Dockerfile FROM a debootstrap of the same suite.
    assert match.group(1) == shell_assignment(IMAGES_SH, "SUITE")
    stages = parse_stages()
    roots = {stage_lineage(stages, name)[-1].base for name in ("builder", "operator", "workload")}
    assert roots == {"${BASE_IMAGE}"}


def test_python_comes_from_debian_packages_into_a_virtualenv_on_path() -> None:
    """Debian's python3 refuses pip installs (PEP 668) outside a virtualenv."""
    stages = parse_stages()
    python = stages[stages["runtime-base"].base]
    assert python.base == "${BASE_IMAGE}"
    (install,) = python.values("RUN")
    words = install.split()
    assert {"python3", "python3-venv", "--no-install-recommends"} <= set(words)
    assert "python3 -m venv /opt/venv" in install
    (env,) = python.values("ENV")
    assert "PATH=/opt/venv/bin:${PATH}" in env.split()
    assert stages["builder"].base == python.name


def test_no_syntax_directive_so_no_frontend_image_is_pulled() -> None:
    """A `# syntax=` line makes BuildKit pull its frontend image from a registry."""
    for dockerfile in (DOCKERFILE, *sorted((REPO_ROOT / "hack" / "images").glob("*/Dockerfile"))):
        comments = []
        for line in dockerfile.read_text().splitlines():
            if not line.startswith("#"):
                break
            comments.append(line)
        assert not [c for c in comments if re.match(r"#\s*syntax\s*=", c)], dockerfile


def test_the_ca_bundle_for_pip_is_an_optional_secret_of_the_builder_only() -> None:
    """hack/images.sh hands pip the host's CA bundle; a build without it must work unchanged."""
    stages = parse_stages()
    (wheel,) = [run for run in stages["builder"].values("RUN") if "pip wheel" in run]
    assert "--mount=type=secret,id=ca " in wheel
    assert "required" not in wheel
    assert "if [ -f /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi" in wheel
    secrets = {
        name: [run for run in stage.values("RUN") if "type=secret" in run]
        for name, stage in stages.items()
    }
    assert {name for name, runs in secrets.items() if runs} == {"builder"}
    assert "id=ca,src=" in IMAGES_SH.read_text()


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
