"""Fixtures of the delivery tests: the pinned helm, promtool, hadolint, checkov and shellcheck."""

from __future__ import annotations

from pathlib import Path

import pytest

from unit.delivery.delivery_tools import Helm, find_helm, find_promtool, find_tool


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(binary=find_helm(), home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def promtool() -> Path:
    return find_promtool()


@pytest.fixture(scope="session")
def hadolint() -> Path:
    return find_tool("hadolint")


@pytest.fixture(scope="session")
def checkov() -> Path:
    return find_tool("checkov")


@pytest.fixture(scope="session")
def shellcheck() -> Path:
    return find_tool("shellcheck")
