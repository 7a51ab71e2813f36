"""TimescaleDB SQL for klines, built without a server (it cannot be installed here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trader_api.storage.timescale import (
    InstalledPolicies,
    KlinesPolicy,
    hypertable_statements,
    installed_from_jobs,
    jobs_from_rows,
    policy_statements,
    timescale_status,
)


def test_defaults_are_the_seed_policies() -> None:
    policy = KlinesPolicy()
    assert (policy.compress_after_days, policy.retention_days) == (7, 90)


@pytest.mark.parametrize("field", ["compress_after_days", "retention_days", "chunk_days"])
def test_non_positive_days_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        KlinesPolicy(**{field: 0})


def test_hypertable_setup_is_idempotent_and_converts_existing_rows() -> None:
    statements = hypertable_statements(KlinesPolicy(chunk_days=2))
    sqls = [sql for sql, _ in statements]
    assert sqls[0] == "CREATE EXTENSION IF NOT EXISTS timescaledb"
    assert "create_hypertable('klines', 'open_time'" in sqls[1]
    assert "if_not_exists => TRUE" in sqls[1]
    assert "migrate_data => TRUE" in sqls[1]
    assert statements[1][1] == (timedelta(days=2),)
    assert "timescaledb.compress_segmentby = 'symbol, interval'" in sqls[2]


def test_fresh_install_adds_both_policies_with_intervals_as_parameters() -> None:
    statements = policy_statements(KlinesPolicy(), InstalledPolicies(None, None))
    assert statements == [
        (
            "SELECT add_compression_policy('klines', compress_after => $1::interval)",
            (timedelta(days=7),),
        ),
        (
            "SELECT add_retention_policy('klines', drop_after => $1::interval)",
            (timedelta(days=90),),
        ),
    ]


def test_unchanged_policies_produce_no_statements() -> None:
    assert policy_statements(KlinesPolicy(), InstalledPolicies(7, 90)) == []


def test_a_changed_policy_is_replaced_and_only_that_one() -> None:
    statements = policy_statements(
        KlinesPolicy(compress_after_days=7, retention_days=30), InstalledPolicies(7, 90)
    )
    assert statements == [
        ("SELECT remove_retention_policy('klines', if_exists => TRUE)", ()),
        (
            "SELECT add_retention_policy('klines', drop_after => $1::interval)",
            (timedelta(days=30),),
        ),
    ]


def test_jobs_are_read_from_timescaledb_information_rows() -> None:
    next_start = datetime(2026, 1, 6, tzinfo=UTC)
    rows = [
        {
            "job_id": 1000,
            "proc_name": "policy_compression",
            "schedule_interval": "12:00:00",
            "next_start": next_start,
            "after_seconds": 7 * 86400,
        },
        {
            "job_id": 1001,
            "proc_name": "policy_retention",
            "schedule_interval": "1 day",
            "next_start": None,
            "after_seconds": 90 * 86400,
        },
        {
            "job_id": 1,
            "proc_name": "policy_telemetry",
            "schedule_interval": "1 day",
            "next_start": None,
            "after_seconds": None,
        },
    ]
    jobs = jobs_from_rows(rows)
    assert [(j.job_id, j.kind, j.after_days) for j in jobs] == [
        (1000, "compression", 7),
        (1001, "retention", 90),
    ]
    assert jobs[0].next_start == next_start
    assert installed_from_jobs(jobs) == InstalledPolicies(7, 90)
    status = timescale_status(KlinesPolicy(), jobs)
    assert not status.engine_retention
    assert status.summary == "timescaledb: compress after 7d, drop after 90d (2 jobs)"
