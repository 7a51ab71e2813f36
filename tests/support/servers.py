"""Real, throwaway PostgreSQL and Redis servers for tests and benchmarks.

The integration tier never mocks a database: it starts the Debian-packaged
``postgres`` and ``redis-server`` binaries on loopback, on free ports, in a
temporary folder, with generated passwords, and kills them when done.

NB: we run as root, and PostgreSQL refuses to run as root, so ``initdb`` and
``postgres`` run as the unprivileged ``postgres`` user (setuid in the child
before exec). Every server is its own process group and gets
``PR_SET_PDEATHSIG`` so it dies with the test process even on a crash.

NB: the kernel sends that signal when the *thread* that started the server
ends, so call ``start()`` from the main thread (an async test is fine; a
worker thread of ``asyncio.to_thread`` is not: the server would die with it).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import ctypes.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

_PR_SET_PDEATHSIG = 1
_READY_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 15.0
_POLL_INTERVAL_S = 0.02
_LOCALHOST = "127.0.0.1"


class ServerError(RuntimeError):
    """A test server failed to start or stop; the message carries its log tail."""


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def find_postgres_bin() -> Path:
    """Return the newest ``/usr/lib/postgresql/<ver>/bin`` that has ``initdb`` and ``postgres``."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for candidate in reversed(candidates):
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    raise ServerError("PostgreSQL server binaries not found: run `make system-deps`")


