"""Event fan-out: every replica's WebSockets see every order, fill and tick.

Events are JSON objects. The Redis bus publishes them on one pub/sub channel
per bot; the memory bus hands them to in-process queues. Delivery is
at-most-once and live only (pub/sub keeps no history): a WebSocket client
that needs the past reads the REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from trader_api.storage.errors import StorageUnavailableError
from trader_api.storage.redis import ping_redis

logger = logging.getLogger(__name__)

_SUBSCRIBE_TIMEOUT_S: Final = 5.0
_DEFAULT_QUEUE_SIZE: Final = 1000


def _to_json(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)  # Decimal and UUID: exact strings, never floats


def encode_event(event: Mapping[str, Any]) -> str:
    """Serialize an event; Decimals and UUIDs become strings, datetimes ISO 8601."""
    return json.dumps(dict(event), default=_to_json, separators=(",", ":"))


class RedisEventBus:
    """An ``EventBus`` over Redis pub/sub, one channel per bot."""

    def __init__(self, redis: Redis, *, channel: str = "traderbot:events") -> None:
        self._redis = redis
        self._channel = channel
        self._pubsubs: set[PubSub] = set()

    async def publish(self, event: Mapping[str, Any]) -> None:
        payload = encode_event(event)
        try:
            await self._redis.publish(self._channel, payload)
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc

    async def publish_many(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Publish ``events`` in order through one pipeline (no MULTI: one write, one read)."""
        pipeline = self._redis.pipeline(transaction=False)
        for event in events:
            pipeline.publish(self._channel, encode_event(event))
        try:
            await pipeline.execute()
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        pubsub = self._redis.pubsub()
        self._pubsubs.add(pubsub)
        try:
            try:
                await pubsub.subscribe(self._channel)
                await self._await_confirmation(pubsub)
            except (RedisError, OSError) as exc:
                raise StorageUnavailableError(f"redis unreachable: {exc}") from exc
            yield self._messages(pubsub)
        finally:
            self._pubsubs.discard(pubsub)
            await _close_quietly(pubsub)

    @staticmethod
    async def _await_confirmation(pubsub: PubSub) -> None:
        """Wait for Redis to confirm SUBSCRIBE, so events published from now on are seen."""
        async with asyncio.timeout(_SUBSCRIBE_TIMEOUT_S):
            while True:
                message = await pubsub.get_message(timeout=_SUBSCRIBE_TIMEOUT_S)
                if message is not None and message["type"] == "subscribe":
                    return

    @staticmethod
    async def _messages(pubsub: PubSub) -> AsyncIterator[dict[str, Any]]:
        try:
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                try:
                    event = json.loads(message["data"])
                except (TypeError, ValueError):
                    logger.warning("dropped an event that is not JSON: %r", message["data"])
                    continue
                if isinstance(event, dict):
                    yield event
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc

    async def ping(self) -> None:
        await ping_redis(self._redis)

    async def close(self) -> None:
        """Close open subscriptions (their iterators end); the shared client stays open."""
        for pubsub in list(self._pubsubs):
            await _close_quietly(pubsub)


async def _close_quietly(pubsub: PubSub) -> None:
    """Drop a subscription's connection; errors are moot, it is going away anyway."""
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated


_CLOSED: Final = object()


class MemoryEventBus:
    """The same fan-out between tasks of one process (embedded mode).

    NB: a subscriber that falls ``queue_size`` events behind loses the oldest
    ones (logged), as a slow Redis subscriber would be cut off: one slow
    WebSocket must never stall the engine.
    """

    def __init__(self, *, queue_size: int = _DEFAULT_QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._queues: set[asyncio.Queue[object]] = set()

    async def publish(self, event: Mapping[str, Any]) -> None:
        payload = encode_event(event)  # same serialization as Redis: same types come out
        for queue in list(self._queues):
            if queue.full():
                queue.get_nowait()
                logger.warning("event subscriber lagging: dropped its oldest event")
            queue.put_nowait(payload)

    async def publish_many(self, events: Sequence[Mapping[str, Any]]) -> None:
        for event in events:
            await self.publish(event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=self._queue_size)
        self._queues.add(queue)
        try:
            yield self._messages(queue)
        finally:
            self._queues.discard(queue)

    @staticmethod
    async def _messages(queue: asyncio.Queue[object]) -> AsyncIterator[dict[str, Any]]:
        while True:
            payload = await queue.get()
            if payload is _CLOSED:
                return
            event = json.loads(str(payload))
            if isinstance(event, dict):
                yield event

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        for queue in list(self._queues):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(_CLOSED)
