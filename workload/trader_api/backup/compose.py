"""Bring the docker-compose era's backups along: ``trader-backup import``.

The compose deployment backed up with ``pg_dump -U trader -d trader | gzip >
db_<date>.sql.gz`` (a plain SQL dump) and ``redis-cli BGSAVE`` + a copy of
``/data/dump.rdb`` (``redis_<date>.rdb``). A restore of ours takes a ``pg_dump``
custom archive with exact row counts, so the import

1. checks both files before anything is written: the gzip stream is whole (its
   end-of-stream marker and CRC-32), the SQL is a complete ``pg_dump`` plain dump
   (its header, and the trailer ``pg_dump`` writes last: ``pg_dump | gzip`` leaves
   a well-formed gzip even when ``pg_dump`` died half-way), the RDB has the
   ``REDIS`` magic, a known version, the EOF opcode and a matching CRC-64;
2. loads the SQL into a scratch database on the bot's server (one transaction,
   stopping at the first error; ownership and privilege statements are left out,
   as ``pg_restore --no-owner --no-privileges`` does for our own dumps, because the
   compose role ``trader`` need not exist there);
3. dumps that scratch database the way ``trader-backup backup`` does (custom
   format, row counts from the same snapshot), drops it, and publishes a backup
   folder with a manifest that names the imported files and their checksums.

After that the folder is a backup like any other: ``verify`` and ``restore``
(and a TraderBotRestore) take it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import secrets
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import asyncpg
import crcmod

from trader_api.backup.errors import BackupError
from trader_api.backup.files import copy_file_durably, sha256_of
from trader_api.backup.manifest import (
    DatabasePart,
    ImportedFile,
    ImportOrigin,
    Manifest,
    RedisPart,
)
from trader_api.backup.postgres import PgTarget, dump_database, tool
from trader_api.backup.retention import backup_name
from trader_api.backup.runs import DATABASE_FILE, REDIS_FILE, backup_result, publish_backup

_CHUNK: Final = 1 << 20
_STDERR_TAIL: Final = 2000
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")

# --- the SQL dump ---------------------------------------------------------------------

SQL_HEADER: Final = b"-- PostgreSQL database dump"
SQL_TRAILER: Final = b"-- PostgreSQL database dump complete"
_HEADER_LINES: Final = 40  # pg_dump writes its header within the first few lines
_DUMPED_FROM: Final = re.compile(rb"^-- Dumped from database version (\S+)")
_DUMPED_BY: Final = re.compile(rb"^-- Dumped by pg_dump version (\S+)")
_COPY_START: Final = re.compile(rb"^COPY \S+ .*FROM stdin;$")
_COPY_END: Final = b"\\."
# pg_dump 17.6/16.10/15.14 and later end the dump with psql's \unrestrict KEY.
_UNRESTRICT: Final = b"\\unrestrict "
_META_ALLOWED: Final = (b"\\restrict ", _UNRESTRICT)
# Statements pg_restore leaves out with --no-owner --no-privileges; pg_dump writes
# each on one line. NB: COMMENT ON EXTENSION needs the extension's owner.
_SKIPPED: Final = re.compile(
    rb"^(ALTER [A-Z ]+ .+ OWNER TO |GRANT |REVOKE |ALTER DEFAULT PRIVILEGES |"
    rb"COMMENT ON EXTENSION |SET SESSION AUTHORIZATION )"
)
_TIMESCALEDB: Final = re.compile(rb"^CREATE EXTENSION (IF NOT EXISTS )?timescaledb\b")


@dataclass(frozen=True, slots=True)
class SqlDump:
    """What the checks learned about a plain ``pg_dump`` file."""

    server_version: str
    pg_dump_version: str
    timescaledb: bool


def _gunzip_lines(path: Path) -> Iterator[bytes]:
    """Yield the decompressed lines of ``path``, raising ``BackupError`` on a broken stream.

    NB: ``gzip`` checks the CRC-32 and length of every member at its end and raises
    on a stream cut short, so reaching the end means the whole file decompressed.
    """
    try:
        with gzip.open(path, "rb") as stream:
            yield from stream
    except gzip.BadGzipFile as exc:
        raise BackupError(f"{path.name} is not a gzip file or is corrupt: {exc}") from exc
    except EOFError as exc:
        raise BackupError(f"{path.name} is truncated: the gzip stream ends early") from exc
    except zlib.error as exc:
        raise BackupError(f"{path.name} is corrupt: {exc}") from exc


def _classified(lines: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Yield each line with whether it is table data (inside ``COPY ... FROM stdin``).

    NB: inside a COPY block every line up to ``\\.`` is data, whatever it looks like.
    """
    in_copy = False
    for line in lines:
        stripped = line.rstrip(b"\r\n")
        if in_copy:
            in_copy = stripped != _COPY_END
            yield line, True
        else:
            in_copy = _COPY_START.match(stripped) is not None
            yield line, False


