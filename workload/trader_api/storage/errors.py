"""Errors the storage layer raises, so callers never catch driver exceptions."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every storage error."""


class StorageUnavailableError(StorageError):
    """The database or Redis cannot be reached right now (retry later; readiness fails)."""


class NotFoundError(StorageError):
    """The row to update does not exist."""


class ConflictError(StorageError):
    """The write contradicts what is stored (e.g. an order id reused with another client id)."""


class MigrationError(StorageError):
    """The schema cannot be brought to the version this code expects."""
