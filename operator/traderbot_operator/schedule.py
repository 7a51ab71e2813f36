"""Cron arithmetic for the backup CronJob: when were runs due, and is a success overdue.

Pure: the caller passes ``now``. Cron expressions are evaluated by ``cronsim`` in
the schedule's IANA time zone, as the CronJob controller does (``spec.timeZone``),
so a daily 03:00 in Europe/Berlin stays at 03:00 local across DST changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

# NB: the macros the CronJob controller accepts; cronsim parses five fields only.
_MACROS: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
OVERDUE_PERIODS: Final = 2


def parse_time(text: str | None) -> datetime | None:
    """Return an RFC 3339 time as the API server writes it; None when absent or malformed."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def due_before(schedule: str, *, time_zone: str, now: datetime, count: int) -> list[datetime]:
    """Return the last ``count`` times the schedule fired before ``now``, newest first.

    Empty when the schedule or the time zone cannot be evaluated (the API server
    then refuses the CronJob itself, which the bot's status already reports).
    """
    try:
        zone = ZoneInfo(time_zone)
        runs = CronSim(_MACROS.get(schedule.strip(), schedule), now.astimezone(zone), reverse=True)
        return list(islice(runs, count))
    except (CronSimError, ZoneInfoNotFoundError, ValueError):
        return []


@dataclass(frozen=True)
class Overdue:
    """No success within the last periods: since when a success was due, and the last one."""

    due_since: datetime
    last_success: str | None


def backup_overdue(
    *,
    schedule: str,
    time_zone: str,
    created: str | None,
    last_success: str | None,
    now: datetime,
) -> Overdue | None:
    """Return why backups are overdue: no success within ``OVERDUE_PERIODS`` schedule periods.

    ``created`` is when the CronJob was created (RFC 3339) and ``last_success`` its
    ``status.lastSuccessfulTime``. NB: a CronJob younger than those periods had no
    chance to succeed that often, so it is never overdue; nor is one whose schedule
    cannot be evaluated.
    """
    due = due_before(schedule, time_zone=time_zone, now=now, count=OVERDUE_PERIODS)
    born = parse_time(created)
    if len(due) < OVERDUE_PERIODS or born is None:
        return None
    oldest = due[-1]
    if born > oldest:
        return None
    succeeded = parse_time(last_success)
    if succeeded is not None and succeeded >= oldest:
        return None
    return Overdue(due_since=oldest, last_success=last_success)
