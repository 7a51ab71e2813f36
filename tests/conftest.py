"""Test tiers by folder: unit, integration (real PostgreSQL/Redis), cluster, e2e (real pods).

Each test gets the marker of the folder it lives in, so ``-m unit`` and
friends select a tier without anyone remembering to decorate tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# The cluster tier's options must be known before tests/cluster/conftest.py loads,
# so `pytest --use-existing-cluster` works from the repository root.
pytest_plugins = ["support.cluster_options"]

_TIERS = ("unit", "integration", "cluster", "e2e")
_ROOT = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            tier = item.path.relative_to(_ROOT).parts[0]
        except ValueError:
            continue
        if tier in _TIERS:
            item.add_marker(getattr(pytest.mark, tier))
