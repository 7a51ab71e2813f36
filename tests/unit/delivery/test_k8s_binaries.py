"""hack/k8s-binaries.sh on a machine without Go, and its per-binary cache reuse.

Fetching the toolchain needs the network, so these tests stop at the plan
(``--print-go``): which Go, from which URL, checked against which SHA-256,
unpacked where. The fetch itself was run by hand on this machine with Go
hidden from PATH (docs/local-cluster.md has the figures).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from traderbot_devtools.binaries import KUBERNETES_VERSION, VERSION_TAG
from unit.delivery.delivery_tools import REPO_ROOT, Helm

SCRIPT = REPO_ROOT / "hack" / "k8s-binaries.sh"
# What the script runs besides bash builtins (coreutils on any Debian).
BASE_TOOLS = (
    "bash", "dirname", "basename", "cut", "uname", "sed",
    "mktemp", "sha256sum", "flock", "mkdir", "ln", "cp",
)  # fmt: skip
BINARIES = (
    "kube-apiserver",
    "etcd",
    "kwok",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "helm",
    "kubelet",
    "kube-proxy",
    "coredns",
)


def script_value(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)$", SCRIPT.read_text(), flags=re.MULTILINE)
    assert match, f"{name}= not found in {SCRIPT.name}"
    return match.group(1)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@pytest.fixture
def bare_path(tmp_path: Path) -> Path:
    """A PATH folder with the base tools and no Go."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for tool in BASE_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is not installed"
        (folder / tool).symlink_to(found)
    return folder


