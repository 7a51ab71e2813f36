"""PostgreSQL side of backups: ``pg_dump``/``pg_restore`` driven with exact row counts.

The dump and the row counts come from the same exported snapshot
(``pg_export_snapshot`` + ``pg_dump --snapshot``), so the manifest's counts are
exactly what the archive holds even while the bot keeps writing.

NB: the password travels to ``pg_dump``/``pg_restore`` in ``PGPASSWORD``,
never on a command line that ``ps`` would show.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast, get_args
from urllib.parse import unquote, urlsplit

import asyncpg

from trader_api.backup.errors import BackupError
from trader_api.backup.files import fsync_file, sha256_of
from trader_api.backup.manifest import DatabasePart

SslMode = Literal["disable", "prefer", "allow", "require", "verify-ca", "verify-full"]
_SSL_MODES: Final = frozenset(get_args(SslMode))
_TABLE_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]*$")
_STDERR_TAIL: Final = 2000
_PUBLIC_TABLES: Final = """
SELECT table_name FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
ORDER BY table_name
"""
# Foreign keys from tables outside a table-scoped backup into it: restoring
# (dropping) the scoped tables would break or cascade into those.
_OUTSIDE_REFERENCES: Final = """
SELECT DISTINCT src.relname AS referencing, dst.relname AS referenced
FROM pg_constraint c
JOIN pg_class src ON src.oid = c.conrelid
JOIN pg_class dst ON dst.oid = c.confrelid
JOIN pg_namespace n ON n.oid = dst.relnamespace
WHERE c.contype = 'f' AND n.nspname = 'public'
  AND dst.relname = ANY($1::text[]) AND NOT (src.relname = ANY($1::text[]))
ORDER BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class PgTarget:
    """Where the database is, parsed from a ``postgresql://`` URL."""

    host: str
    port: int
    user: str
    password: str | None
    database: str
    sslmode: str | None = None

    @classmethod
    def from_url(cls, url: str) -> PgTarget:
        parts = urlsplit(url)
        if parts.scheme not in {"postgresql", "postgres"}:
            raise BackupError("database URL must start with postgresql://")
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=None if parts.password is None else unquote(parts.password),
            database=unquote(parts.path.lstrip("/")) or "postgres",
            sslmode=query.get("sslmode"),
        )

    def with_database(self, database: str) -> PgTarget:
        return PgTarget(self.host, self.port, self.user, self.password, database, self.sslmode)

    def env(self) -> dict[str, str]:
        """libpq variables for the PostgreSQL client programs."""
        env = {
            **os.environ,
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.database,
        }
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        if self.sslmode is not None:
            env["PGSSLMODE"] = self.sslmode
        return env

    def _ssl(self) -> SslMode | None:
        if self.sslmode is None:
            return None
        if self.sslmode not in _SSL_MODES:
            raise BackupError(f"unsupported sslmode {self.sslmode!r}")
        return cast(SslMode, self.sslmode)

    async def connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                database=self.database,
                ssl=self._ssl(),
                timeout=10,
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise BackupError(
                f"cannot connect to database {self.database} at {self.host}:{self.port}: {exc}"
            ) from exc


def _seal(path: Path) -> tuple[int, str]:
    """Make a written file durable; return its size and SHA-256."""
    fsync_file(path)
    return path.stat().st_size, sha256_of(path)


def _quote(table: str) -> str:
    return '"' + table.replace('"', '""') + '"'


def tool(name: str) -> str:
    """Return the path of a PostgreSQL client program, or say how to install it."""
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found on PATH (install the PostgreSQL client)")
    return path


