"""Two replicas of the shipped operator process: one leads, the other takes over (issue 12.7).

The replicas run the console script as an SRE deploys it (the chart runs two),
with the least-privilege ServiceAccount plus the Role for their Lease, and short
Lease timings so a takeover is quick to watch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding

from cluster.operator.conftest import FIELD_MANAGER, OPERATOR_ACCOUNT, SYSTEM_NAMESPACE
from cluster.operator.process import OperatorProcess
from cluster.operator.test_operator import (
    _bot,
    _children,
    _create_bot,
    _patch_spec,
    _wait_phase,
)
from support.kube import delete_if_present, eventually
from traderbot_operator.rbac import (
    LEADER_ELECTION_ROLE,
    leader_election_role,
    leader_election_role_binding,
)

LEASE_DURATION = 6.0
RENEW_DEADLINE = 4.0
RETRY_PERIOD = 1.0
# A standby notices an expired Lease at its next attempt: up to (1 + 1.2) retry periods
# after the Lease's end, which comes LEASE_DURATION after the standby last saw it change.
TAKEOVER_BOUND = LEASE_DURATION + RETRY_PERIOD * 2.2 + 3.0


@pytest.fixture
def lease(kube: Client, namespace: str, operator_kubeconfig: Path) -> Iterator[str]:
    """Grant the operator's ServiceAccount its Lease Role; yield a Lease name for this test."""
    kube.apply(
        from_dict(leader_election_role(namespace=SYSTEM_NAMESPACE)),
        field_manager=FIELD_MANAGER,
        force=True,
    )
    kube.apply(
        from_dict(
            leader_election_role_binding(
                service_account=OPERATOR_ACCOUNT, namespace=SYSTEM_NAMESPACE
            )
        ),
        field_manager=FIELD_MANAGER,
        force=True,
    )
    name = f"lease-{namespace}"[:63]
    yield name
    delete_if_present(kube, Lease, name, namespace=SYSTEM_NAMESPACE)
    delete_if_present(kube, RoleBinding, LEADER_ELECTION_ROLE, namespace=SYSTEM_NAMESPACE)
    delete_if_present(kube, Role, LEADER_ELECTION_ROLE, namespace=SYSTEM_NAMESPACE)


def _replica(kubeconfig: Path, namespace: str, lease: str, log: Path) -> OperatorProcess:
    return OperatorProcess(
        kubeconfig=kubeconfig,
        namespaces=[namespace],
        log=log,
        env={
            "TRADERBOT_LEADER_ELECTION": "true",
            "TRADERBOT_LEADER_ELECTION_NAMESPACE": SYSTEM_NAMESPACE,
            "TRADERBOT_LEADER_ELECTION_NAME": lease,
            "TRADERBOT_LEASE_DURATION_SECONDS": str(LEASE_DURATION),
            "TRADERBOT_LEASE_RENEW_DEADLINE_SECONDS": str(RENEW_DEADLINE),
            "TRADERBOT_LEASE_RETRY_PERIOD_SECONDS": str(RETRY_PERIOD),
        },
    )


def _value(process: OperatorProcess, name: str) -> float:
    return sum(value for found, _, value in process.metrics() if found == name)


def _leads(process: OperatorProcess) -> bool:
    return _value(process, "traderbot_operator_leader") == 1.0


def _requests(process: OperatorProcess) -> dict[tuple[str, str], float]:
    """Return this replica's Kubernetes API requests by (verb, kind)."""
    return {
        (labels["verb"], labels["kind"]): value
        for found, labels, value in process.metrics()
        if found == "traderbot_operator_api_requests_total" and value
    }


def _holder(kube: Client, name: str) -> str | None:
    spec = kube.get(Lease, name, namespace=SYSTEM_NAMESPACE).spec
    return (spec.holderIdentity or None) if spec is not None else None


def _uids(kube: Client, namespace: str, bot: str) -> dict[tuple[str, str], Any]:
    return {
        (kind, child["metadata"]["name"]): child["metadata"]["uid"]
        for kind, children in _children(kube, namespace, bot).items()
        for child in children
    }


@pytest.mark.usefixtures("volumes")
@pytest.mark.timeout(600)
def test_one_replica_leads_and_a_standby_takes_over_when_it_dies_writing_nothing_twice(
    kube: Client, namespace: str, operator_kubeconfig: Path, lease: str, tmp_path: Path
) -> None:
    first = _replica(operator_kubeconfig, namespace, lease, tmp_path / "first.log").start()
    second: OperatorProcess | None = None
    third: OperatorProcess | None = None
    try:
        eventually(lambda: _leads(first), what=f"first replica leads; log:\n{first.tail()}")
        second = _replica(operator_kubeconfig, namespace, lease, tmp_path / "second.log").start()
        standby = second
        assert standby.healthz()[0] == 200  # a standby is alive for its probes
        _create_bot(kube, namespace, "alpha")
        _wait_phase(kube, namespace, "alpha", "Ready")
        uids = _uids(kube, namespace, "alpha")

        # The standby only ever read the Lease: not one write, no watch of bots.
        assert not _leads(standby)
        assert set(_requests(standby)) <= {("get", "Lease")}, _requests(standby)
        assert "standby" in standby.tail(200)

        first.kill()
        killed = time.monotonic()
        eventually(
            lambda: _leads(standby),
            what=f"the standby leads; log:\n{standby.tail()}",
            timeout=TAKEOVER_BOUND * 2,
        )
        took = time.monotonic() - killed
        assert took <= TAKEOVER_BOUND, f"takeover took {took:.1f}s (bound {TAKEOVER_BOUND}s)"
        assert _holder(kube, lease) is not None

        # The new leader carries on: a spec change converges, nothing is recreated.
        _patch_spec(kube, namespace, "alpha", {"api": {"logLevel": "debug"}})

        def converged() -> bool:
            bot = _bot(kube, namespace, "alpha")
            status = bot.get("status") or {}
            return bool(
                status.get("observedGeneration") == bot["metadata"]["generation"]
                and status.get("phase") == "Ready"
            )

        eventually(converged, what="alpha converged under the new leader", timeout=120)
        assert _uids(kube, namespace, "alpha") == uids
        creates = {key: n for key, n in _requests(standby).items() if key[0] == "create"}
        assert set(creates) <= {("create", "Lease"), ("create", "Event")}, creates

        # A clean stop releases the Lease: the next replica leads without waiting it out.
        third = _replica(operator_kubeconfig, namespace, lease, tmp_path / "third.log").start()
        leader = _holder(kube, lease)
        standby.stop()
        second = None
        stopped = time.monotonic()
        assert _holder(kube, lease) != leader  # released (or already the third's)
        eventually(lambda: _leads(third), what=f"third leads; log:\n{third.tail()}", timeout=30)
        assert time.monotonic() - stopped < LEASE_DURATION
    finally:
        for process in (first, second, third):
            if process is not None and process.process is not None:
                process.stop()
