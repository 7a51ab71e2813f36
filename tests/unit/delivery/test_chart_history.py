"""The previous chart release, from the repository's history, and what an upgrade may change.

tests/cluster/test_chart.py upgrades from it; these tests pin down which
commit that is, that a clone without history fails instead of upgrading
the chart to itself, and the rules it judges a running bot's objects by.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from unit.delivery.delivery_tools import (
    CHART_DIR,
    CHART_IN_REPO,
    DECLARED_UPGRADE_CHANGES,
    REPO_ROOT,
    Helm,
    PreviousReleaseMissingError,
    Snapshot,
    changed_by_upgrade,
    chart_version,
    previous_release,
)

CHART_YAML = f"{CHART_IN_REPO}/Chart.yaml"
CONFIG_HASH_PATH = "spec.template.metadata.annotations.traderbot.dev/config-hash"


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


def written(**changes: Any) -> dict[str, Any]:
    """Return what the upgrade test records of an object, with ``changes`` merged in."""
    base: dict[str, Any] = {
        "spec": {"template": {"metadata": {"annotations": {"traderbot.dev/config-hash": "a"}}}},
        "data": None,
        "labels": {"app": "x"},
        "annotations": {"traderbot.dev/applied-hash": "1"},
        "ownerReferences": [{"uid": "bot"}],
        "generation": 1,
    }
    return base | changes


API_ROLLED = written(
    spec={"template": {"metadata": {"annotations": {"traderbot.dev/config-hash": "b"}}}},
    annotations={"traderbot.dev/applied-hash": "2", "deployment.kubernetes.io/revision": "2"},
    generation=2,
)
HASH_CHANGE = {("Deployment", "-api"): frozenset({CONFIG_HASH_PATH})}


def test_an_untouched_bot_and_a_new_child_are_no_change() -> None:
    before: Snapshot = {("Deployment", "alpha-api"): ("u1", written())}
    after: Snapshot = {**before, ("NetworkPolicy", "alpha-api"): ("u2", written())}
    assert changed_by_upgrade(before, after, declared={}) == {}


def test_a_deleted_or_recreated_object_is_a_change_whatever_its_kind() -> None:
    before: Snapshot = {("CronJob", "alpha-backup"): ("u1", written()), ("Secret", "s"): ("u2", {})}
    after: Snapshot = {("CronJob", "alpha-backup"): ("u9", written())}
    assert changed_by_upgrade(before, after, declared={}) == {
        "CronJob/alpha-backup": "re-created",
        "Secret/s": "deleted",
    }


def test_an_undeclared_rewrite_is_reported_with_the_paths_that_changed() -> None:
    before: Snapshot = {("Deployment", "alpha-api"): ("u1", written())}
    after: Snapshot = {("Deployment", "alpha-api"): ("u1", API_ROLLED)}
    (how,) = changed_by_upgrade(before, after, declared={}).values()
    assert how.startswith("rewritten: ")
    assert CONFIG_HASH_PATH in how


def test_a_declared_change_passes_with_its_consequences_and_nothing_more() -> None:
    before: Snapshot = {("Deployment", "alpha-api"): ("u1", written())}
    rolled: Snapshot = {("Deployment", "alpha-api"): ("u1", API_ROLLED)}
    assert changed_by_upgrade(before, rolled, declared=HASH_CHANGE) == {}
    relabelled: Snapshot = {
        ("Deployment", "alpha-api"): ("u1", API_ROLLED | {"labels": {"app": "y"}})
    }
    assert list(changed_by_upgrade(before, relabelled, declared=HASH_CHANGE)) == [
        "Deployment/alpha-api"
    ]
    other_kind: Snapshot = {("StatefulSet", "alpha-api"): ("u1", written())}
    assert changed_by_upgrade(
        other_kind, {("StatefulSet", "alpha-api"): ("u1", API_ROLLED)}, declared=HASH_CHANGE
    ), "a declaration covers its kind and name suffix only"


def test_cronjobs_and_network_policies_may_be_updated_in_place() -> None:
    before: Snapshot = {
        ("CronJob", "alpha-backup"): ("u1", written()),
        ("NetworkPolicy", "alpha-db"): ("u2", written()),
    }
    after: Snapshot = {key: (uid, API_ROLLED) for key, (uid, _) in before.items()}
    assert changed_by_upgrade(before, after, declared={}) == {}


def test_every_declared_upgrade_change_names_a_previous_version_from_history() -> None:
    versions = {
        chart_version(git("show", f"{commit}:{CHART_YAML}"))
        for commit in git("log", "--format=%H", "--", CHART_YAML).split()
    }
    assert set(DECLARED_UPGRADE_CHANGES) <= versions
