"""A fake monotonic clock and a sleep that advances it: pacing tests run in no time."""

from __future__ import annotations


class FakeClock:
    """Monotonic seconds that move only when slept on (or moved by a test)."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        """Record the delay and jump the clock past it, as if the wait had happened."""
        self.sleeps.append(delay)
        self.now += delay
