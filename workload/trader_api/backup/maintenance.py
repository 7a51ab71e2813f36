"""What keeps old klines in check, as the database says: TimescaleDB's jobs or the engine.

``trader-backup`` connects to the database anyway, so each backup also reports the
TimescaleDB policy jobs (compression, retention) with how their last run went; the
operator copies that into the TraderBot's status (``status.maintenance``). On plain
PostgreSQL nothing in the database drops old klines, and the report says the
engine's own retention does, with its settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

import asyncpg

from trader_api.backup.errors import BackupError
from trader_api.backup.postgres import PgTarget

ENGINE_RETENTION: Final = "engine-retention"
TIMESCALEDB_JOBS: Final = "timescaledb-jobs"

_INSTALLED: Final = "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
# NB: job_stats has a row only once a job has run; the LEFT JOIN keeps jobs that have not.
JOBS_QUERY: Final = """
SELECT j.job_id, j.proc_name, j.hypertable_schema, j.hypertable_name,
       j.schedule_interval::text AS schedule_interval,
       s.last_run_status, s.last_run_started_at,
       COALESCE(s.next_start, j.next_start) AS next_start
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
WHERE j.proc_name IN ('policy_compression', 'policy_retention')
ORDER BY j.job_id
"""


def _iso(value: object) -> str | None:
    if not isinstance(value, datetime):
        return None
    return value.isoformat().replace("+00:00", "Z")


def jobs_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Turn rows of ``JOBS_QUERY`` into the report's job entries (JSON-ready)."""
    jobs: list[dict[str, Any]] = []
    for row in rows:
        schema, table = row.get("hypertable_schema"), row.get("hypertable_name")
        jobs.append(
            {
                "job_id": int(row["job_id"]),
                "proc": str(row["proc_name"]),
                "hypertable": None if table is None else f"{schema or 'public'}.{table}",
                "schedule_interval": str(row["schedule_interval"]),
                "last_run_status": row.get("last_run_status"),
                "last_run_started_at": _iso(row.get("last_run_started_at")),
                "next_start": _iso(row.get("next_start")),
            }
        )
    return jobs


def engine_report(*, retention_days: int | None) -> dict[str, Any]:
    """Return the report for a database without TimescaleDB: the engine deletes old klines."""
    return {
        "backend": "postgresql",
        "retention": ENGINE_RETENTION,
        "klines_retention_days": retention_days,
        "jobs": [],
    }


async def maintenance_report(
    target: PgTarget, *, retention_days: int | None, compress_after_days: int | None
) -> dict[str, Any]:
    """Ask the database what keeps old klines in check (TimescaleDB's jobs, or nothing).

    ``retention_days``/``compress_after_days`` are the engine's settings
    (``KLINES_RETENTION_DAYS``/``KLINES_COMPRESS_AFTER_DAYS``), reported as they are
    (compression only with TimescaleDB: plain PostgreSQL compresses nothing).
    """
    conn = await target.connect()
    try:
        if await conn.fetchval(_INSTALLED) is None:
            return engine_report(retention_days=retention_days)
        rows = await conn.fetch(JOBS_QUERY)
    except asyncpg.PostgresError as exc:
        raise BackupError(f"reading the TimescaleDB jobs failed: {exc}") from exc
    finally:
        await conn.close()
    return {
        "backend": "timescaledb",
        "retention": TIMESCALEDB_JOBS,
        "klines_retention_days": retention_days,
        "klines_compress_after_days": compress_after_days,
        "jobs": jobs_from_rows(dict(row.items()) for row in rows),
    }
