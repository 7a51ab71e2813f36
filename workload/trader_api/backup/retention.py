"""Retention of backups: delete the old ones, never the newest successful one."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from trader_api.backup.errors import BackupError
from trader_api.backup.files import remove_tree
from trader_api.backup.manifest import read_manifest

STAGING_PREFIX: Final = ".staging-"
# A staging folder this old belongs to a run that died: nothing will publish it.
_STALE_STAGING: Final = timedelta(hours=6)
_NAME: Final = re.compile(r"^(?P<bot>.+)-(?P<stamp>\d{8}T\d{6}(?:\d{6})?Z)$")


@dataclass(frozen=True, slots=True)
class BackupEntry:
    """A backup folder as found on disk."""

    path: Path
    created_at: datetime
    successful: bool  # a valid manifest: published complete


def backup_name(bot: str, at: datetime) -> str:
    return f"{bot}-{at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}"


def _stamp_time(stamp: str) -> datetime:
    fmt = "%Y%m%dT%H%M%S%fZ" if len(stamp) > len("20260101T000000Z") else "%Y%m%dT%H%M%SZ"
    return datetime.strptime(stamp, fmt).replace(tzinfo=UTC)


def list_backups(dest: Path, *, bot: str) -> list[BackupEntry]:
    """Return ``bot``'s backup folders in ``dest``, oldest first."""
    entries: list[BackupEntry] = []
    if not dest.is_dir():
        return entries
    for child in dest.iterdir():
        match = _NAME.match(child.name)
        if not child.is_dir() or match is None or match["bot"] != bot:
            continue
        try:
            manifest = read_manifest(child)
        except BackupError:
            entries.append(BackupEntry(child, _stamp_time(match["stamp"]), successful=False))
        else:
            entries.append(BackupEntry(child, manifest.created_at, successful=True))
    entries.sort(key=lambda e: e.created_at)
    return entries


def newest_successful(dest: Path, *, bot: str) -> BackupEntry | None:
    successful = [e for e in list_backups(dest, bot=bot) if e.successful]
    return successful[-1] if successful else None


def select_expired(
    entries: Sequence[BackupEntry], *, now: datetime, retention_days: int
) -> list[BackupEntry]:
    """Pick the backups older than ``retention_days``, sparing the newest successful one."""
    if retention_days < 1:
        raise BackupError(f"retention must be at least 1 day, got {retention_days}")
    cutoff = now - timedelta(days=retention_days)
    successful = [e for e in entries if e.successful]
    keep = max(successful, key=lambda e: e.created_at) if successful else None
    return [e for e in entries if e.created_at < cutoff and e != keep]


def prune(dest: Path, *, bot: str, retention_days: int, now: datetime | None = None) -> list[Path]:
    """Delete expired backups and stale staging folders; return what was deleted."""
    now = now or datetime.now(UTC)
    expired = select_expired(list_backups(dest, bot=bot), now=now, retention_days=retention_days)
    deleted = [entry.path for entry in expired]
    if dest.is_dir():
        stale_before = time.time() - _STALE_STAGING.total_seconds()
        for child in dest.iterdir():
            if child.name.startswith(STAGING_PREFIX) and child.stat().st_mtime < stale_before:
                deleted.append(child)
    for path in deleted:
        remove_tree(path)
    return deleted
