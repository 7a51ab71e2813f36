"""A shutdown ends even when a task swallows its cancel (Python 3.11's wait_for can, bpo-42130)."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from trader_api.api.app import create_app
from trader_api.config import Settings
from trader_api.services.runtime import Runtime
from trader_api.services.tasks import cancel_and_wait, describe_stack
from trader_api.storage import RetentionStatus
from unit.workload.api_support import scripted_market

# Far above what a stop takes (well under a second) and far below "for ever".
HANG = 30.0


T = TypeVar("T")


async def swallow_one_cancel(result: T) -> T:
    """Wait, and when cancelled, carry on as the racing wait_for does."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()
    return result


async def test_a_task_that_swallows_its_first_cancel_is_cancelled_again() -> None:
    async def loop_for_ever() -> None:
        await swallow_one_cancel(None)
        await asyncio.Event().wait()  # the loop's next await: never set

    task = asyncio.create_task(loop_for_ever())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, grace_seconds=HANG)
    assert task.cancelled()


async def test_a_task_that_never_ends_is_reported_at_the_deadline_with_its_stack() -> None:
    async def deaf() -> None:
        while True:
            await swallow_one_cancel(None)

    task = asyncio.create_task(deaf())
    await asyncio.sleep(0)
    assert not await cancel_and_wait(task, grace_seconds=0.3)
    assert not task.done()
    assert "deaf" in describe_stack(task)
    task.get_coro().close()  # the test's own task: ended without a cancel


async def test_the_app_stops_when_an_engine_child_swallows_its_cancel() -> None:
    runtime = await Runtime.from_settings(Settings(pod_name="stop"), market=scripted_market())
    entered = asyncio.Event()
    real = runtime.store.retention_status

    async def retention_status() -> RetentionStatus:
        entered.set()
        return await swallow_one_cancel(await real())

    runtime.store.retention_status = retention_status  # type: ignore[method-assign]
    app = create_app(runtime)
    stopping = asyncio.create_task(_run_until(app, entered))
    done, _ = await asyncio.wait({stopping}, timeout=HANG)
    assert done, "the app's shutdown hung on the engine"
    stopping.result()
    assert not runtime.engine.running


async def _run_until(app: Any, entered: asyncio.Event) -> None:
    async with app.router.lifespan_context(app):
        await entered.wait()
