"""Redis side of backups: ``BGSAVE``, wait until the snapshot is really new, copy ``dump.rdb``.

The copy comes from Redis's data folder when this pod mounts it (Redis writes a
snapshot to a temp file and renames it, so the copy is one whole snapshot), or
else over the network with ``redis-cli --rdb``. A restore always needs the
folder: Redis is stopped then, so its volume is free to mount.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from trader_api.backup.errors import BackupError
from trader_api.backup.files import (
    copy_file_durably,
    fsync_dir,
    fsync_file,
    remove_tree,
    sha256_of,
    write_file_atomically,
)
from trader_api.backup.manifest import RedisPart, RedisSource

_POLL_INTERVAL_S: Final = 0.05
DEFAULT_DBFILENAME: Final = "dump.rdb"


def _client(url: str) -> redis.Redis:
    client: redis.Redis = redis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30
    )
    return client


def _persistence(client: redis.Redis) -> dict[str, Any]:
    info: dict[str, Any] = client.info("persistence")
    return info


def _dbfilename(client: redis.Redis) -> str:
    """Ask Redis for its RDB file name; managed Redis may forbid CONFIG, then use the default."""
    try:
        reply: dict[str | None, str | None] = client.config_get("dbfilename")
    except ResponseError:
        return DEFAULT_DBFILENAME
    return reply.get("dbfilename") or DEFAULT_DBFILENAME


def _lastsave(client: redis.Redis) -> int:
    """Return LASTSAVE as unix seconds (redis-py parses it into a datetime)."""
    saved: datetime = client.lastsave()
    return int(saved.timestamp())


def _wait(
    condition: Callable[[], bool], *, timeout_s: float, what: str, clock: Callable[[], float]
) -> None:
    deadline = clock() + timeout_s
    while not condition():
        if clock() > deadline:
            raise BackupError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(_POLL_INTERVAL_S)  # polling interval of a condition, not a fixed wait


def bgsave_snapshot(
    client: redis.Redis, *, timeout_s: float, clock: Callable[[], float] = time.monotonic
) -> int:
    """Trigger ``BGSAVE`` and return once a snapshot newer than the call is on disk.

    "Newer" is judged by ``LASTSAVE`` moving, or by the ``rdb_saves`` counter
    when a previous save finished within the same second (LASTSAVE has
    one-second resolution). Returns the snapshot's LASTSAVE.
    """
    before_lastsave = _lastsave(client)
    before_saves = int(_persistence(client).get("rdb_saves", 0))
    while True:
        try:
            client.bgsave()
            break
        except ResponseError as exc:
            if "in progress" not in str(exc):
                raise BackupError(f"redis BGSAVE refused: {exc}") from exc
            # Someone else's save is running: it may predate our call, so wait and ask again.
            _wait(
                lambda: int(_persistence(client)["rdb_bgsave_in_progress"]) == 0,
                timeout_s=timeout_s,
                what="a running BGSAVE to finish",
                clock=clock,
            )

    def done() -> bool:
        info = _persistence(client)
        if int(info["rdb_bgsave_in_progress"]) != 0:
            return False
        moved = _lastsave(client) > before_lastsave
        return moved or int(info.get("rdb_saves", 0)) > before_saves

    _wait(done, timeout_s=timeout_s, what="BGSAVE to complete (LASTSAVE to move)", clock=clock)
    status = _persistence(client).get("rdb_last_bgsave_status")
    if status != "ok":
        raise BackupError(f"redis BGSAVE failed (rdb_last_bgsave_status={status})")
    return _lastsave(client)


def fetch_rdb(*, url: str, out: Path, timeout_s: float) -> None:
    """Stream a snapshot over the network with ``redis-cli --rdb`` (the replication protocol).

    NB: for a Redis whose volume this pod cannot mount; the password goes in
    ``REDISCLI_AUTH``, never on the command line.
    """
    binary = shutil.which("redis-cli")
    if binary is None:
        raise BackupError("redis-cli not found on PATH (install redis-tools)")
    parts = urlsplit(url)
    argv = [binary, "-h", parts.hostname or "localhost", "-p", str(parts.port or 6379)]
    if parts.scheme == "rediss":
        argv.append("--tls")
    env = dict(os.environ)
    if parts.password:
        env["REDISCLI_AUTH"] = unquote(parts.password)
    if parts.username:
        argv += ["--user", unquote(parts.username)]
    temp = out.with_name(f".{out.name}.tmp")
    try:
        proc = subprocess.run(  # noqa: S603  # fixed binary, arguments from parsed URL parts
            [*argv, "--rdb", str(temp)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        temp.unlink(missing_ok=True)
        raise BackupError(f"redis-cli --rdb timed out after {timeout_s:.0f}s") from exc
    if proc.returncode != 0:
        temp.unlink(missing_ok=True)
        message = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-2000:]
        raise BackupError(f"redis-cli --rdb failed (exit {proc.returncode}): {message}")
    fsync_file(temp)
    temp.replace(out)
    fsync_dir(out.parent)


def backup_redis(
    *, url: str, data_dir: Path | None, out: Path, timeout_s: float = 300
) -> RedisPart:
    """Snapshot Redis (``BGSAVE``, wait for LASTSAVE) and save a copy of it to ``out``.

    With ``data_dir`` (Redis's volume mounted here) the fresh ``dump.rdb`` is
    copied; without it the snapshot is streamed with ``redis-cli --rdb``.
    """
    client = _client(url)
    try:
        lastsave = bgsave_snapshot(client, timeout_s=timeout_s)
        dbfilename = _dbfilename(client)
    except RedisError as exc:
        raise BackupError(f"redis unreachable: {exc}") from exc
    finally:
        client.close()
    if data_dir is None:
        fetch_rdb(url=url, out=out, timeout_s=timeout_s)
        source: RedisSource = "replication"
    else:
        snapshot = data_dir / dbfilename
        if not snapshot.is_file():
            raise BackupError(
                f"redis snapshot {snapshot} not found: is the Redis data dir mounted?"
            )
        copy_file_durably(snapshot, out)
        source = "data_dir"
    with out.open("rb") as rdb:
        if rdb.read(5) != b"REDIS":
            raise BackupError(f"{out.name} is not an RDB file")
    return RedisPart(
        file=out.name,
        size=out.stat().st_size,
        sha256=sha256_of(out),
        lastsave=lastsave,
        source=source,
    )


def redis_is_running(url: str) -> bool:
    """Return whether anything answers at ``url``.

    NB: an error *reply* (wrong password, loading) still means a running Redis;
    only a refused or timed-out connection means it is stopped.
    """
    client = _client(url)
    try:
        client.ping()
    except AuthenticationError:  # NB: a subclass of ConnectionError, yet an answer
        return True
    except (RedisConnectionError, RedisTimeoutError, OSError):
        return False
    except RedisError:
        return True
    finally:
        client.close()
    return True


AOF_DIRNAME: Final = "appendonlydir"
AOF_BASENAME: Final = "appendonly.aof"


def _write_aof_base(*, snapshot: Path, data_dir: Path) -> Path:
    """Replace Redis's append-only folder with one whose base is ``snapshot``.

    NB: with ``appendonly yes`` Redis (7.0+) loads its multi-part AOF at start and
    ignores ``dump.rdb``; without an AOF folder it starts *empty*. An RDB file is a
    valid AOF base ("type b"), so the restored snapshot becomes the base of a new
    folder (written under a temp name, then swapped in) and Redis adds its own
    incremental file on start.
    """
    folder = data_dir / AOF_DIRNAME
    staging = data_dir / f".{AOF_DIRNAME}.restore"
    retired = data_dir / f".{AOF_DIRNAME}.old"
    for leftover in (staging, retired):
        remove_tree(leftover)
    staging.mkdir()
    base = f"{AOF_BASENAME}.1.base.rdb"
    copy_file_durably(snapshot, staging / base)
    write_file_atomically(
        staging / f"{AOF_BASENAME}.manifest", f"file {base} seq 1 type b\n".encode()
    )
    fsync_dir(staging)
    if folder.exists():
        folder.rename(retired)
    staging.rename(folder)
    fsync_dir(data_dir)
    remove_tree(retired)
    return folder


def restore_redis(
    *,
    folder: Path,
    part: RedisPart,
    data_dir: Path,
    url: str | None,
    dbfilename: str,
    appendonly: bool = False,
) -> Path:
    """Put the backed-up RDB file where Redis loads it on its next start.

    With ``appendonly`` (the operator runs Redis with ``--appendonly yes`` when
    persistence is on) the snapshot also becomes the base of a new AOF folder,
    which is what Redis then loads.
    NB: Redis must be stopped (it would overwrite the file with its own data
    on shutdown or its next save); when ``url`` is given and Redis answers,
    this refuses before touching anything.
    """
    if url is not None and redis_is_running(url):
        raise BackupError("redis is running: stop it before restoring its snapshot")
    if not data_dir.is_dir():
        raise BackupError(f"redis data dir {data_dir} not found")
    legacy = data_dir / AOF_BASENAME
    if appendonly and legacy.is_file():
        # NB: Redis before 7.0 keeps one appendonly.aof and would load it, not the snapshot.
        raise BackupError(
            f"{legacy} is a Redis 6 append-only file: restoring a snapshot under AOF needs "
            "Redis 7 or later (multi-part AOF); nothing was changed"
        )
    target = data_dir / dbfilename
    copy_file_durably(folder / part.file, target)
    if appendonly:
        _write_aof_base(snapshot=target, data_dir=data_dir)
    return target
