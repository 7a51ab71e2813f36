"""Retention of backup folders: exactly the old ones go, never the newest successful one."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trader_api.backup.errors import BackupError
from trader_api.backup.manifest import MANIFEST_NAME, Manifest
from trader_api.backup.retention import backup_name, list_backups, prune, select_expired

NOW = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def _backup(dest: Path, *, days_ago: float, successful: bool = True, bot: str = "demo") -> str:
    created = NOW - timedelta(days=days_ago)
    name = backup_name(bot, created)
    folder = dest / name
    folder.mkdir(parents=True)
    if successful:
        manifest = Manifest(bot=bot, name=name, created_at=created, completed_at=created)
        (folder / MANIFEST_NAME).write_text(manifest.model_dump_json())
    return name


def test_backups_older_than_retention_are_deleted_and_no_others(tmp_path: Path) -> None:
    kept = [_backup(tmp_path, days_ago=d) for d in (1, 10, 29.9)]
    expired = [_backup(tmp_path, days_ago=d) for d in (30.1, 45, 90)]
    expired.append(_backup(tmp_path, days_ago=40, successful=False))
    other_bot = _backup(tmp_path, days_ago=90, bot="other")

    deleted = prune(tmp_path, bot="demo", retention_days=30, now=NOW)

    assert sorted(p.name for p in deleted) == sorted(expired)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, other_bot])


def test_the_newest_successful_backup_survives_however_old(tmp_path: Path) -> None:
    old = [_backup(tmp_path, days_ago=d) for d in (60, 50)]
    failed_newer = _backup(tmp_path, days_ago=40, successful=False)

    deleted = prune(tmp_path, bot="demo", retention_days=30, now=NOW)

    assert sorted(p.name for p in deleted) == sorted([old[0], failed_newer])
    assert [p.name for p in tmp_path.iterdir()] == [old[1]]


def test_stale_staging_folders_of_dead_runs_are_removed(tmp_path: Path) -> None:
    stale = tmp_path / ".staging-demo-20260101T000000000000Z"
    fresh = tmp_path / ".staging-demo-20260301T025900000000Z"
    stale.mkdir()
    fresh.mkdir()
    week_ago = (datetime.now(UTC) - timedelta(days=7)).timestamp()
    os.utime(stale, (week_ago, week_ago))

    deleted = prune(tmp_path, bot="demo", retention_days=30, now=NOW)

    assert deleted == [stale]
    assert fresh.exists()


def test_listing_orders_backups_and_marks_incomplete_ones(tmp_path: Path) -> None:
    newer = _backup(tmp_path, days_ago=1)
    broken = _backup(tmp_path, days_ago=2, successful=False)
    entries = list_backups(tmp_path, bot="demo")
    assert [(e.path.name, e.successful) for e in entries] == [(broken, False), (newer, True)]
    assert select_expired(entries, now=NOW, retention_days=1) == [entries[0]]


def test_retention_below_one_day_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="at least 1 day"):
        prune(tmp_path, bot="demo", retention_days=0, now=NOW)
