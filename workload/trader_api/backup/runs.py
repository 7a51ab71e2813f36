"""The four things ``trader-backup`` does: back up, restore, verify, prune.

Each returns the result dict that the CLI prints as one JSON line, or raises
``BackupError``; none leaves a half-written backup or a half-restored database
behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg

from trader_api.backup.errors import BackupError
from trader_api.backup.files import publish_folder, remove_tree, sha256_of, write_file_atomically
from trader_api.backup.maintenance import maintenance_report
from trader_api.backup.manifest import MANIFEST_NAME, Manifest, read_manifest
from trader_api.backup.postgres import PgTarget, dump_database, restore_database, verify_database
from trader_api.backup.redis import DEFAULT_DBFILENAME, backup_redis, restore_redis
from trader_api.backup.retention import STAGING_PREFIX, backup_name, newest_successful, prune

logger = logging.getLogger(__name__)

DATABASE_FILE = "database.dump"
REDIS_FILE = "redis.rdb"
RestoreWhat = Literal["database", "redis", "both"]


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the bot's data lives (any of them may be absent)."""

    database_url: str | None = None
    redis_url: str | None = None
    redis_data_dir: Path | None = None
    redis_appendonly: bool = False  # Redis runs with --appendonly yes (loads its AOF at start)
    klines_retention_days: int | None = None  # the engine's settings, for the maintenance report
    klines_compress_after_days: int | None = None


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_backup(
    *,
    dest: Path,
    bot: str,
    sources: Sources,
    tables: list[str] | None = None,
    include_redis: bool = True,
    retention_days: int | None = 30,
) -> dict[str, Any]:
    """Write one backup folder ``<dest>/<bot>-<UTC time>`` atomically, then apply retention."""
    if sources.database_url is None and (not include_redis or sources.redis_url is None):
        raise BackupError("nothing to back up: no database URL and no Redis URL")
    started = datetime.now(UTC)
    name = backup_name(bot, started)

    def write(staging: Path) -> Manifest:
        database = None
        if sources.database_url is not None:
            database = asyncio.run(
                dump_database(
                    PgTarget.from_url(sources.database_url),
                    out=staging / DATABASE_FILE,
                    tables=tables,
                )
            )
        redis_part = None
        if include_redis and sources.redis_url is not None:
            redis_part = backup_redis(
                url=sources.redis_url, data_dir=sources.redis_data_dir, out=staging / REDIS_FILE
            )
        return Manifest(
            bot=bot,
            name=name,
            created_at=started,
            completed_at=datetime.now(UTC),
            database=database,
            redis=redis_part,
        )

    final, manifest = publish_backup(dest=dest, name=name, write=write)
    maintenance = (
        None if sources.database_url is None else _maintenance(sources.database_url, sources)
    )
    pruned: list[Path] = []
    if retention_days is not None:
        pruned = prune(dest, bot=bot, retention_days=retention_days)
    return {
        **backup_result(action="backup", manifest=manifest, final=final),
        "pruned": [p.name for p in pruned],
        "maintenance": maintenance,
    }


def publish_backup(
    *, dest: Path, name: str, write: Callable[[Path], Manifest]
) -> tuple[Path, Manifest]:
    """Let ``write`` fill a staging folder and return its manifest; publish it as ``name``.

    NB: the manifest is written last and the folder renamed into place only then,
    so ``dest`` holds a complete backup or nothing: any failure removes the
    staging folder (a full disk leaves nothing behind).
    """
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f"{STAGING_PREFIX}{name}"
    staging.mkdir()
    try:
        manifest = write(staging)
        write_file_atomically(
            staging / MANIFEST_NAME, manifest.model_dump_json(indent=2).encode() + b"\n"
        )
        final = dest / name
        publish_folder(staging, final)
    except OSError as exc:
        remove_tree(staging)
        raise BackupError(f"writing the backup to {dest} failed: {exc}") from exc
    except BaseException:
        remove_tree(staging)
        raise
    return final, manifest


def backup_result(*, action: str, manifest: Manifest, final: Path) -> dict[str, Any]:
    """Return the result line's fields of a published backup (made or imported)."""
    database = manifest.database
    return {
        "ok": True,
        "action": action,
        "bot": manifest.bot,
        "name": manifest.name,
        "location": str(final),
        "size": manifest.size,
        "checksum": "sha256:" + sha256_of(final / MANIFEST_NAME),
        "tables": None if database is None else database.tables,
        "scope": None if database is None else database.scope,
        "redis": manifest.redis is not None,
        "started_at": _iso(manifest.created_at),
        "finished_at": _iso(manifest.completed_at),
    }


