"""Fixtures of the integration tier: real PostgreSQL and Redis servers, started here.

Servers live for the whole session (starting PostgreSQL costs about a second);
each test gets a fresh, empty database and a flushed Redis. A test may stop
and start a server (``postgres_server.stop()`` / ``.start()``, same port and
data) to see how the code under test copes; the next test gets it running
again whatever happened.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.servers import PostgresServer, RedisServer, running_postgres, running_redis


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (``fsync`` off: tests do not measure durability)."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The session's Redis server (no persistence; ``BGSAVE`` still writes ``dump.rdb``)."""
    with running_redis() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """Create a fresh, empty database for one test; drop it afterwards. Yields its name."""
    postgres_server.start()  # a previous test may have left it stopped
    name = postgres_server.create_database()
    yield name
    postgres_server.start()
    postgres_server.drop_database(name)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, postgres_database: str) -> str:
    """A ``postgresql://`` URL to a fresh, empty database of the session's server."""
    return postgres_server.url(postgres_database)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A ``redis://`` URL (with password) to the session's Redis, flushed before and after."""
    redis_server.start()
    redis_server.flushall()
    yield redis_server.url()
    redis_server.start()
    redis_server.flushall()
