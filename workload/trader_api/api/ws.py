"""``/ws``: orders, fills, ticks (and klines, risk, strategy switches) as JSON messages.

Every message has a ``type``. ``?types=order,fill`` narrows the stream. A
client that falls too far behind is closed with 1013 (try again later); on
shutdown every socket is closed with 1001 (going away).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from trader_api.api.auth import API_KEY_HEADER, check_read_key
from trader_api.api.lifecycle import GOING_AWAY, Lifecycle
from trader_api.services.events import PUBLIC_TYPES
from trader_api.services.hub import OVERFLOW, Listener
from trader_api.services.runtime import Runtime

logger = logging.getLogger(__name__)
router = APIRouter(tags=["stream"])

TRY_AGAIN_LATER = 1013
POLICY_VIOLATION = 1008


@router.websocket("/ws")
async def stream(
    websocket: WebSocket,
    types: Annotated[str | None, Query(description="comma list, e.g. order,fill,tick")] = None,
) -> None:
    runtime: Runtime = websocket.app.state.runtime
    lifecycle: Lifecycle = websocket.app.state.lifecycle
    refusal = _refusal(websocket, runtime=runtime, lifecycle=lifecycle, types=types)
    if refusal is not None:
        # NB: accepted first, then closed: a close before the accept is an HTTP
        # 403 with an empty body on a real server (a browser sees only 1006),
        # while the close code and reason are what clients read (docs/api.md).
        await websocket.accept()
        await websocket.close(*refusal)
        return
    wanted = _wanted(types)
    await websocket.accept()
    closing: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
    finished = asyncio.Event()

    async def close_for_shutdown(code: int, reason: str) -> None:
        if not closing.done():
            closing.set_result((code, reason))
        await finished.wait()

    handle = lifecycle.websocket_opened(close_for_shutdown)
    runtime.metrics.websocket_connections.inc()
    try:
        with runtime.hub.listen() as listener:
            await _pump(websocket, listener=listener, wanted=wanted, closing=closing)
    except (WebSocketDisconnect, RuntimeError):
        logger.debug("WebSocket client disconnected")
    finally:
        runtime.metrics.websocket_connections.dec()
        lifecycle.websocket_closed(handle)
        finished.set()


def _wanted(types: str | None) -> frozenset[str]:
    if not types:
        return PUBLIC_TYPES
    return frozenset(t.strip() for t in types.split(",") if t.strip())


def _refusal(
    websocket: WebSocket, *, runtime: Runtime, lifecycle: Lifecycle, types: str | None
) -> tuple[int, str] | None:
    """Return the close code and reason to refuse this connection with, or None to accept."""
    unknown = sorted(_wanted(types) - PUBLIC_TYPES)
    if unknown:
        return POLICY_VIOLATION, f"unknown types {unknown}; known: {sorted(PUBLIC_TYPES)}"
    if lifecycle.draining:
        return GOING_AWAY, "server shutting down"
    if runtime.settings.reads_require_api_key:
        try:
            check_read_key(
                configured=runtime.settings.api_key,
                read_only=runtime.settings.read_api_key,
                presented=websocket.headers.get(API_KEY_HEADER),
            )
        except HTTPException as exc:
            return POLICY_VIOLATION, str(exc.detail)
    return None


async def _pump(
    websocket: WebSocket,
    *,
    listener: Listener,
    wanted: frozenset[str],
    closing: asyncio.Future[tuple[int, str]],
) -> None:
    """Forward events until the client leaves, falls behind, or the server shuts down."""
    receiver = asyncio.create_task(_read_until_disconnect(websocket))
    try:
        while True:
            getter = asyncio.ensure_future(listener.get())
            waiting: set[asyncio.Future[Any]] = {getter, receiver, closing}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
            if closing in done:
                await _close(websocket, *closing.result())
                return
            if receiver in done:
                return  # the client went away
            event = getter.result()
            if event is OVERFLOW:
                await _close(websocket, TRY_AGAIN_LATER, "too slow: events dropped")
                return
            if event.get("type") in wanted:
                await websocket.send_json(event)
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await receiver


async def _read_until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code, reason)
