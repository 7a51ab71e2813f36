"""Pure logic of scheduled backup verification: the BackupVerified condition.

The verify CronJob (``desired/backup.py``) runs ``trader-backup verify`` on the
newest backup. Its result is read like the backup CronJob's: from the CronJob's own
record (last schedule vs. last success), plus trader-backup's JSON line from the
failed Job's termination message, so the condition says *why* a backup did not
verify. Nothing here talks to the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from traderbot_operator.desired.common import Names
from traderbot_operator.models import TraderBot

CONDITION: Final = "BackupVerified"
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Verification:
    """The BackupVerified condition's status, reason and message."""

    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str


def wanted(bot: TraderBot) -> bool:
    """Return whether the bot has a verify CronJob (backups and verification both on)."""
    return bot.spec.backup.enabled and bot.spec.backup.verify.enabled


def job_name(bot: TraderBot, scheduled: str) -> str:
    """Return the name of the Job the CronJob started for ``scheduled`` (an RFC 3339 time).

    NB: the CronJob controller names each Job ``<cronjob>-<scheduled time in Unix
    minutes>``, so the last run's Job is found without listing Jobs.
    """
    minutes = int(datetime.fromisoformat(scheduled).timestamp() // 60)
    return f"{Names(bot.name).backup_verify}-{minutes}"


def failed_run(bot: TraderBot, cronjob: Mapping[str, Any] | None) -> str | None:
    """Return the Job name of the last verification when it ended without success."""
    if not wanted(bot) or cronjob is None:
        return None
    status = cronjob.get("status") or {}
    scheduled, succeeded = status.get("lastScheduleTime"), status.get("lastSuccessfulTime")
    if scheduled is None or status.get("active"):
        return None
    if succeeded is not None and succeeded >= scheduled:
        return None
    return job_name(bot, scheduled)


def backup_verified(
    bot: TraderBot,
    cronjob: Mapping[str, Any] | None,
    *,
    result: Mapping[str, Any] | None,
) -> Verification | None:
    """Return the BackupVerified condition from the verify CronJob; None when it is off.

    ``result`` is trader-backup's JSON line of the last run when it failed (None when
    it could not be read: the Job may be gone already).
    """
    if not wanted(bot) or cronjob is None:
        return None
    status = cronjob.get("status") or {}
    scheduled, succeeded = status.get("lastScheduleTime"), status.get("lastSuccessfulTime")
    schedule = bot.spec.backup.verify.schedule
    if scheduled is None:
        return Verification(
            "Unknown", "NotRunYet", f"no verification has run yet (schedule {schedule!r})"
        )
    if status.get("active"):
        if succeeded is None:
            return Verification("Unknown", "Verifying", f"the verification of {scheduled} runs")
        return Verification(
            "True",
            "Verifying",
            f"the newest backup verified at {succeeded}; the verification of {scheduled} runs",
        )
    failed = failed_run(bot, cronjob)
    if failed is not None:
        error = (result or {}).get("error") or "no result reported"
        return Verification(
            "False",
            "VerificationFailed",
            f"the verification of {scheduled} (Job {failed}) failed: {error}; last success: "
            f"{succeeded or 'never'}. The newest backup may not be restorable: see "
            f"kubectl logs job/{failed}",
        )
    return Verification(
        "True",
        "Verified",
        f"the newest backup was restored into a scratch database and matched its manifest "
        f"at {succeeded}",
    )


def verified_condition(
    verification: Verification,
    *,
    previous: Mapping[str, Any] | None,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """Return the BackupVerified condition; its lastTransitionTime moves only on a flip."""
    stamp = now.strftime(_TIME_FORMAT)
    flipped = previous is None or previous.get("status") != verification.status
    return {
        "type": CONDITION,
        "status": verification.status,
        "reason": verification.reason,
        "message": verification.message,
        "lastTransitionTime": (
            stamp if flipped else (previous or {}).get("lastTransitionTime") or stamp
        ),
        "observedGeneration": generation,
    }