async def _run(argv: Sequence[str], *, env: dict[str, str], what: str) -> None:
    """Run a client program; raise ``BackupError`` with its stderr when it fails."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    if proc.returncode != 0:
        message = stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
        raise BackupError(f"{what} failed (exit {proc.returncode}): {message}")


async def public_tables(conn: asyncpg.Connection) -> list[str]:
    return [row["table_name"] for row in await conn.fetch(_PUBLIC_TABLES)]


async def count_rows(conn: asyncpg.Connection, tables: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in tables:
        counts[table] = await conn.fetchval(f"SELECT count(*) FROM {_quote(table)}")  # noqa: S608  # names come from the catalog or the manifest, quoted
    return counts


def check_table_names(tables: Sequence[str]) -> None:
    for table in tables:
        if not _TABLE_NAME.match(table):
            raise BackupError(f"invalid table name {table!r}")


async def dump_database(
    target: PgTarget, *, out: Path, tables: Sequence[str] | None = None, compress: int = 6
) -> DatabasePart:
    """Dump the database (or only ``tables``) to ``out`` with exact row counts; fsync it."""
    if tables is not None:
        check_table_names(tables)
    conn = await target.connect()
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot: str = await conn.fetchval("SELECT pg_export_snapshot()")
            server_version: str = await conn.fetchval("SHOW server_version")
            existing = await public_tables(conn)
            if tables is not None:
                missing = sorted(set(tables) - set(existing))
                if missing:
                    raise BackupError(f"tables not found in {target.database}: {missing}")
            scope = list(tables) if tables is not None else existing
            counts = await count_rows(conn, scope)
            argv = [
                tool("pg_dump"),
                "--format=custom",
                f"--compress={compress}",
                f"--snapshot={snapshot}",
                f"--file={out}",
            ]
            if tables is not None:
                argv += [f"--table=public.{table}" for table in tables]
            await _run(argv, env=target.env(), what="pg_dump")
    finally:
        await conn.close()
    size, digest = await asyncio.to_thread(_seal, out)
    return DatabasePart(
        file=out.name,
        size=size,
        sha256=digest,
        server_version=server_version,
        database=target.database,
        scope="full" if tables is None else "tables",
        tables=counts,
    )


async def _check_restorable(conn: asyncpg.Connection, part: DatabasePart, *, force: bool) -> None:
    """Refuse a restore that would break what is outside the backup or race live clients."""
    if part.scope == "tables":
        rows = await conn.fetch(_OUTSIDE_REFERENCES, list(part.tables))
        if rows:
            pairs = ", ".join(f"{r['referencing']} -> {r['referenced']}" for r in rows)
            raise BackupError(
                "table-scoped restore refused: tables outside the backup reference it "
                f"({pairs}); restore a backup that includes them"
            )
    if not force:
        others = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        if others:
            raise BackupError(
                f"{others} other session(s) connected to {part.database}: scale the API to 0 "
                "before restoring (or pass --force)"
            )


async def _compare_counts(conn: asyncpg.Connection, part: DatabasePart, *, where: str) -> None:
    actual = await count_rows(conn, list(part.tables))
    if actual != part.tables:
        differing = {
            t: {"manifest": n, "restored": actual.get(t)}
            for t, n in part.tables.items()
            if actual.get(t) != n
        }
        raise BackupError(f"row counts in {where} differ from the manifest: {differing}")


async def _pg_restore(
    target: PgTarget, *, folder: Path, part: DatabasePart, clean: bool, where: str
) -> None:
    """Run ``pg_restore`` in one transaction, then check every table's row count.

    ``clean`` drops the objects first (a restore over the live database); a scratch
    database is empty and needs none.
    """
    argv = [tool("pg_restore")]
    if clean:
        argv += ["--clean", "--if-exists"]
    argv += [
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        f"--dbname={target.database}",
        str(folder / part.file),
    ]
    await _run(argv, env=target.env(), what=f"pg_restore into {where}")
    conn = await target.connect()
    try:
        await _compare_counts(conn, part, where=where)
    finally:
        await conn.close()


async def restore_database(
    target: PgTarget, *, folder: Path, part: DatabasePart, force: bool = False
) -> dict[str, int]:
    """Restore the dump into ``target`` in one transaction; check row counts afterwards.

    NB: the caller verifies checksums first; this checks what can be checked
    in the live database before ``pg_restore`` touches anything.
    """
    conn = await target.connect()
    try:
        await _check_restorable(conn, part, force=force)
    finally:
        await conn.close()
    await _pg_restore(target, folder=folder, part=part, clean=True, where=target.database)
    return dict(part.tables)


async def verify_database(target: PgTarget, *, folder: Path, part: DatabasePart) -> str:
    """Restore the dump into a scratch database, compare row counts, drop it; return its name.

    NB: needs the CREATEDB privilege on the server.
    """
    scratch = f"{target.database[:40]}_verify_{secrets.token_hex(4)}"
    admin = await target.connect()
    try:
        await admin.execute(f"CREATE DATABASE {_quote(scratch)}")
    except asyncpg.PostgresError as exc:
        raise BackupError(f"cannot create scratch database {scratch}: {exc}") from exc
    finally:
        await admin.close()
    scratch_target = target.with_database(scratch)
    try:
        await _pg_restore(
            scratch_target,
            folder=folder,
            part=part,
            clean=False,
            where=f"scratch database {scratch}",
        )
    finally:
        admin = await target.connect()
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {_quote(scratch)} WITH (FORCE)")
        finally:
            await admin.close()
    return scratch
