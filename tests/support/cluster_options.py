"""Command-line options of the cluster tier, as a pytest plugin.

pytest only accepts an option on the command line if a plugin or an *initial*
conftest registered it, and tests/cluster/conftest.py is initial only when
``tests/cluster`` is named on the command line. Listing this module in the root
conftest's ``pytest_plugins`` makes ``pytest --use-existing-cluster`` work from
anywhere; tests/cluster/conftest.py registers the same options otherwise.
"""

from __future__ import annotations

import contextlib

import pytest


def add_cluster_options(parser: pytest.Parser) -> None:
    """Register --use-existing-cluster, --kubeconfig, --e2e-images (once; a repeat is a no-op)."""
    group = parser.getgroup("cluster", "Kubernetes cluster tier")
    with contextlib.suppress(ValueError):  # already registered by the other entry point
        group.addoption(
            "--use-existing-cluster",
            action="store_true",
            default=False,
            help="run tests/cluster against --kubeconfig instead of a local control plane",
        )
        group.addoption(
            "--kubeconfig",
            default=None,
            help="kubeconfig of the existing cluster (default: $TRADERBOT_TEST_KUBECONFIG)",
        )
        group.addoption(
            "--e2e-images",
            default=None,
            help="tests/e2e: image list in hack/images.sh's format (default: build them here)",
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    add_cluster_options(parser)
