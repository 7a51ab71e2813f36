"""TimescaleDB for ``klines``: hypertable, compression and retention policies from config.

When the server offers the ``timescaledb`` extension, ``klines`` becomes a
hypertable whose old chunks are compressed and then dropped by TimescaleDB's
own background jobs. On plain PostgreSQL nothing here runs, and the engine
deletes old klines itself (``Store.delete_klines_before``).

The SQL is built by pure functions (tested without a TimescaleDB server, which
this project cannot install) and run by ``apply_timescale``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg

from trader_api.storage._types import PgConnection
from trader_api.storage.protocols import PolicyJob, RetentionStatus

logger = logging.getLogger(__name__)

_TABLE: Final = "klines"
_COMPRESSION: Final = "compression"
_RETENTION: Final = "retention"
_PROC_KIND: Final = {"policy_compression": _COMPRESSION, "policy_retention": _RETENTION}

Statement = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class KlinesPolicy:
    """What the config asks for: compress chunks after N days, drop them after M days."""

    compress_after_days: int = 7
    retention_days: int = 90
    chunk_days: int = 1

    def __post_init__(self) -> None:
        for name in ("compress_after_days", "retention_days", "chunk_days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class InstalledPolicies:
    """The policies TimescaleDB runs now (``None``: no such job)."""

    compress_after_days: int | None
    retention_days: int | None


AVAILABILITY_QUERY: Final = (
    "SELECT installed_version FROM pg_available_extensions WHERE name = 'timescaledb'"
)

JOBS_QUERY: Final = """
SELECT job_id, proc_name, schedule_interval::text AS schedule_interval, next_start,
       EXTRACT(epoch FROM COALESCE(config->>'compress_after', config->>'drop_after')::interval)
         AS after_seconds
FROM timescaledb_information.jobs
WHERE hypertable_name = 'klines' AND proc_name IN ('policy_compression', 'policy_retention')
ORDER BY job_id
"""


def hypertable_statements(policy: KlinesPolicy) -> list[Statement]:
    """Create the extension, make ``klines`` a hypertable and enable its compression.

    Every statement is idempotent, so this runs on each start.
    NB: ``migrate_data`` converts an existing plain ``klines`` table with its rows.
    """
    return [
        ("CREATE EXTENSION IF NOT EXISTS timescaledb", ()),
        (
            "SELECT create_hypertable('klines', 'open_time', "
            "chunk_time_interval => $1::interval, if_not_exists => TRUE, migrate_data => TRUE)",
            (timedelta(days=policy.chunk_days),),
        ),
        (
            "ALTER TABLE klines SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'symbol, interval', "
            "timescaledb.compress_orderby = 'open_time DESC')",
            (),
        ),
    ]


def policy_statements(desired: KlinesPolicy, installed: InstalledPolicies) -> list[Statement]:
    """Return what brings the installed policies to the desired ones; nothing when equal.

    A changed policy is removed and added again (TimescaleDB has no "alter
    policy"), so a config change is re-applied on the next start.
    """
    statements: list[Statement] = []
    if installed.compress_after_days != desired.compress_after_days:
        if installed.compress_after_days is not None:
            statements.append(("SELECT remove_compression_policy('klines', if_exists => TRUE)", ()))
        statements.append(
            (
                "SELECT add_compression_policy('klines', compress_after => $1::interval)",
                (timedelta(days=desired.compress_after_days),),
            )
        )
    if installed.retention_days != desired.retention_days:
        if installed.retention_days is not None:
            statements.append(("SELECT remove_retention_policy('klines', if_exists => TRUE)", ()))
        statements.append(
            (
                "SELECT add_retention_policy('klines', drop_after => $1::interval)",
                (timedelta(days=desired.retention_days),),
            )
        )
    return statements


def jobs_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[PolicyJob]:
    """Turn rows of ``JOBS_QUERY`` into ``PolicyJob``s (whole days)."""
    jobs: list[PolicyJob] = []
    for row in rows:
        kind = _PROC_KIND.get(str(row["proc_name"]))
        if kind is None or row["after_seconds"] is None:
            continue
        next_start: datetime | None = row["next_start"]
        jobs.append(
            PolicyJob(
                job_id=int(row["job_id"]),
                kind=kind,
                after_days=round(float(row["after_seconds"]) / 86400),
                schedule_interval=str(row["schedule_interval"]),
                next_start=next_start,
            )
        )
    return jobs


def installed_from_jobs(jobs: Sequence[PolicyJob]) -> InstalledPolicies:
    by_kind = {job.kind: job.after_days for job in jobs}
    return InstalledPolicies(
        compress_after_days=by_kind.get(_COMPRESSION),
        retention_days=by_kind.get(_RETENTION),
    )


def timescale_status(policy: KlinesPolicy, jobs: Sequence[PolicyJob]) -> RetentionStatus:
    return RetentionStatus(
        backend="timescaledb",
        engine_retention=False,
        retention_days=policy.retention_days,
        compress_after_days=policy.compress_after_days,
        jobs=tuple(jobs),
    )


def plain_status(policy: KlinesPolicy, reason: str) -> RetentionStatus:
    return RetentionStatus(
        backend="postgresql",
        engine_retention=True,
        retention_days=policy.retention_days,
        compress_after_days=None,
        detail=reason,
    )


async def timescale_available(conn: PgConnection) -> bool:
    """Return whether the server offers the ``timescaledb`` extension at all."""
    row = await conn.fetchrow(AVAILABILITY_QUERY)
    return row is not None


async def policy_jobs(conn: PgConnection) -> list[PolicyJob]:
    """Report the compression/retention jobs on ``klines`` (TimescaleDB only)."""
    return jobs_from_rows([dict(row.items()) for row in await conn.fetch(JOBS_QUERY)])


async def apply_timescale(conn: PgConnection, policy: KlinesPolicy) -> RetentionStatus:
    """Set up TimescaleDB for ``klines`` if the server offers it; report what retention runs.

    NB: an extension that is offered but cannot be created (typically not in
    ``shared_preload_libraries``) falls back to engine retention with the
    server's reason in the status, instead of failing the start.
    """
    if not await timescale_available(conn):
        return plain_status(policy, "extension not installed on the server")
    try:
        async with conn.transaction():
            for sql, args in hypertable_statements(policy):
                await conn.execute(sql, *args)
            installed = installed_from_jobs(await policy_jobs(conn))
            for sql, args in policy_statements(policy, installed):
                await conn.execute(sql, *args)
    except asyncpg.PostgresError as exc:
        logger.warning("timescaledb offered but unusable, engine retention active: %s", exc)
        return plain_status(policy, f"extension unusable: {exc}")
    return timescale_status(policy, await policy_jobs(conn))
