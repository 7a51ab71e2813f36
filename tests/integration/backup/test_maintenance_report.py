"""The maintenance report against a real PostgreSQL (TimescaleDB cannot be installed here)."""

from __future__ import annotations

import asyncpg

from support.backup_data import Cli
from trader_api.backup.maintenance import JOBS_QUERY, jobs_from_rows, maintenance_report
from trader_api.backup.postgres import PgTarget

# NB: TimescaleDB's two views with the columns JOBS_QUERY reads (their documented
# names and types), so the query itself runs on a server; the extension is not there.
TIMESCALE_VIEWS = """
CREATE SCHEMA timescaledb_information;
CREATE VIEW timescaledb_information.jobs AS
  SELECT 1000 AS job_id, 'policy_compression'::name AS proc_name,
         'public'::name AS hypertable_schema, 'klines'::name AS hypertable_name,
         interval '12 hours' AS schedule_interval,
         timestamptz '2026-01-28 12:00:00+00' AS next_start
  UNION ALL
  SELECT 1001, 'policy_retention', 'public', 'klines', interval '1 day',
         timestamptz '2026-01-29 00:00:00+00'
  UNION ALL
  SELECT 1, 'policy_telemetry', NULL, NULL, interval '24 hours', NULL;
CREATE VIEW timescaledb_information.job_stats AS
  SELECT 1000 AS job_id, 'Success'::text AS last_run_status,
         timestamptz '2026-01-28 00:00:00+00' AS last_run_started_at,
         timestamptz '2026-01-28 12:00:05+00' AS next_start;
"""


async def test_plain_postgresql_says_the_engine_retention_keeps_klines_in_check(
    postgres_url: str,
) -> None:
    report = await maintenance_report(
        PgTarget.from_url(postgres_url), retention_days=90, compress_after_days=7
    )
    assert report == {
        "backend": "postgresql",
        "retention": "engine-retention",
        "klines_retention_days": 90,
        "jobs": [],
    }


def test_every_backup_result_carries_the_maintenance_report(
    cli: Cli, trading_database: str
) -> None:
    made = cli(
        "backup",
        "--no-redis",
        database_url=trading_database,
        env={"KLINES_RETENTION_DAYS": "45", "KLINES_COMPRESS_AFTER_DAYS": "3"},
    )
    assert made.code == 0, made.result
    assert made.result["maintenance"] == {
        "backend": "postgresql",
        "retention": "engine-retention",
        "klines_retention_days": 45,
        "jobs": [],
    }


async def test_the_jobs_query_reads_timescaledb_shaped_views(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(TIMESCALE_VIEWS)
        rows = await conn.fetch(JOBS_QUERY)
    finally:
        await conn.close()
    jobs = jobs_from_rows(dict(row.items()) for row in rows)
    assert [(j["job_id"], j["proc"], j["last_run_status"]) for j in jobs] == [
        (1000, "policy_compression", "Success"),
        (1001, "policy_retention", None),
    ]
    assert jobs[0]["next_start"] == "2026-01-28T12:00:05Z"  # job_stats' own next start
    assert jobs[1]["next_start"] == "2026-01-29T00:00:00Z"
    assert jobs[0]["schedule_interval"] == "12:00:00"
