"""One bus subscription per replica, fanned out to in-process listeners.

WebSockets, cancel waiters and the leader's command loop each listen here
instead of opening their own Redis subscription per client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from trader_api.services.events import Event

logger = logging.getLogger(__name__)

OVERFLOW: Final[Event] = {"type": "overflow"}
"""Put in a listener's queue instead of the events it was too slow to take."""


class Listener:
    """A queue of events for one consumer; ``overflowed`` while it is cut off for falling behind."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = False

    async def get(self) -> Event:
        """Return the next event; after ``OVERFLOW`` the listener receives new events again.

        NB: long-lived consumers (the leader's command loop, the runtime's
        remote controls) must not go deaf after one burst: taking ``OVERFLOW``
        means the backlog is drained, so the hub admits the listener again.
        ``OVERFLOW`` marks the gap; a consumer that cannot live with one
        (a WebSocket) stops there.
        """
        event = await self.queue.get()
        if event is OVERFLOW:
            self.overflowed = False
        return event


class EventHub:
    """Deliver every event to every listener, never blocking the publisher.

    NB: a listener that falls ``maxsize`` events behind is cut off (it gets
    ``OVERFLOW`` and nothing more until it has taken it) rather than slowing
    every other one.
    """

    def __init__(self) -> None:
        self._listeners: set[Listener] = set()

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    @contextmanager
    def listen(self, *, maxsize: int = 1000) -> Iterator[Listener]:
        listener = Listener(maxsize)
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    def dispatch(self, event: Event) -> None:
        for listener in list(self._listeners):
            if listener.overflowed:
                continue
            if listener.queue.qsize() >= listener.queue.maxsize - 1:
                listener.overflowed = True
                listener.queue.put_nowait(OVERFLOW)
                logger.warning("Event listener fell behind and was cut off")
                continue
            listener.queue.put_nowait(event)