def check_sql_lines(lines: Iterator[bytes], *, name: str) -> SqlDump:
    """Check that ``lines`` are one complete ``pg_dump`` plain-format dump; say what it is.

    NB: the trailer is the only proof that ``pg_dump`` finished: it is written last.
    NB: psql runs backslash commands (``\\!`` runs a shell, ``\\connect`` leaves the
    scratch database); pg_dump writes none but ``\\restrict``/``\\unrestrict``, so any
    other outside table data is refused before anything runs.
    """
    server_version = pg_dump_version = None
    timescaledb = False
    last = b""
    for number, (line, data) in enumerate(_classified(lines)):
        stripped = line.rstrip(b"\r\n")
        if number < _HEADER_LINES:
            if (match := _DUMPED_FROM.match(stripped)) is not None:
                server_version = match[1].decode()
            if (match := _DUMPED_BY.match(stripped)) is not None:
                pg_dump_version = match[1].decode()
            if number == _HEADER_LINES - 1 and pg_dump_version is None:
                break
        if data:
            continue
        if stripped.startswith(b"\\") and not stripped.startswith(_META_ALLOWED):
            command = stripped.split(b" ", 1)[0].decode(errors="replace")
            raise BackupError(
                f"{name} line {number + 1}: psql command {command} is not something pg_dump "
                "writes; refusing to run it"
            )
        if _TIMESCALEDB.match(stripped):
            timescaledb = True
        if stripped and stripped != b"--" and not stripped.startswith(_UNRESTRICT):
            last = stripped
    if pg_dump_version is None or server_version is None:
        raise BackupError(
            f"{name} is not a pg_dump plain-format dump (no '{SQL_HEADER.decode()}' header "
            "with 'Dumped from/by' versions)"
        )
    if last != SQL_TRAILER:
        raise BackupError(
            f"{name} is an incomplete pg_dump: it does not end with "
            f"'{SQL_TRAILER.decode()}' (pg_dump failed or was stopped while dumping)"
        )
    return SqlDump(
        server_version=server_version, pg_dump_version=pg_dump_version, timescaledb=timescaledb
    )


def check_sql_gz(path: Path) -> SqlDump:
    """Check a ``pg_dump | gzip`` file end to end (reads it once, writes nothing)."""
    return check_sql_lines(_gunzip_lines(path), name=path.name)


def loadable_lines(lines: Iterator[bytes]) -> Iterator[bytes]:
    """Yield the dump without ownership and privilege statements; table data passes as is."""
    for line, data in _classified(lines):
        if data or not _SKIPPED.match(line):
            yield line


def _feed(stdin: IO[bytes], lines: Iterator[bytes]) -> None:
    """Write ``lines`` to psql; a closed pipe means psql stopped at an error (it says which)."""
    with contextlib.suppress(BrokenPipeError):
        try:
            stdin.writelines(lines)
        finally:
            stdin.close()


