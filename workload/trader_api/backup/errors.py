"""The one error the backup program reports: a message an SRE can act on."""

from __future__ import annotations


class BackupError(Exception):
    """A backup, restore, verify or prune step failed; nothing half-done is left behind."""
