"""What the benchmarks share: a fixed-rate load loop and the percentile they report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


async def fixed_rate(
    call: Callable[[int], Awaitable[Any]], *, count: int, rate: float
) -> list[float]:
    """Start ``call(i)`` at ``t0 + i/rate``; return latencies (ms) from the scheduled start.

    NB: measured from the scheduled start, not from when the call began, so a
    stalled loop shows up as latency (no coordinated omission).
    """
    latencies: list[float] = []
    t0 = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        scheduled = t0 + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        await call(i)
        latencies.append((time.perf_counter() - scheduled) * 1000)

    await asyncio.gather(*(one(i) for i in range(count)))
    return latencies


def percentile(samples: Sequence[float], q: float) -> float:
    """Return the nearest-rank ``q`` quantile of ``samples`` (``q`` in 0..1)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
