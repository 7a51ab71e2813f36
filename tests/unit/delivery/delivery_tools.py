"""Locate the delivery tools (helm, hadolint, checkov) and render the chart, for the tests.

NB: a missing tool fails the test with the command that provides it; it never
skips, so a machine without helm cannot report the chart as tested.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from traderbot_devtools.binaries import helm_env

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART_DIR = REPO_ROOT / "charts" / "traderbot-operator"
BOTS_CHART_DIR = REPO_ROOT / "charts" / "traderbot"
CHART_VALUE_SETS_DIR = CHART_DIR / "ci"
CHART_IN_REPO = "charts/traderbot-operator"
KUBERNETES_VERSION = "1.34.0"
RELEASE_NAMESPACE = "traderbot-system"

Manifest = dict[str, Any]


def _script_output(*args: str) -> str:
    return subprocess.run(
        args, cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def k8s_bin_dir() -> Path:
    """Return the folder hack/k8s-binaries.sh builds kubectl and helm into."""
    return Path(_script_output("bash", "hack/k8s-binaries.sh", "--print-dir"))


def find_helm() -> Path:
    """Return the pinned helm binary, or fail saying how to build it.

    NB: looks where the cluster tests look (KUBEBUILDER_ASSETS first, then the
    versioned cache of hack/k8s-binaries.sh), so both tiers test with one helm.
    """
    folders = []
    if assets := os.environ.get("KUBEBUILDER_ASSETS"):
        folders.append(Path(assets))
    folders.append(k8s_bin_dir())
    for folder in folders:
        candidate = folder / "helm"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        f"helm not found in {', '.join(map(str, folders))}; "
        "build it with `bash hack/k8s-binaries.sh` (make k8s-binaries)",
        pytrace=False,
    )


def find_promtool() -> Path:
    """Return the pinned promtool of hack/promtool.sh, or fail saying how to build it.

    NB: never built from a test (5-8 minutes cold): `make test` and `make
    promtool` build it first, as they build helm.
    """
    binary = Path(_script_output("bash", "hack/promtool.sh", "--print-path"))
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(
            f"promtool not found at {binary}; build it with `make promtool` (hack/promtool.sh)",
            pytrace=False,
        )
    return binary


def find_tool(name: str) -> Path:
    """Return a pinned linter from hack/install-tools.sh, installing it when missing.

    NB: installing is idempotent and takes about a minute from PyPI, well inside
    a test's timeout, so a fresh CI machine needs no extra step.
    """
    bin_dir = Path(_script_output("bash", "hack/install-tools.sh", "--print-dir"))
    check = subprocess.run(["bash", "hack/install-tools.sh", "--check"], cwd=REPO_ROOT, check=False)
    if check.returncode:
        subprocess.run(["bash", "hack/install-tools.sh"], cwd=REPO_ROOT, check=True)
    tool = bin_dir / name
    if not os.access(tool, os.X_OK):
        pytest.fail(f"{name} missing in {bin_dir} after hack/install-tools.sh", pytrace=False)
    return tool


@dataclass(frozen=True)
class Helm:
    """The pinned helm binary, run against our charts."""

    binary: Path
    home: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run helm with a throwaway home, so no user repo or plugin changes the result.

        NB: no ``--kube-version``: hack/k8s-binaries.sh builds helm to assume the
        control plane's Kubernetes version (KUBERNETES_VERSION) without a cluster,
        so every template and lint here also proves that build flag.
        """
        env = helm_env(self.home)
        result = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, env=env, check=False
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"helm {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}",
                pytrace=False,
            )
        return result

    def template(
        self,
        *,
        chart: Path = CHART_DIR,
        values_files: Sequence[Path] = (),
        set_values: Mapping[str, str] | None = None,
        release: str = "traderbot-operator",
        namespace: str = RELEASE_NAMESPACE,
        include_crds: bool = False,
    ) -> list[Manifest]:
        """Render a chart and return its manifests, parsed."""
        args = ["template", release, str(chart), "--namespace", namespace]
        if include_crds:
            args.append("--include-crds")
        for values_file in values_files:
            args += ["--values", str(values_file)]
        for key, value in (set_values or {}).items():
            args += ["--set", f"{key}={value}"]
        rendered = self.run(*args).stdout
        return [doc for doc in yaml.safe_load_all(rendered) if doc]


def value_sets() -> list[Path]:
    """Return the chart's test value files (charts/traderbot-operator/ci/*-values.yaml)."""
    return sorted(CHART_VALUE_SETS_DIR.glob("*-values.yaml"))


