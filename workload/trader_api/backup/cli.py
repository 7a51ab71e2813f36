"""``trader-backup``: the command line the operator's CronJobs and Jobs run.

    trader-backup [backup] [--tables orders,positions] [--no-redis]
    trader-backup restore [BACKUP] [--what database|redis|both] [--force]
    trader-backup verify  [BACKUP]
    trader-backup prune
    trader-backup import  --sql-gz FILE [--redis-rdb FILE] [--name NAME]

With no command it backs up (what the CronJob runs). ``BACKUP`` is a folder
name in ``--dest`` (or a path); the newest successful backup when omitted.
Prints exactly one JSON line on stdout; exit 0 on success, 1 on failure
(``{"ok": false, "error": ...}``), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from trader_api.backup.compose import run_import
from trader_api.backup.errors import BackupError
from trader_api.backup.runs import (
    Sources,
    resolve_backup,
    run_backup,
    run_prune,
    run_restore,
    run_verify,
)

logger = logging.getLogger("trader_api.backup")

COMMANDS = frozenset({"backup", "restore", "verify", "prune", "import"})
_FALSE = frozenset({"false", "0", "no", "off"})
_TRUE = frozenset({"true", "1", "yes", "on"})
_TERMINATION_MESSAGE_LIMIT = 4096  # what the kubelet keeps


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value or default


def _int_env(name: str) -> int | None:
    """Return an integer setting from the environment (trader-api's names), if set."""
    value = _env(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise BackupError(f"{name} must be an integer, got {value!r}") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trader-backup", description="Back up, restore and verify a TraderBot's data."
    )
    parser.add_argument(
        "--dest",
        type=Path,
        default=Path(_env("BACKUP_DIR", "/backups") or "/backups"),
        help="backup folder (env BACKUP_DIR; default /backups)",
    )
    parser.add_argument(
        "--bot", default=_env("BOT_NAME", "traderbot"), help="bot name (env BOT_NAME)"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="postgresql:// URL (default: DATABASE_URL or DATABASE_* like trader-api)",
    )
    parser.add_argument(
        "--redis-url", default=None, help="redis:// URL (default: REDIS_URL or REDIS_*)"
    )
    parser.add_argument(
        "--redis-data-dir",
        type=Path,
        default=_env("REDIS_DATA_DIR"),
        help="Redis's data folder, mounted (env REDIS_DATA_DIR)",
    )
    parser.add_argument(
        "--redis-appendonly",
        action="store_true",
        default=(_env("REDIS_APPENDONLY", "false") or "false").lower() in _TRUE,
        help="Redis runs with appendonly yes: a restore also rebuilds its AOF "
        "(env REDIS_APPENDONLY)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    backup = commands.add_parser("backup", help="write one backup now")
    backup.add_argument(
        "--tables",
        default=_env("BACKUP_TABLES"),
        help="comma-separated tables only, e.g. orders,positions (env BACKUP_TABLES)",
    )
    backup.add_argument(
        "--no-redis",
        action="store_true",
        default=(_env("BACKUP_INCLUDE_REDIS", "true") or "true").lower() in _FALSE,
        help="skip the Redis snapshot (env BACKUP_INCLUDE_REDIS=false)",
    )
    backup.add_argument(
        "--retention-days",
        type=int,
        default=int(_env("BACKUP_RETENTION_DAYS", "30") or 30),
        help="then delete backups older than this, never the newest (env BACKUP_RETENTION_DAYS)",
    )
    backup.add_argument("--no-prune", action="store_true", help="skip retention")

    restore = commands.add_parser("restore", help="restore a backup (checks it first)")
    restore.add_argument("backup", nargs="?", default=None)
    restore.add_argument("--what", choices=["database", "redis", "both"], default="database")
    restore.add_argument(
        "--force", action="store_true", help="restore even while other sessions are connected"
    )

    verify = commands.add_parser("verify", help="restore into a scratch database and compare")
    verify.add_argument("backup", nargs="?", default=None)

    prune = commands.add_parser("prune", help="apply retention only")
    prune.add_argument(
        "--retention-days", type=int, default=int(_env("BACKUP_RETENTION_DAYS", "30") or 30)
    )

    imports = commands.add_parser(
        "import",
        help="turn docker-compose era backups (pg_dump | gzip, dump.rdb) into a backup",
    )
    imports.add_argument(
        "--sql-gz", type=Path, default=None, help="a `pg_dump | gzip` file (db_DATE.sql.gz)"
    )
    imports.add_argument(
        "--redis-rdb", type=Path, default=None, help="a copy of Redis's dump.rdb (redis_DATE.rdb)"
    )
    imports.add_argument(
        "--name", default=None, help="the backup folder's name (default: <bot>-<UTC time>)"
    )
    imports.add_argument(
        "--source-database",
        default="trader",
        help="the compose database's name, recorded in the manifest (default: trader)",
    )
    return parser


def _sources(args: argparse.Namespace) -> Sources:
    database_url: str | None = args.database_url
    redis_url: str | None = args.redis_url
    if database_url is None or redis_url is None:
        from trader_api.config import Settings

        settings = Settings()
        database_url = database_url or settings.database_dsn or None
        redis_url = redis_url or settings.redis_dsn or None
    data_dir = args.redis_data_dir
    return Sources(
        database_url=database_url,
        redis_url=redis_url,
        redis_data_dir=None if data_dir is None else Path(data_dir),
        redis_appendonly=args.redis_appendonly,
        klines_retention_days=_int_env("KLINES_RETENTION_DAYS"),
        klines_compress_after_days=_int_env("KLINES_COMPRESS_AFTER_DAYS"),
    )


def _dispatch(args: argparse.Namespace) -> dict[str, Any]:
    if args.command == "prune":
        return run_prune(dest=args.dest, bot=args.bot, retention_days=args.retention_days)
    sources = _sources(args)
    if args.command == "import":
        return run_import(
            dest=args.dest,
            bot=args.bot,
            database_url=sources.database_url,
            sql_gz=args.sql_gz,
            redis_rdb=args.redis_rdb,
            name=args.name,
            source_database=args.source_database,
        )
    if args.command == "backup":
        tables = None if args.tables is None else [t for t in args.tables.split(",") if t]
        return run_backup(
            dest=args.dest,
            bot=args.bot,
            sources=sources,
            tables=tables,
            include_redis=not args.no_redis,
            retention_days=None if args.no_prune else args.retention_days,
        )
    folder = resolve_backup(dest=args.dest, bot=args.bot, backup=args.backup)
    if args.command == "restore":
        return run_restore(folder=folder, sources=sources, what=args.what, force=args.force)
    return run_verify(folder=folder, sources=sources)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; print its one-line JSON result; return the exit code."""
    logging.basicConfig(
        level=os.environ.get("BACKUP_LOG_LEVEL", "INFO").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not COMMANDS.intersection(arguments) and not {"-h", "--help"}.intersection(arguments):
        arguments.append("backup")  # what the CronJob runs: `trader-backup` alone
    args = _parser().parse_args(arguments)
    try:
        result = _dispatch(args)
        code = 0
    except BackupError as exc:
        result = {"ok": False, "action": args.command, "error": str(exc)}
        code = 1
    except Exception as exc:  # the operator must get a JSON line for any failure
        logger.exception("unexpected failure")
        result = {"ok": False, "action": args.command, "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    line = json.dumps(result, separators=(",", ":"))
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    _write_termination_message(termination_line(result))
    return code


# Dropped in this order until the line fits: details the operator can do without.
_SHED_FIRST: Final = ("pruned", "tables", "maintenance", "scope")


def termination_line(result: Mapping[str, Any]) -> str:
    """Return the result as one JSON line that fits the termination message.

    NB: the kubelet keeps only 4096 bytes and a cut line is no JSON at all, so the
    operator would count a good backup as one without a result. Long details go
    first (the full line is on stdout, in the pod's log); ``truncated`` names them.
    """
    line = json.dumps(result, separators=(",", ":"))
    compact = dict(result)
    shed: list[str] = []
    for key in _SHED_FIRST:
        if len(line.encode()) <= _TERMINATION_MESSAGE_LIMIT:
            break
        if key in compact:
            del compact[key]
            shed.append(key)
            line = json.dumps({**compact, "truncated": shed}, separators=(",", ":"))
    if len(line.encode()) > _TERMINATION_MESSAGE_LIMIT and "error" in compact:
        error = str(compact["error"])[: _TERMINATION_MESSAGE_LIMIT // 2]
        line = json.dumps({**compact, "error": error, "truncated": [*shed, "error"]})
    return line


def _write_termination_message(line: str) -> None:
    """Also leave the result where Kubernetes puts it into the pod's status.

    NB: only when the kubelet provides the file (``terminationMessagePath``,
    default ``/dev/termination-log``): outside a pod nothing is created.
    """
    path = Path(os.environ.get("TERMINATION_MESSAGE_PATH", "/dev/termination-log"))
    if not path.is_file():
        return
    try:
        path.write_text(line[:_TERMINATION_MESSAGE_LIMIT])
    except OSError as exc:
        logger.warning("could not write the termination message to %s: %s", path, exc)


if __name__ == "__main__":
    sys.exit(main())
