"""Rate limiter, leader lease and event bus: on a real Redis and on their in-process twins.

"Two replicas" are two separate Redis clients (two connection pools), or two
objects sharing one in-process registry/bus for the memory twins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from redis.asyncio import Redis

from support.servers import RedisServer
from trader_api.storage import (
    EventBus,
    LeaderLease,
    MemoryEventBus,
    MemoryLeaderLease,
    MemoryLeaseRegistry,
    MemoryTokenBucketLimiter,
    RateLimiter,
    RedisEventBus,
    RedisLeaderLease,
    RedisTokenBucketLimiter,
    StorageUnavailableError,
    connect_redis,
)


@dataclass
class Backend:
    """Makes per-replica helpers of one kind, all sharing the same state."""

    kind: str
    redis_url: str | None = None
    clients: list[Redis] = field(default_factory=list)
    registry: MemoryLeaseRegistry = field(default_factory=MemoryLeaseRegistry)
    memory_bus: MemoryEventBus = field(default_factory=MemoryEventBus)
    memory_limiter: MemoryTokenBucketLimiter = field(default_factory=MemoryTokenBucketLimiter)

    def _client(self) -> Redis:
        assert self.redis_url is not None
        client = connect_redis(self.redis_url)
        self.clients.append(client)
        return client

    def limiter(self) -> RateLimiter:
        if self.kind == "redis":
            return RedisTokenBucketLimiter(self._client())
        return self.memory_limiter

    def lease(self, identity: str, *, ttl_s: float = 10.0) -> LeaderLease:
        if self.kind == "redis":
            return RedisLeaderLease(self._client(), name="bot", identity=identity, ttl_s=ttl_s)
        return MemoryLeaderLease(name="bot", identity=identity, ttl_s=ttl_s, registry=self.registry)

    def bus(self) -> EventBus:
        if self.kind == "redis":
            return RedisEventBus(self._client())
        return self.memory_bus


@pytest.fixture(params=["redis", "memory"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    made = Backend(kind=request.param, redis_url=url)
    yield made
    for client in made.clients:
        await client.aclose()


async def wait_until(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0, what: str
) -> None:
    """Poll an async condition until true; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.01)  # a polling interval, not synchronization


# -- rate limiter ---------------------------------------------------------------------------


