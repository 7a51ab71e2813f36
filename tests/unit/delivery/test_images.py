"""hack/images.sh and hack/images/: the contract the operator's manifests rely on.

The suite runs no Docker engine: ``hack/images.sh`` builds and smoke-tests the
images (docs/images.md). These tests pin down, without building, what ties the
images to the rest of the project: the UIDs, mounts, commands and probes the
operator's builders use, the refs the e2e tier and the real node read from the
list, and an engine that leaves the host's network alone.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from traderbot_devtools.localcluster import DEFAULT_SANDBOX_IMAGE
from traderbot_operator.desired.api import build_api_deployment
from traderbot_operator.desired.database import (
    DATA_MOUNT,
    POSTGRES_UID,
    build_database_statefulset,
)
from traderbot_operator.desired.redis import REDIS_UID, build_redis_statefulset
from unit.delivery.delivery_tools import REPO_ROOT
from unit.operator.bots import bot

IMAGES_SH = REPO_ROOT / "hack" / "images.sh"
IMAGES_DIR = REPO_ROOT / "hack" / "images"
IMAGE_DOCKERFILES = sorted(IMAGES_DIR.glob("*/Dockerfile"))
NEVER_READY = IMAGES_DIR / "trader-api-never-ready" / "never_ready.py"
# The names the e2e tier and the real node read from the list.
LISTED_NAMES = {
    "operator",
    "workload",
    "workload-next",
    "workload-never-ready",
    "postgres",
    "redis",
    "pause",
}


def instructions(dockerfile: Path, name: str) -> list[str]:
    return [
        item["value"]
        for item in DockerfileParser(path=str(dockerfile)).structure
        if item["instruction"] == name
    ]


def shell_assignment(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", IMAGES_SH.read_text(), flags=re.MULTILINE)
    assert match, f"{name}= not found in {IMAGES_SH.name}"
    return match.group(1)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def run_images_sh(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(IMAGES_SH), *args],
        env={**os.environ, "TRADERBOT_IMAGES_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def listed(output: str) -> dict[str, dict[str, str]]:
    """Parse list lines (``key=value`` words) by their name."""
    entries = {}
    for line in output.splitlines():
        words = dict(word.split("=", 1) for word in line.split())
        entries[words["name"]] = words
    return entries


def project_version() -> str:
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version = "(.+)"$', pyproject, flags=re.MULTILINE)
    assert match
    return match.group(1)


@pytest.mark.parametrize("dockerfile", IMAGE_DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_dockerfile_is_hadolint_clean(hadolint: Path, dockerfile: Path) -> None:
    result = subprocess.run(
        [str(hadolint), "--config", str(REPO_ROOT / ".hadolint.yaml"), str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_postgres_image_runs_as_the_uid_and_with_the_data_the_statefulset_expects() -> None:
    dockerfile = IMAGES_DIR / "postgres" / "Dockerfile"
    assert instructions(dockerfile, "USER") == [f"{POSTGRES_UID}:{POSTGRES_UID}"]
    runs = " ".join(instructions(dockerfile, "RUN"))
    assert f"--gid {POSTGRES_UID} postgres" in runs
    assert f"--uid {POSTGRES_UID} --gid {POSTGRES_UID}" in runs
    assert instructions(dockerfile, "VOLUME") == [DATA_MOUNT]
    assert instructions(dockerfile, "CMD") == ['["postgres"]']
    assert f"PG_MAJOR={shell_assignment('POSTGRES_MAJOR')}" in instructions(dockerfile, "ARG")
    # The StatefulSet puts PGDATA below the mount point, where UID 70 may create it.
    sts = build_database_statefulset(bot())
    db = container(sts)
    env = {item["name"]: item.get("value") for item in db["env"]}
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PGDATA"} <= env.keys()
    assert Path(env["PGDATA"]).parent == Path(DATA_MOUNT)
    assert db["volumeMounts"] == [{"name": "data", "mountPath": DATA_MOUNT}]
    assert "command" not in db, "the image's entrypoint must run (initdb on first start)"
    probe = db["readinessProbe"]["exec"]["command"]
    assert probe[:2] == ["sh", "-c"]
    assert probe[2].startswith("pg_isready ")
    assert sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == POSTGRES_UID


def test_postgres_entrypoint_is_executable_and_shellcheck_clean(shellcheck: Path) -> None:
    entrypoint = IMAGES_DIR / "postgres" / "entrypoint.sh"
    assert os.access(entrypoint, os.X_OK)
    result = subprocess.run(
        [str(shellcheck), "--severity=style", str(entrypoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout
    text = entrypoint.read_text()
    assert "host all all all %s" in text
    assert "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" in text
    assert "/docker-entrypoint-initdb.d/*" in text


def test_redis_image_runs_as_the_uid_and_has_what_the_statefulset_runs() -> None:
    dockerfile = IMAGES_DIR / "redis" / "Dockerfile"
    assert instructions(dockerfile, "USER") == [f"{REDIS_UID}:{REDIS_UID}"]
    assert instructions(dockerfile, "VOLUME") == ["/data"]
    assert f"REDIS_MAJOR={shell_assignment('REDIS_MAJOR')}" in instructions(dockerfile, "ARG")
    redis = container(build_redis_statefulset(bot()))
    assert redis["command"] == ["redis-server"]
    assert {"name": "data", "mountPath": "/data"} in redis["volumeMounts"]
    probe = redis["readinessProbe"]["exec"]["command"]
    assert probe == ["sh", "-c", "redis-cli -p 6379 ping | grep -q PONG"]
    # redis-server and redis-cli come with the package; sh and grep are in every Debian base.
    assert "redis-server" in " ".join(instructions(dockerfile, "RUN"))


def test_never_ready_image_shadows_the_command_the_deployment_runs() -> None:
    """The Deployment runs the command `trader-api`: a new ENTRYPOINT alone would be ignored."""
    assert container(build_api_deployment(bot()))["command"] == ["trader-api"]
    dockerfile = IMAGES_DIR / "trader-api-never-ready" / "Dockerfile"
    (copy,) = instructions(dockerfile, "COPY")
    source, target = copy.split()
    assert source == NEVER_READY.name
    (env,) = instructions(dockerfile, "ENV")
    assert env == f"PATH={Path(target).parent}:${{PATH}}"
    assert Path(target).name == "trader-api"
    assert instructions(dockerfile, "USER") == ["10001:10001"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


def test_never_ready_program_is_live_never_ready_and_stops_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(NEVER_READY)],
        env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert status_of(f"http://127.0.0.1:{port}/health") == 200
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline, "never listened"
                time.sleep(0.1)
        assert status_of(f"http://127.0.0.1:{port}/health/ready") == 503
        assert status_of(f"http://127.0.0.1:{port}/metrics") == 503
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


def test_list_names_every_image_the_e2e_tier_and_the_real_node_read(tmp_path: Path) -> None:
    result = run_images_sh("--list", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    entries = listed(result.stdout)
    assert set(entries) == LISTED_NAMES
    prefix = "traderbot.local/"
    assert all(entry["ref"].startswith(prefix) for entry in entries.values())
    assert all(entry["archive"].startswith(f"{tmp_path}/archives/") for entry in entries.values())
    version = project_version()
    assert entries["operator"]["ref"] == f"{prefix}traderbot-operator:{version}"
    assert entries["pause"]["ref"] == DEFAULT_SANDBOX_IMAGE
    # A TraderBot names the repository (spec.image) and the tag (spec.version) apart.
    crd = yaml.safe_load((REPO_ROOT / "crds" / "traderbot.dev_traderbots.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    tag_pattern = spec["properties"]["version"]["pattern"]
    workloads = [entries[n]["ref"] for n in ("workload", "workload-next", "workload-never-ready")]
    repositories = {ref.rsplit(":", 1)[0] for ref in workloads}
    assert repositories == {f"{prefix}trader-api"}
    tags = [ref.rsplit(":", 1)[1] for ref in workloads]
    assert tags[0] == version
    assert len(set(tags)) == 3
    assert all(re.fullmatch(tag_pattern, tag) for tag in tags)
    # pg_dump 17 in the workload image dumps the test database's major.
    assert entries["postgres"]["ref"] == f"{prefix}postgres:17"


def test_check_fails_until_every_archive_of_the_list_is_saved(tmp_path: Path) -> None:
    result = run_images_sh("--check", cache=tmp_path)
    assert result.returncode == 1
    for name in LISTED_NAMES:
        assert f"missing: {name} " in result.stderr
    # Lay out what a build leaves: each archive and its "ref id" lines.
    entries = listed(run_images_sh("--list", cache=tmp_path).stdout)
    stamps: dict[Path, list[str]] = {}
    for entry in entries.values():
        stamps.setdefault(Path(entry["archive"]), []).append(f"{entry['ref']} sha256:{'0' * 64}")
    for archive, lines in stamps.items():
        archive.parent.mkdir(parents=True, exist_ok=True)
        archive.write_bytes(b"")
        Path(f"{archive}.ids").write_text("\n".join(lines) + "\n")
    assert run_images_sh("--check", cache=tmp_path).returncode == 0
    Path(f"{entries['pause']['archive']}").unlink()
    result = run_images_sh("--check", cache=tmp_path)
    assert result.returncode == 1
    assert "missing: pause " in result.stderr
    assert run_images_sh("--check", "redis", cache=tmp_path).returncode == 0


def test_print_dir_names_the_archive_folder_of_the_cache(tmp_path: Path) -> None:
    result = run_images_sh("--print-dir", cache=tmp_path)
    assert result.stdout.strip() == str(tmp_path / "archives")


def test_engine_changes_nothing_of_the_hosts_network_and_uses_debians_client() -> None:
    text = IMAGES_SH.read_text()
    for flag in (
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-forward=false",
        "--ip-masq=false",
    ):
        assert flag in text
    assert 'docker_cli() { /usr/bin/docker "$@"; }' in text
    # Every other call goes through docker_cli (or names /usr/bin/docker).
    bare = r"(^|[\s(|])docker (build|run|save|import|tag|exec)\b"
    assert not re.search(bare, text, flags=re.MULTILINE)
    # Containers started here have no network; builds use the host's (for the registries).
    runs = re.findall(r"docker_cli run [^\n]*", text)
    assert runs
    assert all("--network none" in run for run in runs), runs
    builds = re.findall(r"docker_cli build [^\n]*", text)
    assert builds
    assert all("--network host" in build for build in builds), builds
