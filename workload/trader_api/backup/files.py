"""Durable file operations: checksums, fsync, and publishing a folder atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Persist a folder's entries (a rename is durable only once its folder is synced)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp name beside ``path``, fsync it, rename it over ``path``."""
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    temp.replace(path)
    fsync_dir(path.parent)


def copy_file_durably(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` (temp name, fsync, rename)."""
    temp = target.with_name(f".{target.name}.tmp")
    with source.open("rb") as src, temp.open("wb") as out:
        shutil.copyfileobj(src, out, _CHUNK)
        out.flush()
        os.fsync(out.fileno())
    temp.replace(target)
    fsync_dir(target.parent)


def publish_folder(staging: Path, final: Path) -> None:
    """Make a fully written staging folder visible under its final name, durably.

    NB: every file inside must already be fsynced; after this returns the
    folder is either entirely there under ``final`` or not there at all.
    """
    fsync_dir(staging)
    staging.rename(final)
    fsync_dir(final.parent)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
