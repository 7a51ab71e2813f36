"""The manifest of a backup: what it holds, and the checksums that prove it is intact."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trader_api.backup.errors import BackupError
from trader_api.backup.files import sha256_of

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class FileEntry(BaseModel):
    """One file of the backup, with its size and SHA-256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(pattern=r"^[A-Za-z0-9._-]+$")  # a bare name inside the backup folder
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    def check(self, folder: Path) -> None:
        """Raise ``BackupError`` unless the file exists with the recorded size and checksum."""
        path = folder / self.file
        if not path.is_file():
            raise BackupError(f"backup file missing: {path}")
        size = path.stat().st_size
        if size != self.size:
            raise BackupError(f"backup file {path} is {size} bytes, manifest says {self.size}")
        actual = sha256_of(path)
        if actual != self.sha256:
            raise BackupError(
                f"checksum mismatch for {path}: sha256 {actual}, manifest says {self.sha256}"
            )


class DatabasePart(FileEntry):
    """The PostgreSQL dump (``pg_dump`` custom format, compressed)."""

    format: Literal["pg_dump-custom"] = "pg_dump-custom"
    server_version: str
    database: str
    scope: Literal["full", "tables"]
    tables: dict[str, int]  # table -> row count in the dump's snapshot


# Copied from the data folder, via redis-cli --rdb, or a compose-era file imported.
RedisSource = Literal["data_dir", "replication", "imported"]


class RedisPart(FileEntry):
    """A copy of Redis's RDB snapshot, taken after ``BGSAVE`` completed."""

    format: Literal["rdb"] = "rdb"
    lastsave: int  # Redis LASTSAVE (unix seconds) after the BGSAVE
    source: RedisSource = "data_dir"  # copied from the data folder, or via redis-cli --rdb


class ImportedFile(BaseModel):
    """A file ``trader-backup import`` read, as it was: for tracing the backup to its source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str  # the imported file's name (not a file of the backup folder)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ImportOrigin(BaseModel):
    """Where an imported backup came from: the docker-compose era's backup files.

    NB: informational; restore checks the backup's own files, which the import wrote.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["compose"] = "compose"
    sql_gz: ImportedFile | None = None
    redis_rdb: ImportedFile | None = None
    pg_dump_version: str | None = None
    server_version: str | None = None  # the compose database's PostgreSQL version
    timescaledb: bool | None = None  # the dump created the timescaledb extension
    rdb_version: int | None = None
    rdb_checksum: bool | None = None  # False: saved with rdbchecksum no (nothing to check)
    redis_version: str | None = None  # the snapshot's redis-ver


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int = FORMAT_VERSION
    bot: str
    name: str
    created_at: datetime
    completed_at: datetime
    database: DatabasePart | None = None
    redis: RedisPart | None = None
    origin: ImportOrigin | None = None  # set by ``trader-backup import`` only

    @property
    def size(self) -> int:
        return sum(part.size for part in (self.database, self.redis) if part is not None)

    def check_files(self, folder: Path) -> None:
        """Verify every file against its recorded size and checksum (nothing is touched)."""
        for part in (self.database, self.redis):
            if part is not None:
                part.check(folder)


def read_manifest(folder: Path) -> Manifest:
    """Load and validate ``folder``'s manifest, or raise ``BackupError`` saying why not."""
    path = folder / MANIFEST_NAME
    if not folder.is_dir():
        raise BackupError(f"backup not found: {folder}")
    if not path.is_file():
        raise BackupError(f"backup {folder} has no {MANIFEST_NAME}: incomplete or not a backup")
    try:
        manifest = Manifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise BackupError(f"manifest {path} is invalid: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise BackupError(f"manifest {path} has unknown format {manifest.format_version}")
    return manifest
