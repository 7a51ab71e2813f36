"""Leader election by lease: exactly one replica runs strategies and the executor.

The lease is a key holding the holder's unique token with a TTL. Taking it is
``SET NX PX``; renewing and releasing compare the token first (in Lua, so the
check and the write are one step), so a replica that lost the lease can never
extend or delete its successor's.

NB: ``is_leader`` is judged by the local clock from the moment *before* the
last successful acquire/renew was sent, so it turns false no later than the
key expires in Redis: two replicas never both believe they lead.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from trader_api.storage.errors import StorageUnavailableError

_RENEW_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE_LUA: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_HOLDER_SEPARATOR: Final = "/"


def _new_token(identity: str) -> str:
    return f"{identity}{_HOLDER_SEPARATOR}{secrets.token_hex(8)}"


def _identity_of(token: str) -> str:
    return token.rpartition(_HOLDER_SEPARATOR)[0]


def _check_ttl(ttl_s: float) -> int:
    ttl_ms = int(ttl_s * 1000)
    if ttl_ms < 1:
        raise ValueError(f"lease TTL must be at least 1 ms, got {ttl_s}s")
    return ttl_ms


class RedisLeaderLease:
    """A ``LeaderLease`` in Redis, shared by the replicas of one bot.

    ``identity`` (e.g. the pod name) is what ``holder()`` reports; the token
    adds a random suffix, so a restarted pod with the same name is a new holder.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        name: str,
        identity: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._key = f"traderbot:lease:{name}"
        self._token = _new_token(identity)
        self._ttl_ms = _check_ttl(ttl_s)
        self._clock = clock
        self._valid_until = 0.0
        self._renew = redis.register_script(_RENEW_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    @property
    def ttl_s(self) -> float:
        return self._ttl_ms / 1000

    @property
    def is_leader(self) -> bool:
        return self._clock() < self._valid_until

    async def try_acquire(self) -> bool:
        sent_at = self._clock()
        try:
            taken = await self._redis.set(self._key, self._token, nx=True, px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc
        if taken:
            self._valid_until = sent_at + self.ttl_s
            return True
        return await self.renew()

    async def renew(self) -> bool:
        sent_at = self._clock()
        try:
            renewed = await self._renew(keys=[self._key], args=[self._token, self._ttl_ms])
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc
        if int(renewed) == 1:
            self._valid_until = sent_at + self.ttl_s
            return True
        self._valid_until = 0.0
        return False

    async def release(self) -> None:
        self._valid_until = 0.0
        try:
            await self._release(keys=[self._key], args=[self._token])
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc

    async def holder(self) -> str | None:
        try:
            token = await self._redis.get(self._key)
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc
        if isinstance(token, bytes):
            token = token.decode()
        return None if token is None else _identity_of(token)


@dataclass(slots=True)
class _HeldLease:
    token: str
    expires_at: float


class MemoryLeaseRegistry:
    """Where in-process leases live; leases sharing a registry compete for the same names."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._held: dict[str, _HeldLease] = {}

    def current(self, name: str) -> _HeldLease | None:
        held = self._held.get(name)
        if held is not None and held.expires_at <= self.clock():
            del self._held[name]
            return None
        return held

    def put(self, name: str, held: _HeldLease) -> None:
        self._held[name] = held

    def remove(self, name: str) -> None:
        self._held.pop(name, None)


class MemoryLeaderLease:
    """The same lease in process memory (embedded mode: the only replica always leads)."""

    def __init__(
        self,
        *,
        name: str,
        identity: str,
        ttl_s: float,
        registry: MemoryLeaseRegistry | None = None,
    ) -> None:
        self._name = name
        self._token = _new_token(identity)
        self._ttl_s = _check_ttl(ttl_s) / 1000
        self._registry = registry or MemoryLeaseRegistry()
        self._valid_until = 0.0

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    @property
    def is_leader(self) -> bool:
        return self._registry.clock() < self._valid_until

    def _take(self) -> bool:
        now = self._registry.clock()
        self._registry.put(self._name, _HeldLease(self._token, now + self._ttl_s))
        self._valid_until = now + self._ttl_s
        return True

    async def try_acquire(self) -> bool:
        held = self._registry.current(self._name)
        if held is None or held.token == self._token:
            return self._take()
        return False

    async def renew(self) -> bool:
        held = self._registry.current(self._name)
        if held is not None and held.token == self._token:
            return self._take()
        self._valid_until = 0.0
        return False

    async def release(self) -> None:
        self._valid_until = 0.0
        held = self._registry.current(self._name)
        if held is not None and held.token == self._token:
            self._registry.remove(self._name)

    async def holder(self) -> str | None:
        held = self._registry.current(self._name)
        return None if held is None else _identity_of(held.token)
