"""The in-process event hub: a slow listener is cut off, told so, then served again."""

from __future__ import annotations

import asyncio

from trader_api.services.hub import OVERFLOW, EventHub


async def test_a_listener_that_fell_behind_gets_overflow_then_new_events() -> None:
    hub = EventHub()
    with hub.listen(maxsize=4) as slow, hub.listen(maxsize=100) as fast:
        for n in range(10):
            hub.dispatch({"type": "tick", "n": n})
        taken = [await slow.get() for _ in range(4)]
        assert taken == [{"type": "tick", "n": n} for n in range(3)] + [OVERFLOW]
        assert slow.queue.empty()

        hub.dispatch({"type": "cancel", "n": 10})
        async with asyncio.timeout(2):  # a deaf listener would wait for ever
            assert await slow.get() == {"type": "cancel", "n": 10}
        assert [await fast.get() for _ in range(11)][-1] == {"type": "cancel", "n": 10}


async def test_a_cut_off_listener_gets_nothing_until_it_takes_the_overflow() -> None:
    hub = EventHub()
    with hub.listen(maxsize=2) as slow:
        hub.dispatch({"type": "tick", "n": 0})
        hub.dispatch({"type": "tick", "n": 1})  # no room left: cut off
        hub.dispatch({"type": "tick", "n": 2})
        assert slow.overflowed
        assert [await slow.get(), await slow.get()] == [{"type": "tick", "n": 0}, OVERFLOW]
        assert not slow.overflowed
