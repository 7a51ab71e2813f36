"""Graceful shutdown, in the seed's order.

On SIGTERM the API (1) refuses new requests with 503, (2) lets in-flight
requests finish, (3) closes WebSockets with code 1001 (going away), then (4)
the caller releases resources (leader lease, pools). Kubernetes gives the pod
30 s; ``SHUTDOWN_GRACE_SECONDS`` (25 s by default) bounds steps 1-3.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

GOING_AWAY = 1001
"""WebSocket close code for "server going away" (RFC 6455, 7.4.1)."""

QUIET_SECONDS = 0.5
"""How long no new request must arrive before the listener closes on shutdown."""

CloseSocket = Callable[[int, str], Awaitable[None]]


class Lifecycle:
    """Counts in-flight requests and open WebSockets, and drains them on shutdown.

    NB: the counters are only touched from the event loop thread, so they
    need no lock; ``_idle`` is set exactly while nothing is in flight.
    """

    def __init__(self) -> None:
        self._draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._sockets: dict[int, CloseSocket] = {}
        self._last_request_at = 0.0
        self._next_socket = 0

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def request_started(self) -> None:
        self._last_request_at = time.monotonic()
        self._in_flight += 1
        self._idle.clear()

    def request_finished(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    def websocket_opened(self, close: CloseSocket) -> int:
        """Register a socket to be closed with 1001 on drain; return its handle."""
        self._next_socket += 1
        self._sockets[self._next_socket] = close
        return self._next_socket

    def websocket_closed(self, handle: int) -> None:
        self._sockets.pop(handle, None)

    async def _settle(self, *, deadline: float, grace_seconds: float) -> bool:
        """Wait until nothing is in flight and no request has arrived for a quiet spell.

        NB: clients (and a Service's endpoints) keep sending for a moment after
        SIGTERM; each gets a 503 while we wait. Closing the listener as soon as
        the in-flight count first touches zero would instead reset requests
        already sitting in accepted connections.
        """
        quiet = min(QUIET_SECONDS, grace_seconds / 4)
        while True:
            remaining = deadline - time.monotonic()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=max(remaining, 0))
            except TimeoutError:
                logger.warning(
                    "Shutdown grace period over with requests still in flight",
                    extra={"in_flight": self._in_flight, "grace_seconds": grace_seconds},
                )
                return False
            calm_for = time.monotonic() - self._last_request_at
            if calm_for >= quiet or time.monotonic() >= deadline:
                return True
            await asyncio.sleep(min(quiet - calm_for, max(deadline - time.monotonic(), 0)))

    async def drain(self, *, grace_seconds: float) -> bool:
        """Refuse new requests, wait for in-flight ones, close WebSockets with 1001.

        Return True when everything finished within ``grace_seconds``; on
        False the caller cancels what is left. Calling it twice is harmless.
        """
        if self._draining and not self._sockets:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=grace_seconds)
            return self._in_flight == 0
        started = time.monotonic()
        self._draining = True
        logger.info(
            "Shutting down: refusing new requests",
            extra={"in_flight": self._in_flight, "websockets": len(self._sockets)},
        )
        finished = await self._settle(deadline=started + grace_seconds, grace_seconds=grace_seconds)
        sockets = list(self._sockets.values())
        self._sockets.clear()
        if sockets:
            remaining = max(0.5, grace_seconds - (time.monotonic() - started))
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(close(GOING_AWAY, "server shutting down") for close in sockets),
                    return_exceptions=True,
                ),
                timeout=remaining,
            )
            for result in results:
                if isinstance(result, Exception):
                    logger.debug("WebSocket was already gone at shutdown", exc_info=result)
        logger.info(
            "Drained",
            extra={"seconds": round(time.monotonic() - started, 3), "websockets": len(sockets)},
        )
        return finished
