"""A ``store`` fixture that runs each contract test on PostgreSQL and on the memory twin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from trader_api.storage import MemoryStore, Store
from trader_api.storage.postgres import PostgresStore


@pytest.fixture(params=["postgres", "memory"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """A migrated, empty store of each kind (PostgreSQL only started when needed)."""
    opened: Store
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        opened = await PostgresStore.connect(url, max_size=20)
    else:
        opened = MemoryStore()
    yield opened
    await opened.close()
