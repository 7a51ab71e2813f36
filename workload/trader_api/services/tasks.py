"""Stopping background tasks so that a shutdown cannot hang on one of them."""

from __future__ import annotations

import asyncio
import io
from typing import Any

# How often a task that outlived its cancel is cancelled again.
_RECANCEL_SECONDS = 0.1


async def cancel_and_wait(task: asyncio.Task[Any], *, grace_seconds: float) -> bool:
    """Cancel ``task``, then wait up to ``grace_seconds`` for it to end, cancelling it again.

    Return True once it has ended (its outcome is left on the task), False if it
    still runs at the deadline.

    NB: one cancel is not always enough: on Python 3.11 ``asyncio.wait_for``
    (under asyncpg and redis-py calls) can swallow it when the call completes
    just as the cancel lands (bpo-42130), and a ``while True`` loop then runs on
    for ever. A second cancel lands at the loop's next await.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_seconds
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(_RECANCEL_SECONDS, remaining))
    return True


def describe_stack(task: asyncio.Task[Any]) -> str:
    """Where ``task`` is suspended now, for a log line that says why it did not stop."""
    buffer = io.StringIO()
    task.print_stack(file=buffer)
    return buffer.getvalue()
