"""The maintenance report's parsing: TimescaleDB job rows -> the JSON the operator copies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from trader_api.backup.maintenance import ENGINE_RETENTION, engine_report, jobs_from_rows

# As asyncpg returns JOBS_QUERY's rows from timescaledb_information.jobs/job_stats.
TIMESCALE_ROWS = [
    {
        "job_id": 1000,
        "proc_name": "policy_compression",
        "hypertable_schema": "public",
        "hypertable_name": "klines",
        "schedule_interval": "12:00:00",
        "last_run_status": "Success",
        "last_run_started_at": datetime(2026, 1, 28, 0, 0, 1, tzinfo=UTC),
        "next_start": datetime(2026, 1, 28, 12, 0, 1, tzinfo=UTC),
    },
    {
        "job_id": 1001,
        "proc_name": "policy_retention",
        "hypertable_schema": "public",
        "hypertable_name": "klines",
        "schedule_interval": "1 day",
        "last_run_status": None,  # never ran yet: no job_stats row
        "last_run_started_at": None,
        "next_start": datetime(2026, 1, 29, 0, 0, tzinfo=UTC),
    },
]


def test_timescaledb_rows_become_job_entries() -> None:
    assert jobs_from_rows(TIMESCALE_ROWS) == [
        {
            "job_id": 1000,
            "proc": "policy_compression",
            "hypertable": "public.klines",
            "schedule_interval": "12:00:00",
            "last_run_status": "Success",
            "last_run_started_at": "2026-01-28T00:00:01Z",
            "next_start": "2026-01-28T12:00:01Z",
        },
        {
            "job_id": 1001,
            "proc": "policy_retention",
            "hypertable": "public.klines",
            "schedule_interval": "1 day",
            "last_run_status": None,
            "last_run_started_at": None,
            "next_start": "2026-01-29T00:00:00Z",
        },
    ]


def test_a_next_start_in_another_offset_keeps_its_offset() -> None:
    cet = timezone(timedelta(hours=1))
    row = {**TIMESCALE_ROWS[0], "next_start": datetime(2026, 1, 28, 13, 0, tzinfo=cet)}
    [job] = jobs_from_rows([row])
    assert job["next_start"] == "2026-01-28T13:00:00+01:00"


def test_plain_postgresql_reports_the_engine_retention() -> None:
    assert engine_report(retention_days=90) == {
        "backend": "postgresql",
        "retention": ENGINE_RETENTION,
        "klines_retention_days": 90,
        "jobs": [],
    }