def _child_setup(*, user: pwd.struct_passwd | None, death_signal: int) -> Callable[[], None]:
    """Build a ``preexec_fn`` that drops privileges, then arms the parent-death signal.

    NB: the kernel clears PDEATHSIG on a credential change, so it is armed
    after ``setuid``, never before.
    """
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def setup() -> None:
        if user is not None and os.getuid() == 0:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)

    return setup


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _wait_for(
    condition: Callable[[], bool],
    *,
    what: str,
    timeout_s: float,
    alive: Callable[[], bool],
    log: Path,
) -> None:
    """Poll ``condition`` until true; fail early if the process died, late at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if not alive():
            raise ServerError(f"{what} exited during startup:\n{_log_tail(log)}")
        time.sleep(_POLL_INTERVAL_S)
    raise ServerError(f"{what} not ready after {timeout_s:.0f}s:\n{_log_tail(log)}")


_RUNNING: set[_Server] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.kill()


@dataclass(eq=False)
class _Server:
    """Process bookkeeping shared by both servers: start, stop, kill by process group."""

    root: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _spawn(self, argv: list[str], *, user: pwd.struct_passwd | None, death_signal: int) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # The privilege drop and PDEATHSIG must happen in the child; no locks taken.
                preexec_fn=_child_setup(user=user, death_signal=death_signal),  # noqa: PLW1509
            )
        finally:
            log.close()
        _RUNNING.add(self)

    def _signal_group(self, sig: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def _stop_with(self, sig: int) -> None:
        if self.process is None:
            return
        self._signal_group(sig)
        try:
            self.process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=_STOP_TIMEOUT_S)
        # Reap stragglers of the group (forked children outliving the leader).
        self._signal_group(signal.SIGKILL)
        self.process = None
        _RUNNING.discard(self)

    def kill(self) -> None:
        """Kill the whole process group at once: the crash path, no clean shutdown."""
        self._stop_with(signal.SIGKILL)


@dataclass(eq=False)
class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster owned by the ``postgres`` OS user.

    ``durable=False`` turns ``fsync`` off for speed in tests; benchmarks that
    measure durable commits pass ``durable=True``.
    """

    durable: bool = False
    bin_dir: Path = field(default_factory=find_postgres_bin)
    user: str = "postgres"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str = "postgres") -> str:
        """Return a ``postgresql://`` URL on loopback TCP with the generated password."""
        return (
            f"postgresql://{self.user}:{quote(self.password, safe='')}"
            f"@{_LOCALHOST}:{self.port}/{database}"
        )

    def env(self) -> dict[str, str]:
        """Return libpq variables for ``psql``/``pg_dump``/``pg_restore`` against this server."""
        return {
            **os.environ,
            "PGHOST": _LOCALHOST,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
        }

    def _os_user(self) -> pwd.struct_passwd | None:
        return pwd.getpwnam(self.user) if os.getuid() == 0 else None

    def init(self) -> None:
        """Create the cluster with scram auth everywhere (``initdb``); idempotent."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        os_user = self._os_user()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if os_user is not None:
            for path in (self.root, self.socket_dir, pwfile):
                os.chown(path, os_user.pw_uid, os_user.pw_gid)
        result = subprocess.run(
            [
                str(self.bin_dir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                self.user,
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            preexec_fn=_child_setup(user=os_user, death_signal=signal.SIGKILL),
            check=False,
        )
        pwfile.unlink()
        if result.returncode != 0:
            raise ServerError(f"initdb failed: {result.stderr.decode(errors='replace')}")

    def start(self) -> None:
        """Start (or restart, same port and data) the server and wait until it accepts logins."""
        if self.running:
            return
        self.init()
        settings = {
            "listen_addresses": _LOCALHOST,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            "max_connections": "200",
            "shared_buffers": "128MB",
            "log_min_messages": "warning",
        }
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        # SIGQUIT on parent death: immediate shutdown that also ends the backends.
        self._spawn(argv, user=self._os_user(), death_signal=signal.SIGQUIT)
        _wait_for(
            self._accepts_logins,
            what="postgres",
            timeout_s=_READY_TIMEOUT_S,
            alive=lambda: self.running,
            log=self.log_path,
        )

    def _accepts_logins(self) -> bool:
        result = subprocess.run(
            [str(self.bin_dir / "pg_isready"), "-q", "-h", _LOCALHOST, "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def stop(self) -> None:
        """Stop the server the way an SRE would (fast shutdown: SIGINT), keeping its data."""
        self._stop_with(signal.SIGINT)

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run ``sql`` with ``psql`` (errors abort); return its unaligned, tuples-only output."""
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-A",
                "-t",
                "-d",
                database,
                "-c",
                sql,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=self.env(),
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(f"psql failed: {result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name unless given); return its name."""
        name = name or f"test_{secrets.token_hex(6)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whoever still uses it."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(eq=False)
class RedisServer(_Server):
    """A throwaway Redis with ``requirepass``; no persistence unless ``save`` is given."""

    save: str = ""
    appendonly: bool = False  # as the operator runs it with persistence on

    @property
    def data_dir(self) -> Path:
        """Where ``dump.rdb`` lands on ``BGSAVE`` (the backup program reads it from here)."""
        return self.root / "data"

    def url(self, db: int = 0) -> str:
        return f"redis://:{quote(self.password, safe='')}@{_LOCALHOST}:{self.port}/{db}"

    def start(self) -> None:
        """Start (or restart, same port and data dir) and wait until it answers PING."""
        if self.running:
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server not found: run `make system-deps`")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            _LOCALHOST,
            "--requirepass",
            self.password,
            "--dir",
            str(self.data_dir),
            "--save",
            self.save,
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        self._spawn(argv, user=None, death_signal=signal.SIGKILL)
        _wait_for(
            self.ping,
            what="redis-server",
            timeout_s=_READY_TIMEOUT_S,
            alive=lambda: self.running,
            log=self.log_path,
        )

    def command(self, *args: str) -> bytes:
        """Send one command over a raw RESP connection (AUTH first); return the raw reply.

        NB: a raw socket keeps this module free of a client library, so the
        fixtures work before (and independently of) the code under test.
        """
        parts = [b"AUTH", self.password.encode()]
        payload = _resp(parts) + _resp([a.encode() for a in args])
        with socket.create_connection((_LOCALHOST, self.port), timeout=5) as sock:
            sock.sendall(payload)
            reply = b""
            while reply.count(b"\r\n") < 2:  # AUTH reply + first line of ours
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        auth_reply, _, rest = reply.partition(b"\r\n")
        if auth_reply != b"+OK":
            raise ServerError(f"redis AUTH failed: {auth_reply!r}")
        return rest

    def ping(self) -> bool:
        try:
            return self.command("PING").startswith(b"+PONG")
        except (OSError, ServerError):
            return False

    def flushall(self) -> None:
        reply = self.command("FLUSHALL")
        if not reply.startswith(b"+OK"):
            raise ServerError(f"redis FLUSHALL failed: {reply!r}")

    def stop(self) -> None:
        """Stop Redis (SIGTERM: a clean shutdown), keeping its data dir."""
        self._stop_with(signal.SIGTERM)


def _resp(parts: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


@contextlib.contextmanager
def server_root(prefix: str) -> Iterator[Path]:
    """Yield a temp folder the ``postgres`` user can use; remove it afterwards."""
    root = Path(tempfile.mkdtemp(prefix=f"traderbot-{prefix}-"))
    root.chmod(0o711)  # traversable by the postgres user; listing stays private
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Run a PostgreSQL server for the duration of the block."""
    with server_root("pg") as root:
        server = PostgresServer(root=root, durable=durable)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@contextlib.contextmanager
def running_redis(*, save: str = "", appendonly: bool = False) -> Iterator[RedisServer]:
    """Run a Redis server for the duration of the block."""
    with server_root("redis") as root:
        server = RedisServer(root=root, save=save, appendonly=appendonly)
        try:
            server.start()
            yield server
        finally:
            server.stop()


class SeverableProxy:
    """A loopback TCP proxy to a server whose open connections a test can cut at once.

    What a dropped network path or a restarted load balancer does to a client:
    every connection through it dies mid-stream, while new ones get through.
    """

    def __init__(self, *, target_port: int, target_host: str = _LOCALHOST) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> int:
        """Listen on a free loopback port; return it (also kept as ``port``)."""
        self._server = await asyncio.start_server(self._accept, _LOCALHOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def sever(self) -> int:
        """Abort every open connection (a reset, no FIN); return how many."""
        severed = len(self._writers)
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        return severed

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.sever()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.transport.abort()
            self._writers.discard(sink)