def _maintenance(url: str, sources: Sources) -> dict[str, Any]:
    """Report what keeps old klines in check; a failure to read it never fails the backup.

    NB: the report is extra and runs after the backup is published: an unreadable
    jobs view is reported (``error``) for the operator's status rather than raised.
    """
    try:
        return asyncio.run(
            maintenance_report(
                PgTarget.from_url(url),
                retention_days=sources.klines_retention_days,
                compress_after_days=sources.klines_compress_after_days,
            )
        )
    except (BackupError, asyncpg.InterfaceError, OSError) as exc:
        logger.warning("maintenance report: %s", exc)
        return {"backend": "unknown", "error": str(exc), "jobs": []}


def resolve_backup(*, dest: Path, bot: str, backup: str | None) -> Path:
    """Return the named backup folder (a name in ``dest`` or a path), or the newest one."""
    if backup is None:
        newest = newest_successful(dest, bot=bot)
        if newest is None:
            raise BackupError(f"no successful backup of {bot} in {dest}")
        return newest.path
    candidate = Path(backup)
    return candidate if candidate.is_absolute() or candidate.exists() else dest / backup


def run_restore(
    *,
    folder: Path,
    sources: Sources,
    what: RestoreWhat = "database",
    force: bool = False,
    redis_dbfilename: str = DEFAULT_DBFILENAME,
) -> dict[str, Any]:
    """Restore from ``folder`` after checking everything that can be checked first.

    Order: manifest, then every file's size and SHA-256, then the targets'
    preconditions; only then is anything written.
    """
    manifest = read_manifest(folder)
    want_db = what in {"database", "both"}
    want_redis = what in {"redis", "both"}
    if want_db and manifest.database is None:
        raise BackupError(f"backup {folder.name} has no database dump")
    if want_redis and manifest.redis is None:
        raise BackupError(f"backup {folder.name} has no Redis snapshot")
    manifest.check_files(folder)
    if want_db and sources.database_url is None:
        raise BackupError("restoring the database needs a database URL")
    if want_redis and sources.redis_data_dir is None:
        raise BackupError("restoring Redis needs --redis-data-dir")
    restored: dict[str, Any] = {}
    if want_redis and sources.redis_url is not None:
        from trader_api.backup.redis import redis_is_running

        if redis_is_running(sources.redis_url):  # refuse before the database is touched
            raise BackupError("redis is running: stop it before restoring its snapshot")
    if want_db and manifest.database is not None and sources.database_url is not None:
        restored["tables"] = asyncio.run(
            restore_database(
                PgTarget.from_url(sources.database_url),
                folder=folder,
                part=manifest.database,
                force=force,
            )
        )
    if want_redis and manifest.redis is not None and sources.redis_data_dir is not None:
        target = restore_redis(
            folder=folder,
            part=manifest.redis,
            data_dir=sources.redis_data_dir,
            url=sources.redis_url,
            dbfilename=redis_dbfilename,
            appendonly=sources.redis_appendonly,
        )
        restored["redis_file"] = str(target)
    return {
        "ok": True,
        "action": "restore",
        "bot": manifest.bot,
        "name": manifest.name,
        "what": what,
        **restored,
    }


def run_verify(*, folder: Path, sources: Sources) -> dict[str, Any]:
    """Check checksums, then restore the dump into a scratch database and compare row counts."""
    manifest = read_manifest(folder)
    manifest.check_files(folder)
    result: dict[str, Any] = {
        "ok": True,
        "action": "verify",
        "bot": manifest.bot,
        "name": manifest.name,
        "checksums": "ok",
    }
    if manifest.database is not None:
        if sources.database_url is None:
            raise BackupError("verifying a database dump needs a database URL (scratch restore)")
        scratch = asyncio.run(
            verify_database(
                PgTarget.from_url(sources.database_url), folder=folder, part=manifest.database
            )
        )
        result["scratch_database"] = scratch
        result["tables"] = manifest.database.tables
    if manifest.redis is not None:
        with (folder / manifest.redis.file).open("rb") as rdb:
            if rdb.read(5) != b"REDIS":
                raise BackupError(f"{manifest.redis.file} is not an RDB file")
        result["redis"] = "ok"
    return result


def run_prune(*, dest: Path, bot: str, retention_days: int) -> dict[str, Any]:
    deleted = prune(dest, bot=bot, retention_days=retention_days)
    newest = newest_successful(dest, bot=bot)
    return {
        "ok": True,
        "action": "prune",
        "bot": bot,
        "deleted": [p.name for p in deleted],
        "newest_successful": None if newest is None else newest.path.name,
    }
