"""The Redis client shared by the limiter, the lease and the event bus."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from trader_api.storage.errors import StorageUnavailableError

_CONNECT_TIMEOUT_S = 2.0
_COMMAND_TIMEOUT_S = 5.0


def connect_redis(url: str) -> Redis:
    """Return a pooled client for ``url`` (connections open lazily, on first use).

    NB: short timeouts, so a dead Redis turns readiness red in seconds instead
    of hanging requests; responses decoded as UTF-8 strings.
    """
    client: Redis = Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=_CONNECT_TIMEOUT_S,
        socket_timeout=_COMMAND_TIMEOUT_S,
        health_check_interval=30,
    )
    return client


async def ping_redis(client: Redis) -> None:
    """Return when Redis answers PING; raise ``StorageUnavailableError`` otherwise."""
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise StorageUnavailableError(f"redis unreachable: {exc}") from exc
