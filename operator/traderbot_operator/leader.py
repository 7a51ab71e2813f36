"""Leader election over a ``coordination.k8s.io`` Lease: one active operator among replicas.

The rules are client-go's (``tools/leaderelection``), which every controller-runtime
operator (CloudNativePG's among them) follows:

- a replica takes the Lease when it is missing, released (no holder) or expired;
- expiry is judged on this replica's own clock, from when it first saw the current
  record, never from the ``renewTime`` another machine wrote (clocks differ);
- the leader renews every ``retry_period`` and stops leading once ``renew_deadline``
  passes without a renewal, which is before anyone else may take over
  (``lease_duration``): so two replicas never act as leader at once;
- every write carries the ``resourceVersion`` it read, so of two replicas racing
  for the same expired Lease only one wins (the other gets 409 Conflict).

This module is pure: it decides and builds bodies. ``elect`` (in ``election.py``)
does the I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

LEASE_API_VERSION: Final = "coordination.k8s.io/v1"
LEASE_KIND: Final = "Lease"
# NB: client-go's JitterFactor: a standby waits retry_period * (1 + up to 1.2) between
# attempts, and renew_deadline must leave room for that.
JITTER_FACTOR: Final = 1.2


class ElectionSettingsError(ValueError):
    """Timings that would let two replicas lead at once, or never renew in time."""


@dataclass(frozen=True)
class Timings:
    """How long a Lease lasts, how long a leader may fail to renew, how often to try."""

    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ElectionSettingsError(
                f"the lease duration ({self.lease_duration}s) must be longer than the "
                f"renew deadline ({self.renew_deadline}s), or a standby could take over "
                "while the leader still acts"
            )
        if not self.renew_deadline > JITTER_FACTOR * self.retry_period:
            raise ElectionSettingsError(
                f"the renew deadline ({self.renew_deadline}s) must be longer than "
                f"{JITTER_FACTOR} x the retry period ({self.retry_period}s)"
            )
        if self.retry_period <= 0 or self.lease_duration < 1:
            raise ElectionSettingsError("the retry period and the lease duration must be positive")


@dataclass(frozen=True)
class LeaseRecord:
    """The part of a Lease the election reads and writes."""

    holder: str | None
    duration_seconds: int
    acquired: str | None
    renewed: str | None
    transitions: int
    resource_version: str | None

    @classmethod
    def of(cls, lease: dict[str, Any]) -> LeaseRecord:
        """Read a Lease object (as a dict)."""
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or None,
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquired=_text(spec.get("acquireTime")),
            renewed=_text(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
        )


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return micro_time(value)
    return str(value)


def micro_time(moment: datetime) -> str:
    """Format ``moment`` as a Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Move(enum.Enum):
    """What a replica does on one attempt."""

    CREATE = "create"  # no Lease yet
    TAKE = "take"  # released or expired: take it over
    RENEW = "renew"  # ours: renew it
    WAIT = "wait"  # another replica holds it and it has not expired


@dataclass(frozen=True)
class Sighting:
    """A Lease record and when this replica first saw it (its own monotonic clock)."""

    record: LeaseRecord
    first_seen: float

    def after(self, record: LeaseRecord, *, now: float) -> Sighting:
        """Return the sighting once ``record`` is read at ``now``: a changed record restarts it.

        NB: the record's identity is its resourceVersion: any write (a renewal) changes it.
        """
        if record.resource_version == self.record.resource_version:
            return self
        return Sighting(record=record, first_seen=now)


def decide(sighting: Sighting | None, *, identity: str, now: float, timings: Timings) -> Move:
    """Decide this replica's move from the Lease as last read (None: there is none)."""
    if sighting is None:
        return Move.CREATE
    record = sighting.record
    if record.holder == identity:
        return Move.RENEW
    if record.holder is None:
        return Move.TAKE
    # NB: the duration the holder wrote, not ours: a holder with a longer one is still
    # within its term; a zero or missing duration falls back to ours.
    duration = record.duration_seconds or timings.lease_duration
    if now - sighting.first_seen < duration:
        return Move.WAIT
    return Move.TAKE


def lease_spec(
    move: Move, *, record: LeaseRecord | None, identity: str, now: datetime, timings: Timings
) -> dict[str, Any]:
    """Return the Lease ``spec`` to write for ``move`` (CREATE, TAKE or RENEW)."""
    if move is Move.WAIT:
        raise ValueError("a waiting replica writes nothing")
    stamp = micro_time(now)
    renewing = move is Move.RENEW and record is not None
    transitions = record.transitions if record is not None else 0
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(timings.lease_duration)),
        "acquireTime": record.acquired if renewing and record is not None else stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions if move is not Move.TAKE else transitions + 1,
    }


def released_spec(record: LeaseRecord) -> dict[str, Any]:
    """Return the ``spec`` a leader writes as it stops: no holder, so a standby takes over at once.

    NB: client-go's ReleaseOnCancel writes the same (an empty holder, a 1 s duration).
    """
    return {
        "holderIdentity": None,
        "leaseDurationSeconds": 1,
        "acquireTime": record.acquired,
        "renewTime": record.renewed,
        "leaseTransitions": record.transitions,
    }