def by_kind(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    """Return the manifests of one kind."""
    return [manifest for manifest in manifests if manifest.get("kind") == kind]


def one(manifests: Sequence[Manifest], kind: str) -> Manifest:
    """Return the single manifest of a kind, failing when there are none or several."""
    found = by_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


class PreviousReleaseMissingError(RuntimeError):
    """Raised when the repository's history cannot give the previous chart release."""


@dataclass(frozen=True)
class PreviousRelease:
    """The chart and operator code as of the last commit with another chart version."""

    commit: str
    version: str
    root: Path

    @property
    def chart(self) -> Path:
        """Return the previous chart's folder."""
        return self.root / CHART_IN_REPO

    @property
    def operator_source(self) -> Path:
        """Return the folder to put on PYTHONPATH to import the previous operator."""
        return self.root / "operator"


def chart_version(chart_yaml: str) -> str:
    """Return the ``version:`` of a Chart.yaml text."""
    version: str = yaml.safe_load(chart_yaml)["version"]
    return version


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PreviousReleaseMissingError(
            f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()}"
        )
    return result.stdout


def previous_release(*, into: Path, repo: Path = REPO_ROOT) -> PreviousRelease:
    """Extract the chart and operator as of the last commit with another chart version.

    That commit is the parent of the oldest commit (since the version last
    changed) whose Chart.yaml has the working tree's version; when no commit has
    it yet (the bump is not committed), it is HEAD.
    NB: a shallow clone lacks that history and an exported tree has none: both
    raise, with what to do, so the upgrade test can never pass by upgrading the
    chart to itself.
    """
    remedy = (
        "fetch the full history (git fetch --unshallow) or set TRADERBOT_PREVIOUS_CHART "
        "to the previous chart's folder or .tgz"
    )
    if _git(repo, "rev-parse", "--is-shallow-repository").strip() != "false":
        raise PreviousReleaseMissingError(f"{repo} is a shallow clone: {remedy}")
    chart_yaml = f"{CHART_IN_REPO}/Chart.yaml"
    current = chart_version((repo / chart_yaml).read_text())
    bump = None
    for commit in _git(repo, "log", "--format=%H", "--", chart_yaml).split():
        if chart_version(_git(repo, "show", f"{commit}:{chart_yaml}")) != current:
            break
        bump = commit
    else:
        raise PreviousReleaseMissingError(
            f"no commit in {repo} has a chart version other than {current}: {remedy}"
        )
    commit = _git(repo, "rev-parse", f"{bump}^" if bump else "HEAD").strip()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit, CHART_IN_REPO, "operator"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    version = chart_version((into / chart_yaml).read_text())
    return PreviousRelease(commit=commit, version=version, root=into)


# (kind, name) -> (uid, what a writer would change: spec, data, labels, annotations,
# owner references, generation), as the chart upgrade test reads a bot's objects.
Snapshot = dict[tuple[str, str], tuple[str, dict[str, Any]]]


def differing_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """Return the dotted paths where two JSON-like values differ (lists compared whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            found
            for key in sorted(set(old) | set(new))
            for found in differing_paths(
                old.get(key), new.get(key), f"{path}.{key}" if path else key
            )
        ]
    return [] if old == new else [path]


# Kinds a new operator version may update in place when it takes over: nothing
# running restarts (a CronJob's template serves its next run; a NetworkPolicy
# restarts no pod). They must still not be re-created.
UPDATABLE_ON_UPGRADE = frozenset({"CronJob", "NetworkPolicy"})


# Pod-template changes a chart release declares in its CHANGELOG ("rolls every
# bot's API pods once"), by the previous chart version upgraded from:
# (kind, name suffix) -> the paths that may change. Nothing else may.
DECLARED_UPGRADE_CHANGES: dict[str, dict[tuple[str, str], frozenset[str]]] = {
    # 0.2.0: the API config hash covers the content of the Secrets the pods read; the
    # API pods get READ_API_KEY (the container's env: lists are compared whole).
    "0.1.0": {
        ("Deployment", "-api"): frozenset(
            {
                "spec.template.metadata.annotations.traderbot.dev/config-hash",
                "spec.template.spec.containers",
            }
        ),
    },
}
# What follows any accepted rewrite: the API server's generation, the Deployment
# controller's rollout count and the operator's record of what it applied.
CONSEQUENCES = frozenset(
    {
        "generation",
        "annotations.deployment.kubernetes.io/revision",
        "annotations.traderbot.dev/applied-hash",
    }
)


def changed_by_upgrade(
    before: Snapshot, after: Snapshot, *, declared: dict[tuple[str, str], frozenset[str]]
) -> dict[str, str]:
    """Return what the upgraded operator rewrote or re-created of a bot, as 'Kind/name: how'.

    Objects it adds (a child the previous version did not build) are allowed, and
    so are the ``declared`` changes (with their CONSEQUENCES), and no others.
    """
    changed = {}
    for (kind, name), (uid, written) in before.items():
        now = after.get((kind, name))
        if now is None:
            changed[f"{kind}/{name}"] = "deleted"
        elif now[0] != uid:
            changed[f"{kind}/{name}"] = "re-created"
        elif now[1] != written and kind not in UPDATABLE_ON_UPGRADE:
            allowed = {
                path
                for (declared_kind, suffix), paths in declared.items()
                if declared_kind == kind and name.endswith(suffix)
                for path in paths
            }
            paths = set(differing_paths(written, now[1]))
            if not allowed or not paths - CONSEQUENCES <= allowed:
                changed[f"{kind}/{name}"] = "rewritten: " + ", ".join(sorted(paths))
    return changed
