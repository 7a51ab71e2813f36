"""Storage of the engine: PostgreSQL (asyncpg) or in-process, and Redis helpers.

Services depend on the protocols (``Store``, ``RateLimiter``, ``LeaderLease``,
``EventBus``) and receive one of the two implementations of each: the
PostgreSQL/Redis one in a cluster, the in-process twin in embedded mode.
"""

from trader_api.storage.errors import (
    ConflictError,
    MigrationError,
    NotFoundError,
    StorageError,
    StorageUnavailableError,
)
from trader_api.storage.events import MemoryEventBus, RedisEventBus
from trader_api.storage.lease import MemoryLeaderLease, MemoryLeaseRegistry, RedisLeaderLease
from trader_api.storage.limiter import MemoryTokenBucketLimiter, RedisTokenBucketLimiter
from trader_api.storage.memory import MemoryStore
from trader_api.storage.protocols import (
    EventBus,
    LeaderLease,
    PolicyJob,
    PortfolioState,
    RateDecision,
    RateLimiter,
    RecordedFill,
    RetentionStatus,
    Store,
)
from trader_api.storage.redis import connect_redis, ping_redis

__all__ = [
    "ConflictError",
    "EventBus",
    "LeaderLease",
    "MemoryEventBus",
    "MemoryLeaderLease",
    "MemoryLeaseRegistry",
    "MemoryStore",
    "MemoryTokenBucketLimiter",
    "MigrationError",
    "NotFoundError",
    "PolicyJob",
    "PortfolioState",
    "RateDecision",
    "RateLimiter",
    "RecordedFill",
    "RedisEventBus",
    "RedisLeaderLease",
    "RedisTokenBucketLimiter",
    "RetentionStatus",
    "StorageError",
    "StorageUnavailableError",
    "Store",
    "connect_redis",
    "ping_redis",
]
