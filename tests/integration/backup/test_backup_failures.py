"""Bad backups and bad places: a clear error, nothing touched, a non-zero exit."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.backup_data import Cli, snapshot_rows


@pytest.fixture
async def good_backup(cli: Cli, trading_database: str) -> Path:
    made = cli("backup", database_url=trading_database)
    assert made.code == 0, made.result
    return Path(made.result["location"])


def _assert_refused(cli: Cli, backup: Path, url: str, message: str) -> None:
    refused = cli("restore", str(backup), "--what", "both", database_url=url)
    assert refused.code == 1
    assert refused.result["ok"] is False
    assert message in refused.result["error"]


async def test_a_corrupt_archive_is_refused_before_anything_is_touched(
    cli: Cli, trading_database: str, good_backup: Path
) -> None:
    dump = good_backup / "database.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    before = await snapshot_rows(trading_database)

    _assert_refused(cli, good_backup, trading_database, "checksum mismatch")

    assert await snapshot_rows(trading_database) == before
    verified = cli("verify", str(good_backup), database_url=trading_database)
    assert verified.code == 1
    assert "checksum mismatch" in verified.result["error"]


def _wrong_checksum_in_manifest(backup: Path) -> None:
    manifest_path = backup / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["redis"]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))


def _redis_file_missing(backup: Path) -> None:
    (backup / "redis.rdb").unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_wrong_checksum_in_manifest, "checksum mismatch"),
        (_redis_file_missing, "backup file missing"),
    ],
    ids=["wrong-checksum", "missing-file"],
)
async def test_a_damaged_backup_is_refused_and_nothing_is_touched(
    cli: Cli,
    trading_database: str,
    good_backup: Path,
    damage: Callable[[Path], None],
    message: str,
) -> None:
    damage(good_backup)
    before = await snapshot_rows(trading_database)

    _assert_refused(cli, good_backup, trading_database, message)

    assert await snapshot_rows(trading_database) == before


async def test_a_missing_manifest_or_backup_is_refused(
    cli: Cli, trading_database: str, good_backup: Path
) -> None:
    (good_backup / "manifest.json").unlink()
    _assert_refused(cli, good_backup, trading_database, "has no manifest.json")
    _assert_refused(cli, good_backup.parent / "nope", trading_database, "backup not found")


@contextlib.contextmanager
def _tiny_filesystem(path: Path, *, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.skipif(os.getuid() != 0, reason="mounting a tiny tmpfs needs root (CI runs as root)")
async def test_a_full_disk_fails_cleanly_and_leaves_no_partial_backup(
    cli: Cli, trading_database: str, tmp_path: Path
) -> None:
    with _tiny_filesystem(tmp_path / "full", size="16k") as full:
        failed = cli("backup", env={"BACKUP_DIR": str(full)}, database_url=trading_database)
        assert failed.code == 1
        assert failed.result["ok"] is False
        assert "No space left on device" in failed.result["error"]
        assert list(full.iterdir()) == []