def _psql(
    target: PgTarget, *, what: str, sql: str | None, lines: Iterator[bytes] | None = None
) -> None:
    """Run ``psql`` on ``target`` (a command, or ``lines`` on stdin in one transaction).

    NB: if producing ``lines`` fails half-way, psql is killed rather than left to
    read EOF as the end of its script and commit what it got.
    """
    argv = [tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", f"--dbname={target.database}"]
    argv += ["-c", sql] if sql is not None else ["--single-transaction", "-f", "-"]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(  # noqa: S603  # fixed binary, our own arguments
            argv,
            env=target.env(),
            stdin=subprocess.PIPE if lines is not None else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        if lines is not None and proc.stdin is not None:
            try:
                _feed(proc.stdin, lines)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
        code = proc.wait()
        if code != 0:
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip().splitlines() or [""]
            # NB: one line for the result: psql's ERROR line, not its LINE/caret context.
            first = next((line for line in said if "ERROR:" in line), said[-1])
            raise BackupError(f"{what} failed (psql exit {code}): {first[:_STDERR_TAIL]}")


async def _scratch_database(target: PgTarget, name: str, *, drop: bool) -> None:
    """Create (or, with ``drop``, drop) the scratch database the dump is loaded into."""
    conn = await target.connect()
    try:
        quoted = '"' + name.replace('"', '""') + '"'
        if drop:
            await conn.execute(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        else:
            await conn.execute(f"CREATE DATABASE {quoted}")
    except asyncpg.PostgresError as exc:
        verb = "drop" if drop else "create"
        raise BackupError(f"cannot {verb} scratch database {name}: {exc}") from exc
    finally:
        await conn.close()


_TS_SETUP: Final = "a TimescaleDB restore step (extension, pre- or post-restore)"


def convert_sql_gz(
    target: PgTarget, *, sql_gz: Path, dump: SqlDump, out: Path, source_database: str
) -> DatabasePart:
    """Load the plain dump into a scratch database on ``target``'s server; dump it to ``out``.

    Returns the part of the manifest for ``out`` (row counts of the loaded data).
    NB: needs CREATEDB, like ``trader-backup verify``; the scratch database is
    dropped whatever happens.
    """
    scratch = f"{target.database[:40]}_import_{secrets.token_hex(4)}"
    asyncio.run(_scratch_database(target, scratch, drop=False))
    scratch_target = target.with_database(scratch)
    try:
        if dump.timescaledb:
            # NB: TimescaleDB's documented way to load a dump: extension, pre, load, post.
            _psql(scratch_target, what=_TS_SETUP, sql="CREATE EXTENSION IF NOT EXISTS timescaledb")
            _psql(scratch_target, what=_TS_SETUP, sql="SELECT timescaledb_pre_restore()")
        lines = loadable_lines(_gunzip_lines(sql_gz))
        _psql(scratch_target, what="loading the SQL dump", sql=None, lines=lines)
        if dump.timescaledb:
            _psql(scratch_target, what=_TS_SETUP, sql="SELECT timescaledb_post_restore()")
        part = asyncio.run(dump_database(scratch_target, out=out))
    finally:
        asyncio.run(_scratch_database(target, scratch, drop=True))
    return part.model_copy(update={"database": source_database})


# --- the Redis snapshot ---------------------------------------------------------------

RDB_MAGIC: Final = b"REDIS"
MAX_RDB_VERSION: Final = 12  # Redis 7.4
_RDB_EOF: Final = 0xFF
_RDB_AUX: Final = 0xFA
_CHECKSUM_SINCE: Final = 5  # RDB 5 (Redis 2.6) added the CRC-64 trailer
# Redis's CRC-64 ("Jones" polynomial, reflected, init 0, no final xor): check value
# of b"123456789" is 0xe9c6d914c4b8d9ca (src/crc64.c).
_CRC64_POLY: Final = 0x1AD93D23594C935A9


@dataclass(frozen=True, slots=True)
class RdbFile:
    """What the checks learned about an RDB snapshot."""

    version: int
    checksum: bool  # False: saved with ``rdbchecksum no`` (trailer of zeros)
    redis_version: str | None  # the ``redis-ver`` aux field, when present
    ctime: int | None  # the ``ctime`` aux field: when Redis saved it (unix seconds)


def rdb_crc64(data: bytes) -> int:
    """Return Redis's CRC-64 of ``data``."""
    crc = crcmod.Crc(_CRC64_POLY, initCrc=0, rev=True, xorOut=0)
    crc.update(data)
    value: int = crc.crcValue
    return value


_LEN_6BIT, _LEN_14BIT, _LEN_ENCODED = 0, 1, 3  # the top two bits of an RDB length byte
_LEN_32BIT: Final = 0x80
_LEN_64BIT: Final = 0x81


def _length(data: bytes, pos: int) -> tuple[int | None, int, int]:
    """Decode an RDB length at ``pos``: (length or None if encoded, encoding, next pos)."""
    first = data[pos]
    kind = first >> 6
    if kind == _LEN_6BIT:
        return first & 0x3F, 0, pos + 1
    if kind == _LEN_14BIT:
        return ((first & 0x3F) << 8) | data[pos + 1], 0, pos + 2
    if kind == _LEN_ENCODED:
        return None, first & 0x3F, pos + 1
    if first == _LEN_32BIT:
        return struct.unpack(">I", data[pos + 1 : pos + 5])[0], 0, pos + 5
    if first == _LEN_64BIT:
        return struct.unpack(">Q", data[pos + 1 : pos + 9])[0], 0, pos + 9
    raise ValueError(f"length byte {first:#x}")


def _string(data: bytes, pos: int) -> tuple[str | None, int]:
    """Decode an RDB string at ``pos`` (plain or integer-encoded); None if compressed."""
    length, encoding, pos = _length(data, pos)
    if length is not None:
        return data[pos : pos + length].decode(errors="replace"), pos + length
    sizes = {0: 1, 1: 2, 2: 4}
    if encoding in sizes:
        size = sizes[encoding]
        return str(int.from_bytes(data[pos : pos + size], "little", signed=True)), pos + size
    raise ValueError(f"string encoding {encoding}")  # LZF: aux values are short


def _aux_fields(head: bytes) -> dict[str, str]:
    """Read the aux fields Redis writes first (``redis-ver``, ``ctime``, ...); best effort."""
    fields: dict[str, str] = {}
    pos = 9
    try:
        while pos < len(head) and head[pos] == _RDB_AUX:
            key, pos = _string(head, pos + 1)
            value, pos = _string(head, pos)
            if key is not None and value is not None:
                fields[key] = value
    except (ValueError, IndexError, struct.error):
        pass  # informational only: the checksum decides whether the file is whole
    return fields


def check_rdb(path: Path) -> RdbFile:
    """Check an RDB file: magic, version, EOF opcode and (RDB 5+) the CRC-64 trailer.

    NB: Redis writes 8 zero bytes instead of a checksum under ``rdbchecksum no``;
    such a file is accepted and reported as unchecked. The records in between are
    not parsed: the checksum covers every byte of them.
    """
    size = path.stat().st_size
    with path.open("rb") as source:
        head = source.read(4096)
        if head[:5] != RDB_MAGIC or not head[5:9].isdigit():
            raise BackupError(f"{path.name} is not a Redis RDB file (no REDIS magic)")
        version = int(head[5:9])
        if not 1 <= version <= MAX_RDB_VERSION:
            raise BackupError(
                f"{path.name} has RDB version {version}, newer than this tool knows "
                f"({MAX_RDB_VERSION}, Redis 7.4)"
            )
        trailer = 8 if version >= _CHECKSUM_SINCE else 0
        if size < 9 + 1 + trailer:
            raise BackupError(f"{path.name} is truncated ({size} bytes)")
        crc = crcmod.Crc(_CRC64_POLY, initCrc=0, rev=True, xorOut=0)
        source.seek(0)
        remaining = size - trailer
        last = b""
        while remaining > 0:
            chunk = source.read(min(_CHUNK, remaining))
            if not chunk:
                raise BackupError(f"{path.name} shrank while being read")
            crc.update(chunk)
            last = chunk[-1:]
            remaining -= len(chunk)
        stored = struct.unpack("<Q", source.read(8))[0] if trailer else 0
    if last != bytes([_RDB_EOF]):
        raise BackupError(f"{path.name} is truncated or corrupt: no EOF marker before the end")
    if stored not in {0, crc.crcValue}:
        raise BackupError(
            f"{path.name} is corrupt: CRC-64 {crc.crcValue:016x}, the file says {stored:016x}"
        )
    aux = _aux_fields(head)
    ctime = aux.get("ctime")
    return RdbFile(
        version=version,
        checksum=stored != 0,
        redis_version=aux.get("redis-ver"),
        ctime=int(ctime) if ctime is not None and ctime.lstrip("-").isdigit() else None,
    )


# --- the import -----------------------------------------------------------------------


def _imported(path: Path) -> ImportedFile:
    return ImportedFile(file=path.name, size=path.stat().st_size, sha256=sha256_of(path))


def check_name(name: str) -> None:
    """Refuse a backup name that is not one folder name (no ``/``, no ``..``)."""
    if not _NAME.match(name) or ".." in name:
        raise BackupError(
            f"invalid backup name {name!r}: one folder name of letters, digits, '.', '_', '-'"
        )


def run_import(
    *,
    dest: Path,
    bot: str,
    database_url: str | None,
    sql_gz: Path | None,
    redis_rdb: Path | None,
    name: str | None = None,
    source_database: str = "trader",
) -> dict[str, Any]:
    """Check the compose-era files, convert them, and publish one backup folder atomically.

    Nothing is written before both files passed their checks, and nothing is left
    behind when any later step fails (the staging folder and scratch database go).
    """
    if sql_gz is None and redis_rdb is None:
        raise BackupError("nothing to import: give --sql-gz and/or --redis-rdb")
    for given in (sql_gz, redis_rdb):
        if given is not None and not given.is_file():
            raise BackupError(f"file to import not found: {given}")
    if sql_gz is not None and database_url is None:
        raise BackupError(
            "importing a SQL dump needs a database URL: it is loaded into a scratch "
            "database on that server and dumped in our format"
        )
    started = datetime.now(UTC)
    name = name or backup_name(bot, started)
    check_name(name)
    final = dest / name
    if final.exists():
        raise BackupError(f"backup {final} already exists; choose another --name")
    dump = None if sql_gz is None else check_sql_gz(sql_gz)
    rdb = None if redis_rdb is None else check_rdb(redis_rdb)
    origin = ImportOrigin(
        sql_gz=None if sql_gz is None else _imported(sql_gz),
        redis_rdb=None if redis_rdb is None else _imported(redis_rdb),
        pg_dump_version=None if dump is None else dump.pg_dump_version,
        server_version=None if dump is None else dump.server_version,
        timescaledb=None if dump is None else dump.timescaledb,
        rdb_version=None if rdb is None else rdb.version,
        rdb_checksum=None if rdb is None else rdb.checksum,
        redis_version=None if rdb is None else rdb.redis_version,
    )

    def write(staging: Path) -> Manifest:
        database = None
        if sql_gz is not None and dump is not None and database_url is not None:
            database = convert_sql_gz(
                PgTarget.from_url(database_url),
                sql_gz=sql_gz,
                dump=dump,
                out=staging / DATABASE_FILE,
                source_database=source_database,
            )
        redis_part = None
        if redis_rdb is not None and rdb is not None:
            copied = staging / REDIS_FILE
            copy_file_durably(redis_rdb, copied)
            redis_part = RedisPart(
                file=REDIS_FILE,
                size=copied.stat().st_size,
                sha256=sha256_of(copied),
                lastsave=rdb.ctime if rdb.ctime is not None else int(redis_rdb.stat().st_mtime),
                source="imported",
            )
        return Manifest(
            bot=bot,
            name=name,
            created_at=started,
            completed_at=datetime.now(UTC),
            database=database,
            redis=redis_part,
            origin=origin,
        )

    final, manifest = publish_backup(dest=dest, name=name, write=write)
    return {
        **backup_result(action="import", manifest=manifest, final=final),
        "imported": origin.model_dump(mode="json", exclude_none=True),
    }