def run_script(
    *args: str, path: Path, cache: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": str(path),
        "HOME": str(cache.parent),
        "XDG_CACHE_HOME": str(cache),
        **(extra_env or {}),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def go_plan(path: Path, cache: Path, **env: str) -> dict[str, str]:
    result = run_script("--print-go", path=path, cache=cache, extra_env=env)
    assert result.returncode == 0, result.stderr
    return dict(line.split("=", 1) for line in result.stdout.splitlines())


def fake_go(folder: Path, version: str) -> None:
    """Put a fake `go` that only answers `go version` (no old Go is installed here)."""
    go = folder / "go"
    go.write_text(f'#!/bin/sh\necho "go version go{version} linux/amd64"\n')
    go.chmod(0o755)


def test_pinned_go_is_new_enough_for_every_wrapper_module() -> None:
    pinned = version_tuple(script_value("GO_VERSION"))
    wrappers = [*(REPO_ROOT / "hack" / "k8s-build").glob("*/go.mod")]
    # hack/promtool.sh builds its wrapper with the Go k8s-binaries.sh plans too.
    wrappers.append(REPO_ROOT / "hack" / "promtool-build" / "go.mod")
    for go_mod in sorted(wrappers):
        match = re.search(r"^go (\S+)$", go_mod.read_text(), flags=re.MULTILINE)
        assert match, go_mod
        assert pinned >= version_tuple(match.group(1)), go_mod


@pytest.mark.parametrize(("machine", "arch"), [("x86_64", "amd64"), ("aarch64", "arm64")])
def test_without_go_the_pinned_toolchain_comes_from_the_module_proxy(
    bare_path: Path, tmp_path: Path, machine: str, arch: str
) -> None:
    cache = tmp_path / "cache"
    plan = go_plan(bare_path, cache, TRADERBOT_GO_MACHINE=machine)
    version = script_value("GO_VERSION")
    assert plan["go_source"] == "proxy"
    assert plan["go_version"] == version
    assert plan["go_url"] == (
        f"https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-go{version}.linux-{arch}.zip"
    )
    assert re.fullmatch(r"[0-9a-f]{64}", plan["go_sha256"])
    assert plan["go_root"] == str(cache / "traderbot" / "go" / f"go{version}.linux-{arch}")
    assert plan["go_bin"] == plan["go_root"] + "/bin/go"


def test_each_architecture_has_its_own_pinned_hash(bare_path: Path, tmp_path: Path) -> None:
    amd64 = go_plan(bare_path, tmp_path, TRADERBOT_GO_MACHINE="x86_64")
    arm64 = go_plan(bare_path, tmp_path, TRADERBOT_GO_MACHINE="arm64")
    assert amd64["go_sha256"] != arm64["go_sha256"]


def test_the_toolchain_comes_from_the_first_proxy_of_goproxy(
    bare_path: Path, tmp_path: Path
) -> None:
    plan = go_plan(
        bare_path,
        tmp_path,
        TRADERBOT_GO_MACHINE="x86_64",
        GOPROXY="https://goproxy.internal.example/mod/,direct",
    )
    assert plan["go_url"].startswith(
        "https://goproxy.internal.example/mod/golang.org/toolchain/@v/"
    )


def test_goproxy_off_or_direct_falls_back_to_the_public_proxy(
    bare_path: Path, tmp_path: Path
) -> None:
    plan = go_plan(bare_path, tmp_path, TRADERBOT_GO_MACHINE="x86_64", GOPROXY="direct")
    assert plan["go_url"].startswith("https://proxy.golang.org/")


def test_a_go_older_than_1_21_is_not_used(bare_path: Path, tmp_path: Path) -> None:
    fake_go(bare_path, "1.20.14")
    assert go_plan(bare_path, tmp_path, TRADERBOT_GO_MACHINE="x86_64")["go_source"] == "proxy"


def test_a_go_1_21_or_newer_on_path_is_used_as_it_is(bare_path: Path, tmp_path: Path) -> None:
    fake_go(bare_path, "1.21.0")
    plan = go_plan(bare_path, tmp_path)
    assert plan == {"go_source": "path", "go_bin": str(bare_path / "go")}


def test_a_toolchain_fetched_and_verified_earlier_is_reused(
    bare_path: Path, tmp_path: Path
) -> None:
    first = go_plan(bare_path, tmp_path, TRADERBOT_GO_MACHINE="x86_64")
    go_root = Path(first["go_root"])
    (go_root / "bin").mkdir(parents=True)
    fake_go(go_root / "bin", script_value("GO_VERSION"))
    assert go_plan(bare_path, tmp_path, TRADERBOT_GO_MACHINE="x86_64")["go_source"] == "proxy", (
        "an unpacked toolchain without the .verified stamp is fetched again"
    )
    (go_root / ".verified").touch()
    assert go_plan(bare_path, tmp_path, TRADERBOT_GO_MACHINE="x86_64")["go_source"] == "cache"


def test_a_machine_with_no_pinned_toolchain_is_told_to_install_go(
    bare_path: Path, tmp_path: Path
) -> None:
    result = run_script(
        "--print-go", path=bare_path, cache=tmp_path, extra_env={"TRADERBOT_GO_MACHINE": "riscv64"}
    )
    assert result.returncode == 1
    assert "install Go 1.21 or newer" in result.stderr


def test_binaries_whose_build_inputs_did_not_change_are_reused_not_rebuilt(
    bare_path: Path, tmp_path: Path
) -> None:
    """Older cache folders give every binary: helm and coredns from folders of their own.

    The oldest has no coredns and a helm without the Kubernetes ldflags; the
    others hold the same helm and CoreDNS versions under other Kubernetes ones.
    """
    cache = tmp_path / "cache"
    k8s = cache / "traderbot" / "k8s"
    older = k8s / "k8s-v1.34.4_etcd-v3.6.16_kwok-v0.7.0_helm-v3.21.4" / "bin"
    helm_only = k8s / "k8s-v1.33.0_etcd-v3.5.0_kwok-v0.6.0_helm-v3.21.4-kube1.34" / "bin"
    coredns_only = (
        k8s / "k8s-v1.33.0_etcd-v3.5.0_kwok-v0.6.0_helm-v3.20.0-kube1.33_coredns-v1.14.1" / "bin"
    )
    sources = {"helm": helm_only, "coredns": coredns_only}
    for folder, names in (
        (older, [name for name in BINARIES if name != "coredns"]),
        (helm_only, ["helm"]),
        (coredns_only, ["coredns"]),
    ):
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_text(f"{folder.parent.name}/{name}\n")
            (folder / name).chmod(0o755)

    result = run_script(path=bare_path, cache=cache)

    assert result.returncode == 0, result.stderr
    bin_dir = Path(result.stdout.strip().splitlines()[-1])
    assert bin_dir.parent.parent == k8s
    assert bin_dir != older
    for name in BINARIES:
        source = sources.get(name, older)
        assert (bin_dir / name).read_text() == f"{source.parent.name}/{name}\n"
    assert "building" not in result.stderr
    assert "fetching Go" not in result.stderr


def tiny_chart(folder: Path, template: str) -> Path:
    (folder / "templates").mkdir(parents=True)
    (folder / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    (folder / "templates" / "probe.yaml").write_text(template)
    return folder


def test_helm_assumes_the_control_planes_kubernetes_version_without_a_cluster(
    helm: Helm, tmp_path: Path
) -> None:
    """Without the build's ldflags helm would say v1.20.0 and refuse our chart's kubeVersion."""
    chart = tiny_chart(
        tmp_path / "probe",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n"
        "data:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n",
    )
    rendered = helm.run("template", "probe", str(chart)).stdout
    major, minor, _ = KUBERNETES_VERSION.removeprefix("v").split(".")
    assert f'kube: "v{major}.{minor}.0"' in rendered


def test_helm_lint_judges_deprecated_apis_by_the_control_planes_version(
    helm: Helm, tmp_path: Path
) -> None:
    """flowcontrol v1beta3 was deprecated in 1.29: a helm that assumed 1.20 would not say so."""
    chart = tiny_chart(
        tmp_path / "probe",
        "apiVersion: flowcontrol.apiserver.k8s.io/v1beta3\nkind: FlowSchema\n"
        "metadata:\n  name: probe\n",
    )
    linted = helm.run("lint", str(chart)).stdout
    assert "flowcontrol.apiserver.k8s.io/v1beta3 FlowSchema is deprecated" in linted


def test_a_toolchain_zip_with_another_hash_is_refused_and_not_unpacked(
    bare_path: Path, tmp_path: Path
) -> None:
    """The fetch path offline: a local file:// proxy serves a zip that is not the pinned one."""
    for tool in ("curl", "rm", "chmod", "mv", "touch"):
        found = shutil.which(tool)
        assert found, f"{tool} is not installed"
        (bare_path / tool).symlink_to(found)
    version = script_value("GO_VERSION")
    proxy = tmp_path / "proxy"
    served = proxy / "golang.org" / "toolchain" / "@v" / f"v0.0.1-go{version}.linux-amd64.zip"
    served.parent.mkdir(parents=True)
    served.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: valid, but not Go
    cache = tmp_path / "cache"

    result = run_script(
        "--fetch-go",
        path=bare_path,
        cache=cache,
        extra_env={"TRADERBOT_GO_MACHINE": "x86_64", "GOPROXY": f"file://{proxy},direct"},
    )

    assert result.returncode != 0
    assert f"SHA-256 mismatch for file://{served}" in result.stderr
    go_folder = cache / "traderbot" / "go"
    assert [path.name for path in go_folder.iterdir() if not path.name.startswith(".")] == []
    assert not [path for path in go_folder.glob(".fetch.*") if path.is_dir()], "work folder left"


def test_fetch_go_with_a_usable_go_on_path_fetches_nothing(bare_path: Path, tmp_path: Path) -> None:
    fake_go(bare_path, "1.22.3")
    result = run_script("--fetch-go", path=bare_path, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(bare_path / "go")
    assert not (tmp_path / "cache" / "traderbot" / "go").exists()


def test_the_cache_folder_is_the_one_binaries_py_looks_in(bare_path: Path, tmp_path: Path) -> None:
    result = run_script("--print-dir", path=bare_path, cache=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "traderbot" / "k8s" / VERSION_TAG / "bin")


def test_check_names_each_missing_binary_coredns_included(bare_path: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin-dir"
    bin_dir.mkdir()
    for name in BINARIES:
        if name != "coredns":
            (bin_dir / name).write_text("#!/bin/sh\n")
            (bin_dir / name).chmod(0o755)
    env = {"TRADERBOT_K8S_BIN_DIR": str(bin_dir)}

    missing = run_script("--check", path=bare_path, cache=tmp_path, extra_env=env)
    (bin_dir / "coredns").write_text("#!/bin/sh\n")
    (bin_dir / "coredns").chmod(0o755)
    complete = run_script("--check", path=bare_path, cache=tmp_path, extra_env=env)

    assert missing.returncode == 1
    assert "missing: coredns" in missing.stderr
    assert complete.returncode == 0, complete.stderr


def test_the_coredns_wrapper_registers_no_plugin_that_forwards() -> None:
    """The real node's DNS must never send a query off the machine (docs/local-cluster.md)."""
    main = (REPO_ROOT / "hack" / "k8s-build" / "coredns" / "main.go").read_text()
    plugins = set(re.findall(r'"github.com/coredns/coredns/plugin/(\w+)"', main))
    assert plugins == {"bind", "cache", "errors", "health", "kubernetes", "log", "ready"}
    assert "core/plugin" not in main, "the upstream list registers every plugin, forward too"
