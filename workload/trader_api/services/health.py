"""Readiness of the service's components, as ``/health/ready`` reports them.

Each component has a probe: an async callable returning ``None`` when the
component is fine, or a short reason (``"database unreachable"``). Probes run
concurrently with a timeout, so one hung dependency cannot hang the kubelet's
probe, and a probe that raises counts as a failure rather than a 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final

logger = logging.getLogger(__name__)

HEALTHY: Final = "healthy"
EMBEDDED: Final = "embedded"
"""A database or Redis replaced by its in-process twin: works, persists nothing."""

Probe = Callable[[], Awaitable[str | None]]
"""Return None when healthy, else a reason such as ``"redis unreachable"``."""

COMPONENTS: Final = ("strategy_engine", "risk_manager", "executor", "database", "redis")


@dataclass(frozen=True, slots=True)
class Readiness:
    """The components' states; ready when every one is healthy or embedded."""

    components: Mapping[str, str]

    @property
    def ready(self) -> bool:
        return all(state in (HEALTHY, EMBEDDED) for state in self.components.values())


def constant(state: str) -> Probe:
    """Return a probe for a component whose state cannot change (e.g. ``embedded``)."""

    async def probe() -> str | None:
        return None if state == HEALTHY else state

    return probe


async def check_readiness(
    probes: Mapping[str, Probe], *, timeout_seconds: float = 2.0
) -> Readiness:
    """Run every probe concurrently and report each component's state."""

    async def run(name: str, probe: Probe) -> str:
        try:
            async with asyncio.timeout(timeout_seconds):
                reason = await probe()
        except TimeoutError:
            return f"unhealthy: {name} check timed out after {timeout_seconds:g}s"
        except Exception as exc:
            logger.warning("Readiness probe of %s failed", name, exc_info=exc)
            return f"unhealthy: {name} check failed: {type(exc).__name__}"
        if reason is None:
            return HEALTHY
        if reason == EMBEDDED:
            return EMBEDDED
        return f"unhealthy: {reason}"

    names = list(probes)
    states = await asyncio.gather(*(run(name, probes[name]) for name in names))
    return Readiness(components=dict(zip(names, states, strict=True)))
