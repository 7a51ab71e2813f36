"""Leader election over a Lease: standby, lead, renew, release (the I/O of ``leader``).

One replica of the operator leads and reconciles; the others wait, answering
their liveness probe, and take over once the leader releases the Lease (a clean
stop) or fails to renew it for ``lease_duration`` (a crash, a lost node, a cut
network).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from traderbot_operator import metrics
from traderbot_operator.kube import ConflictError, Kube, KubeError
from traderbot_operator.leader import (
    LeaseRecord,
    Move,
    Sighting,
    Timings,
    decide,
    lease_spec,
    released_spec,
)

logger = logging.getLogger(__name__)


class LeadershipLostError(Exception):
    """The leader could not renew its Lease within the renew deadline: it must stop acting."""


@dataclass
class Elector:
    """One replica's part in the election for Lease ``namespace``/``name``."""

    kube: Kube
    namespace: str
    name: str
    identity: str
    timings: Timings = field(default_factory=Timings)
    clock: Callable[[], float] = time.monotonic
    sighting: Sighting | None = None
    leading: bool = False

    async def _attempt(self) -> bool:
        """Read the Lease and make one move; return whether this replica now holds it."""
        lease = await self.kube.get_lease(namespace=self.namespace, name=self.name)
        now = self.clock()
        if lease is None:
            self.sighting = None
        else:
            seen = LeaseRecord.of(lease)
            self.sighting = (
                Sighting(record=seen, first_seen=now)
                if self.sighting is None
                else self.sighting.after(seen, now=now)
            )
        move = decide(self.sighting, identity=self.identity, now=now, timings=self.timings)
        if move is Move.WAIT:
            return False
        record = self.sighting.record if self.sighting is not None else None
        spec = lease_spec(
            move, record=record, identity=self.identity, now=datetime.now(UTC), timings=self.timings
        )
        written = await self.kube.write_lease(
            namespace=self.namespace,
            name=self.name,
            spec=spec,
            resource_version=record.resource_version if record is not None else None,
        )
        self.sighting = Sighting(record=LeaseRecord.of(written), first_seen=self.clock())
        if move is not Move.RENEW:
            logger.info(
                "leading: took Lease %s/%s as %s (%s)",
                self.namespace,
                self.name,
                self.identity,
                "new" if move is Move.CREATE else f"was {record.holder if record else None}",
            )
        return True

    def _pause(self) -> float:
        # NB: jittered like client-go's wait.JitterUntil, so standbys do not knock in step.
        return self.timings.retry_period * (1 + random.uniform(0, 1.2))  # noqa: S311 - not crypto

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica holds the Lease; return False if ``stop`` is set first."""
        metrics.LEADER.set(0)
        waiting_logged = False
        while not stop.is_set():
            try:
                if await asyncio.wait_for(self._attempt(), timeout=self.timings.renew_deadline):
                    self.leading = True
                    metrics.LEADER.set(1)
                    metrics.LEADERSHIP_CHANGES.inc()
                    return True
                if not waiting_logged and self.sighting is not None:
                    logger.info(
                        "standby: Lease %s/%s is held by %s",
                        self.namespace,
                        self.name,
                        self.sighting.record.holder,
                    )
                    waiting_logged = True
            except ConflictError:
                logger.info(
                    "standby: another replica took Lease %s/%s first", self.namespace, self.name
                )
            except (KubeError, OSError, TimeoutError) as error:
                logger.warning("standby: cannot read or take the Lease: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._pause())
        return False

    async def keep(self) -> None:
        """Renew the Lease every retry period; raise LeadershipLostError past the renew deadline.

        NB: each renewal gets only the time left until the deadline, so a hung API
        request cannot stretch this replica's term past the point where a standby
        may take over.
        """
        last_renewal = self.clock()
        while True:
            await asyncio.sleep(self.timings.retry_period)
            left = self.timings.renew_deadline - (self.clock() - last_renewal)
            if left > 0:
                try:
                    held = await asyncio.wait_for(self._attempt(), timeout=left)
                except (ConflictError, KubeError, OSError, TimeoutError) as error:
                    logger.warning("leader: renewing the Lease failed: %s", error)
                else:
                    if not held:
                        holder = self.sighting.record.holder if self.sighting else None
                        self._lost(f"Lease {self.namespace}/{self.name} is now held by {holder}")
                    last_renewal = self.clock()
                    continue
            if self.clock() - last_renewal >= self.timings.renew_deadline:
                self._lost(
                    f"no renewal of Lease {self.namespace}/{self.name} for "
                    f"{self.timings.renew_deadline:g}s"
                )

    def _lost(self, why: str) -> None:
        self.leading = False
        metrics.LEADER.set(0)
        raise LeadershipLostError(why)

    async def release(self) -> None:
        """Give the Lease up on a clean stop, so a standby takes over without waiting it out."""
        if not self.leading or self.sighting is None:
            return
        self.leading = False
        metrics.LEADER.set(0)
        record = self.sighting.record
        try:
            await asyncio.wait_for(
                self.kube.write_lease(
                    namespace=self.namespace,
                    name=self.name,
                    spec=released_spec(record),
                    resource_version=record.resource_version,
                ),
                timeout=self.timings.retry_period * 2,
            )
            logger.info("released Lease %s/%s", self.namespace, self.name)
        except (ConflictError, KubeError, OSError, TimeoutError) as error:
            # Not ours any more, or the API is away: the Lease then simply expires.
            logger.warning("could not release the Lease (it will expire): %s", error)
