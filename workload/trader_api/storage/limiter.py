"""Token-bucket rate limiting: in Redis for every replica at once, or in-process.

The bucket of a key holds up to ``burst`` tokens and refills at ``rate`` per
second; a request costs one. The Redis version runs the whole read-refill-take
step in one Lua script using the server's clock (``TIME``), so replicas with
skewed clocks and concurrent requests still share one exact budget.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from trader_api.storage.errors import StorageUnavailableError
from trader_api.storage.protocols import RateDecision
from trader_api.storage.redis import ping_redis

_BUCKET_LUA: Final = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local allowed = 0
local retry_after = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry_after = (cost - tokens) / rate
end
local fmt = '%.17g'
redis.call('HSET', KEYS[1], 'tokens', string.format(fmt, tokens), 'ts', string.format(fmt, now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate) * 1000) + 1000)
return {allowed, string.format(fmt, tokens), string.format(fmt, retry_after)}
"""


def _validate(*, rate: float, burst: int, cost: float) -> None:
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number, got {rate}")
    if burst < 1:
        raise ValueError(f"burst must be at least 1, got {burst}")
    if not 0 < cost <= burst:
        raise ValueError(f"cost must be in (0, burst={burst}], got {cost}")


class RedisTokenBucketLimiter:
    """A ``RateLimiter`` whose buckets live in Redis, shared by all replicas."""

    def __init__(self, redis: Redis, *, prefix: str = "traderbot:ratelimit:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._script = redis.register_script(_BUCKET_LUA)

    async def acquire(
        self, key: str, *, rate: float, burst: int, cost: float = 1.0
    ) -> RateDecision:
        _validate(rate=rate, burst=burst, cost=cost)
        try:
            allowed, remaining, retry_after = await self._script(
                keys=[self._prefix + key], args=[repr(rate), burst, repr(cost)]
            )
        except (RedisError, OSError) as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc
        return RateDecision(
            allowed=int(allowed) == 1,
            remaining=float(remaining),
            retry_after_s=float(retry_after),
        )

    async def ping(self) -> None:
        await ping_redis(self._redis)


class MemoryTokenBucketLimiter:
    """The same token bucket in process memory (embedded mode: one replica only)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def acquire(
        self, key: str, *, rate: float, burst: int, cost: float = 1.0
    ) -> RateDecision:
        _validate(rate=rate, burst=burst, cost=cost)
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + max(0.0, now - last) * rate)
        if tokens >= cost:
            tokens -= cost
            decision = RateDecision(allowed=True, remaining=tokens, retry_after_s=0.0)
        else:
            decision = RateDecision(
                allowed=False, remaining=tokens, retry_after_s=(cost - tokens) / rate
            )
        self._buckets[key] = (tokens, now)
        return decision

    async def ping(self) -> None:
        return None
