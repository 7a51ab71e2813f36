"""The previous chart release comes from the repository's own history.

tests/cluster/test_chart.py upgrades from it; these tests pin down which
commit that is, and that a clone without history fails instead of upgrading
the chart to itself.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from unit.delivery.delivery_tools import (
    CHART_DIR,
    CHART_IN_REPO,
    REPO_ROOT,
    Helm,
    PreviousReleaseMissingError,
    chart_version,
    previous_release,
)

CHART_YAML = f"{CHART_IN_REPO}/Chart.yaml"


def git(*args: str, repo: Path = REPO_ROOT) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def test_the_chart_changelog_has_a_section_for_the_current_version() -> None:
    changelog = (CHART_DIR / "CHANGELOG.md").read_text()
    assert f"\n## {chart_version((CHART_DIR / 'Chart.yaml').read_text())}\n" in changelog


def test_the_previous_release_is_the_last_commit_with_another_chart_version(
    tmp_path: Path,
) -> None:
    release = previous_release(into=tmp_path)
    current = chart_version((CHART_DIR / "Chart.yaml").read_text())
    assert release.version != current
    assert chart_version(git("show", f"{release.commit}:{CHART_YAML}")) == release.version
    # Every later commit that touched Chart.yaml already has the current version.
    for later in git("log", "--format=%H", f"{release.commit}..HEAD", "--", CHART_YAML).split():
        assert chart_version(git("show", f"{later}:{CHART_YAML}")) == current
    assert (release.chart / "Chart.yaml").read_text() == git(
        "show", f"{release.commit}:{CHART_YAML}"
    )
    assert (release.operator_source / "traderbot_operator" / "__main__.py").is_file()


def test_the_previous_chart_is_a_valid_chart(helm: Helm, tmp_path: Path) -> None:
    release = previous_release(into=tmp_path)
    helm.run("lint", "--strict", str(release.chart))


def test_a_shallow_clone_fails_loudly_instead_of_upgrading_to_itself(tmp_path: Path) -> None:
    shallow = tmp_path / "shallow"
    git("clone", "--quiet", "--depth", "1", f"file://{REPO_ROOT}", str(shallow))
    with pytest.raises(
        PreviousReleaseMissingError, match=r"shallow clone.*TRADERBOT_PREVIOUS_CHART"
    ):
        previous_release(into=tmp_path / "out", repo=shallow)


def test_a_tree_without_git_history_fails_loudly(tmp_path: Path) -> None:
    exported = tmp_path / "exported"
    shutil.copytree(CHART_DIR, exported / CHART_IN_REPO)
    with pytest.raises(PreviousReleaseMissingError, match="git"):
        previous_release(into=tmp_path / "out", repo=exported)


def test_history_where_the_version_never_changed_fails_loudly(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / CHART_IN_REPO).mkdir(parents=True)
    (repo / CHART_YAML).write_text("apiVersion: v2\nname: x\nversion: 1.0.0\n")
    git("init", "--quiet", repo=repo)
    git("add", ".", repo=repo)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-m", "x", repo=repo)
    with pytest.raises(PreviousReleaseMissingError, match=r"no commit .* other than 1\.0\.0"):
        previous_release(into=tmp_path / "out", repo=repo)
