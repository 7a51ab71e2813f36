"""Leader election decisions (pure): who may take the Lease, and when."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from traderbot_operator.election import Elector, LeadershipLostError
from traderbot_operator.kube import ConflictError, Kube, KubeError
from traderbot_operator.leader import (
    ElectionSettingsError,
    LeaseRecord,
    Move,
    Sighting,
    Timings,
    decide,
    lease_spec,
    micro_time,
    released_spec,
)

TIMINGS = Timings(lease_duration=15, renew_deadline=10, retry_period=2)
ME = "pod-a_1234"
OTHER = "pod-b_5678"


def record(holder: str | None, *, version: str = "1", duration: int = 15) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        duration_seconds=duration,
        acquired="2026-12-03T10:00:00.000000Z",
        renewed="2026-12-03T10:00:10.000000Z",
        transitions=3,
        resource_version=version,
    )


def test_a_missing_lease_is_created() -> None:
    assert decide(None, identity=ME, now=100.0, timings=TIMINGS) is Move.CREATE


def test_a_held_lease_is_waited_out_for_its_whole_duration_on_our_own_clock() -> None:
    seen = Sighting(record=record(OTHER), first_seen=100.0)
    assert decide(seen, identity=ME, now=114.9, timings=TIMINGS) is Move.WAIT
    assert decide(seen, identity=ME, now=115.0, timings=TIMINGS) is Move.TAKE


def test_expiry_ignores_the_renew_time_another_clock_wrote() -> None:
    # The holder's renewTime is hours old by its clock; we only just saw this record.
    stale = LeaseRecord(OTHER, 15, "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", 0, "9")
    assert decide(Sighting(stale, first_seen=500.0), identity=ME, now=501.0, timings=TIMINGS) is (
        Move.WAIT
    )


def test_a_renewal_restarts_the_wait_and_an_unchanged_record_does_not() -> None:
    seen = Sighting(record=record(OTHER, version="1"), first_seen=100.0)
    same = seen.after(record(OTHER, version="1"), now=110.0)
    assert same.first_seen == 100.0
    renewed = seen.after(record(OTHER, version="2"), now=110.0)
    assert renewed.first_seen == 110.0
    assert decide(renewed, identity=ME, now=120.0, timings=TIMINGS) is Move.WAIT


def test_the_holders_longer_duration_is_honoured() -> None:
    seen = Sighting(record=record(OTHER, duration=60), first_seen=0.0)
    assert decide(seen, identity=ME, now=59.0, timings=TIMINGS) is Move.WAIT
    assert decide(seen, identity=ME, now=60.0, timings=TIMINGS) is Move.TAKE


def test_our_own_lease_is_renewed_and_a_released_one_taken_at_once() -> None:
    assert decide(Sighting(record(ME), 0.0), identity=ME, now=1.0, timings=TIMINGS) is Move.RENEW
    assert decide(Sighting(record(None), 0.0), identity=ME, now=0.0, timings=TIMINGS) is Move.TAKE


def test_specs_count_transitions_and_keep_the_acquire_time_on_renewal() -> None:
    now = datetime(2026, 12, 3, 10, 0, 20, 123456, tzinfo=UTC)
    old = record(OTHER)
    taken = lease_spec(Move.TAKE, record=old, identity=ME, now=now, timings=TIMINGS)
    assert taken == {
        "holderIdentity": ME,
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-12-03T10:00:20.123456Z",
        "renewTime": "2026-12-03T10:00:20.123456Z",
        "leaseTransitions": 4,
    }
    mine = record(ME)
    renewed = lease_spec(Move.RENEW, record=mine, identity=ME, now=now, timings=TIMINGS)
    assert renewed["acquireTime"] == mine.acquired
    assert renewed["leaseTransitions"] == mine.transitions
    assert renewed["renewTime"] == micro_time(now)
    created = lease_spec(Move.CREATE, record=None, identity=ME, now=now, timings=TIMINGS)
    assert created["leaseTransitions"] == 0
    with pytest.raises(ValueError, match="writes nothing"):
        lease_spec(Move.WAIT, record=old, identity=ME, now=now, timings=TIMINGS)


def test_a_released_lease_has_no_holder_and_expires_at_once() -> None:
    spec = released_spec(record(ME))
    assert spec["holderIdentity"] is None
    assert spec["leaseDurationSeconds"] == 1


def test_a_lease_is_read_from_the_api_shape() -> None:
    lease = {
        "metadata": {"resourceVersion": "42"},
        "spec": {
            "holderIdentity": "",
            "leaseDurationSeconds": 15,
            "renewTime": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        },
    }
    read = LeaseRecord.of(lease)
    assert read.holder is None  # an empty holder is a released Lease
    assert read.resource_version == "42"
    assert read.renewed == "2026-01-02T03:04:05.000000Z"
    assert read.transitions == 0


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [(10, 10, 2), (15, 20, 2), (15, 10, 9), (15, 10, 0)],
)
def test_timings_that_could_let_two_lead_are_refused(
    duration: float, deadline: float, retry: float
) -> None:
    with pytest.raises(ElectionSettingsError):
        Timings(lease_duration=duration, renew_deadline=deadline, retry_period=retry)


# --- the elector's loop, against an in-memory Lease with the API server's rules --------


class LeaseStore:
    """One Lease as the API server keeps it: every write must name the version it read."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.refusing = False  # the API server away: every request fails

    async def get_lease(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        if self.refusing:
            raise KubeError("the API server is away")
        return None if self.lease is None else copy.deepcopy(self.lease)

    async def write_lease(
        self, *, namespace: str, name: str, spec: Mapping[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        if self.refusing:
            raise KubeError("the API server is away")
        current = None if self.lease is None else self.lease["metadata"]["resourceVersion"]
        if resource_version != current:
            raise ConflictError(f"version {resource_version} is not {current}")
        self.version += 1
        merged = {**(self.lease or {}).get("spec", {}), **spec}
        spec_now = {key: value for key, value in merged.items() if value is not None}
        self.lease = {"metadata": {"resourceVersion": str(self.version)}, "spec": spec_now}
        return copy.deepcopy(self.lease)


FAST = Timings(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1)


def _elector(store: LeaseStore, identity: str) -> Elector:
    return Elector(
        kube=cast(Kube, store), namespace="ops", name="lease", identity=identity, timings=FAST
    )


async def test_a_standby_waits_while_the_leader_renews_and_takes_over_once_released() -> None:
    store = LeaseStore()
    first, second = _elector(store, "a"), _elector(store, "b")
    never = asyncio.Event()
    assert await first.acquire(never)
    renewing = asyncio.create_task(first.keep())
    waiting = asyncio.create_task(second.acquire(never))
    await asyncio.sleep(FAST.lease_duration * 2)  # twice the Lease: renewals keep it
    assert not waiting.done()
    assert store.lease is not None
    assert store.lease["spec"]["holderIdentity"] == "a"
    renewing.cancel()
    await first.release()
    assert await asyncio.wait_for(waiting, timeout=FAST.retry_period * 5)
    assert store.lease["spec"]["holderIdentity"] == "b"
    assert store.lease["spec"]["leaseTransitions"] == 1


async def test_a_leader_that_cannot_renew_stops_before_a_standby_may_take_over() -> None:
    store = LeaseStore()
    leader = _elector(store, "a")
    assert await leader.acquire(asyncio.Event())
    store.refusing = True
    cut = time.monotonic()
    with pytest.raises(LeadershipLostError, match="no renewal"):
        await asyncio.wait_for(leader.keep(), timeout=FAST.lease_duration * 3)
    stopped = time.monotonic() - cut
    assert not leader.leading
    # Stopped after the renew deadline, and before the Lease (as a standby sees it) ends.
    assert FAST.renew_deadline - FAST.retry_period <= stopped < FAST.lease_duration


async def test_a_leader_whose_lease_another_replica_holds_stops_at_once() -> None:
    store = LeaseStore()
    leader = _elector(store, "a")
    assert await leader.acquire(asyncio.Event())
    assert store.lease is not None
    await store.write_lease(
        namespace="ops",
        name="lease",
        spec={"holderIdentity": "b"},
        resource_version=store.lease["metadata"]["resourceVersion"],
    )
    with pytest.raises(LeadershipLostError, match="held by b"):
        await asyncio.wait_for(leader.keep(), timeout=FAST.lease_duration)
