"""Versioned schema migrations: ordered SQL files, applied once, under an advisory lock.

Every replica runs ``migrate`` on start. The first one to take the lock applies
what is missing, each file in its own transaction, and records it in
``schema_migrations`` with its checksum; the others wait, then find nothing to
do. Running it again is a no-op.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Final

from trader_api.storage._types import PgConnection
from trader_api.storage.errors import MigrationError

logger = logging.getLogger(__name__)

# Any constant works as long as every replica uses the same one: b"tradrbot".
MIGRATION_LOCK_KEY: Final = 0x7472616472626F74
_FILE_NAME: Final = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file of ``trader_api/storage/migrations``."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(package: str = "trader_api.storage.migrations") -> list[Migration]:
    """Read the migration files of ``package``, ordered by version.

    NB: raises on a duplicate version or a gap, so a bad file name fails the
    tests instead of silently reordering the schema.
    """
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        found.append(
            Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8"))
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration versions must be 1..N without gaps, got {versions}")
    return found


@contextlib.asynccontextmanager
async def migration_lock(conn: PgConnection) -> AsyncIterator[None]:
    """Hold the schema lock: one replica at a time changes the schema or its policies.

    NB: session-level advisory locks stack, so ``migrate`` (which takes it too)
    may run inside this block.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def migrate(conn: PgConnection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Bring the schema up to date; return the migrations this call applied.

    Raises ``MigrationError`` when an applied migration's file has changed
    since (its checksum differs): the schema would no longer match the code.
    """
    migrations = load_migrations() if migrations is None else migrations
    async with migration_lock(conn):
        await conn.execute(_CREATE_TABLE)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {row["version"]: row for row in rows}
        done: list[Migration] = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it "
                        "was applied; add a new migration instead of editing an old one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            logger.info("applied migration %04d_%s", migration.version, migration.name)
            done.append(migration)
        newer = sorted(set(applied) - {m.version for m in migrations})
        if newer:
            # A rollback to an older image: newer migrations must stay backward compatible.
            logger.warning("database has migrations newer than this code: %s", newer)
        return done


async def schema_version(conn: PgConnection) -> int:
    """Return the highest applied migration version (0 for an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    version: int | None = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    return version or 0