async def test_the_bucket_allows_a_burst_then_refuses_with_a_retry_hint(backend: Backend) -> None:
    limiter = backend.limiter()
    decisions = [await limiter.acquire("1.2.3.4", rate=0.01, burst=3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [round(d.remaining) for d in decisions[:3]] == [2, 1, 0]
    refused = decisions[3]
    assert 0 < refused.retry_after_s <= 100  # one token at 0.01/s
    assert refused.retry_after_s > 90  # minus what trickled in meanwhile


async def test_buckets_of_different_keys_are_independent(backend: Backend) -> None:
    limiter = backend.limiter()
    assert (await limiter.acquire("a", rate=0.01, burst=1)).allowed
    assert not (await limiter.acquire("a", rate=0.01, burst=1)).allowed
    assert (await limiter.acquire("b", rate=0.01, burst=1)).allowed


async def test_two_replicas_share_one_budget_even_when_racing(backend: Backend) -> None:
    replicas = [backend.limiter(), backend.limiter()]
    decisions = await asyncio.gather(
        *(replicas[i % 2].acquire("client", rate=0.01, burst=10) for i in range(40))
    )
    assert sum(d.allowed for d in decisions) == 10


async def test_tokens_come_back_at_the_refill_rate(backend: Backend) -> None:
    limiter = backend.limiter()
    assert (await limiter.acquire("k", rate=20, burst=1)).allowed
    refused = await limiter.acquire("k", rate=20, burst=1)
    assert not refused.allowed
    assert refused.retry_after_s <= 0.05
    started = time.monotonic()

    async def allowed_again() -> bool:
        return (await limiter.acquire("k", rate=20, burst=1)).allowed

    await wait_until(allowed_again, timeout_s=5, what="a refilled token")
    assert time.monotonic() - started < 5


async def test_invalid_limits_are_rejected(backend: Backend) -> None:
    limiter = backend.limiter()
    with pytest.raises(ValueError, match="rate"):
        await limiter.acquire("k", rate=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        await limiter.acquire("k", rate=1, burst=0)
    with pytest.raises(ValueError, match="cost"):
        await limiter.acquire("k", rate=1, burst=2, cost=3)


# -- leader lease ---------------------------------------------------------------------------


async def test_only_one_replica_holds_the_lease(backend: Backend) -> None:
    a, b = backend.lease("pod-a"), backend.lease("pod-b")
    assert await a.try_acquire()
    assert not await b.try_acquire()
    assert a.is_leader
    assert not b.is_leader
    assert await b.holder() == "pod-a"
    assert await a.renew()
    assert not await b.renew()


async def test_released_lease_is_taken_at_once_by_another_replica(backend: Backend) -> None:
    a, b = backend.lease("pod-a"), backend.lease("pod-b")
    assert await a.try_acquire()
    await b.release()  # not b's: a no-op
    assert await b.holder() == "pod-a"
    await a.release()
    assert not a.is_leader
    assert await a.holder() is None
    assert await b.try_acquire()
    assert await a.holder() == "pod-b"


async def test_the_lease_moves_when_its_holder_stops_renewing(backend: Backend) -> None:
    a, b = backend.lease("pod-a", ttl_s=0.3), backend.lease("pod-b", ttl_s=0.3)
    assert await a.try_acquire()
    await wait_until(b.try_acquire, what="pod-b taking the expired lease")
    assert b.is_leader
    assert not a.is_leader  # a's local view expired no later than the key
    assert not await a.renew()  # and it can never extend b's lease
    assert await b.holder() == "pod-b"


async def test_is_leader_turns_false_locally_when_the_ttl_passes_unrenewed(
    backend: Backend,
) -> None:
    a = backend.lease("pod-a", ttl_s=0.2)
    assert await a.try_acquire()

    async def not_leader() -> bool:
        return not a.is_leader

    await wait_until(not_leader, what="local lease expiry")


async def test_a_restarted_pod_with_the_same_name_is_a_new_holder(backend: Backend) -> None:
    old, new = backend.lease("pod-a"), backend.lease("pod-a")
    assert await old.try_acquire()
    assert not await new.try_acquire()


# -- event bus ------------------------------------------------------------------------------


async def _next_event(events: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(anext(events), timeout=5)


async def test_every_subscriber_on_every_replica_sees_every_event(backend: Backend) -> None:
    publisher, replica_1, replica_2 = backend.bus(), backend.bus(), backend.bus()
    order_id = UUID("12345678-1234-5678-1234-567812345678")
    event = {
        "type": "order",
        "id": order_id,
        "price": Decimal("42000.10"),
        "at": datetime(2026, 1, 5, tzinfo=UTC),
    }
    async with replica_1.subscribe() as first, replica_2.subscribe() as second:
        await publisher.publish(event)
        await publisher.publish({"type": "fill", "n": 2})
        expected = {
            "type": "order",
            "id": str(order_id),
            "price": "42000.10",
            "at": "2026-01-05T00:00:00+00:00",
        }
        for events in (first, second):
            assert await _next_event(events) == expected
            assert await _next_event(events) == {"type": "fill", "n": 2}


async def test_events_published_together_arrive_in_order_on_every_replica(
    backend: Backend,
) -> None:
    publisher, replica_1, replica_2 = backend.bus(), backend.bus(), backend.bus()
    batch = [{"type": "order", "n": n} for n in range(5)]
    async with replica_1.subscribe() as first, replica_2.subscribe() as second:
        await publisher.publish_many(batch)
        await publisher.publish({"type": "fill", "n": 5})
        for events in (first, second):
            assert [await _next_event(events) for _ in range(6)] == [
                *batch,
                {"type": "fill", "n": 5},
            ]


async def test_a_subscriber_sees_only_what_was_published_after_it_joined(
    backend: Backend,
) -> None:
    bus = backend.bus()
    await bus.publish({"n": 1})
    async with bus.subscribe() as events:
        await bus.publish({"n": 2})
        assert await _next_event(events) == {"n": 2}


async def test_closing_the_bus_ends_its_subscriptions(backend: Backend) -> None:
    bus = backend.bus()
    async with bus.subscribe() as events:
        await bus.close()
        remaining = await asyncio.wait_for(_drain(events), timeout=5)
    assert remaining == []


async def _drain(events: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event async for event in events]


# -- outages --------------------------------------------------------------------------------


async def test_a_stopped_redis_is_reported_unavailable_then_recovers(
    redis_server: RedisServer, redis_url: str
) -> None:
    client = connect_redis(redis_url)
    limiter = RedisTokenBucketLimiter(client)
    lease = RedisLeaderLease(client, name="bot", identity="pod-a", ttl_s=5)
    bus = RedisEventBus(client)
    try:
        await limiter.ping()
        redis_server.stop()
        for call in (
            limiter.ping(),
            limiter.acquire("k", rate=1, burst=1),
            lease.try_acquire(),
            bus.publish({"n": 1}),
        ):
            with pytest.raises(StorageUnavailableError):
                await call
        redis_server.start()
        await limiter.ping()
        assert (await limiter.acquire("k", rate=1, burst=1)).allowed
        assert await lease.try_acquire()
    finally:
        await client.aclose()
