"""Redis side of backups: ``BGSAVE``, wait until the snapshot is really new, copy ``dump.rdb``.

NB: the RDB file is read from Redis's data folder, so the backup Job mounts
Redis's volume (read-only is enough). Redis writes a snapshot to a temp file
and renames it, so the copy is always one whole snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import redis
from redis.exceptions import RedisError, ResponseError

from trader_api.backup.errors import BackupError
from trader_api.backup.files import copy_file_durably, sha256_of
from trader_api.backup.manifest import RedisPart

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


def backup_redis(*, url: str, data_dir: Path, out: Path, timeout_s: float = 300) -> RedisPart:
    """Snapshot Redis and copy the RDB file to ``out`` (durably), with its checksum."""
    client = _client(url)
    try:
        lastsave = bgsave_snapshot(client, timeout_s=timeout_s)
        source = data_dir / _dbfilename(client)
    except RedisError as exc:
        raise BackupError(f"redis unreachable: {exc}") from exc
    finally:
        client.close()
    if not source.is_file():
        raise BackupError(f"redis snapshot {source} not found: is the Redis data dir mounted?")
    copy_file_durably(source, out)
    return RedisPart(
        file=out.name, size=out.stat().st_size, sha256=sha256_of(out), lastsave=lastsave
    )


def redis_is_running(url: str) -> bool:
    client = _client(url)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


def restore_redis(
    *, folder: Path, part: RedisPart, data_dir: Path, url: str | None, dbfilename: str
) -> Path:
    """Put the backed-up RDB file where Redis loads it on its next start.

    NB: Redis must be stopped (it would overwrite the file with its own data
    on shutdown or its next save); when ``url`` is given and Redis answers,
    this refuses before touching anything.
    """
    if url is not None and redis_is_running(url):
        raise BackupError("redis is running: stop it before restoring its snapshot")
    if not data_dir.is_dir():
        raise BackupError(f"redis data dir {data_dir} not found")
    target = data_dir / dbfilename
    copy_file_durably(folder / part.file, target)
    return target
