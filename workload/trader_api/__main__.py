"""``trader-api``: run the engine and its API under uvicorn, with the seed's graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator

import uvicorn
from pydantic import ValidationError

from trader_api import __version__
from trader_api.api.app import create_app
from trader_api.api.http_limits import bounded_httptools
from trader_api.api.lifecycle import Lifecycle
from trader_api.api.middleware import LivenessFastPath
from trader_api.config import Settings, environment_secrets
from trader_api.logging import configure_logging
from trader_api.services.runtime import Runtime
from trader_api.storage import StorageError

logger = logging.getLogger("trader_api")

EXIT_CONFIG = 2
EXIT_DEPENDENCY = 3

GC_YOUNG_THRESHOLD = 7000
"""Allocations between young-generation collections (CPython's default is 700)."""


def settle_the_heap() -> None:
    """Take what start-up built out of the cyclic collector's view, and collect less often.

    The import-time heap (FastAPI routes, pydantic schemas, asyncpg codecs)
    lives as long as the process, yet every full collection walked it again:
    about a tenth of the CPU per order was in ``gc_collect_main`` (py-spy,
    native). Frozen objects are never scanned; garbage cycles made while
    serving are still collected, only in fewer, larger young passes.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class GracefulServer(uvicorn.Server):
    """A uvicorn server whose SIGTERM runs our drain first, then uvicorn's own shutdown.

    NB: uvicorn's default handler closes the listener at once and re-raises
    the signal after shutdown (so the exit status is 143, not 0). We want the
    seed's order: 503 to new requests, in-flight ones finish, WebSockets get
    1001, and only then stop listening and release resources; exit 0.
    """

    def __init__(self, config: uvicorn.Config, *, lifecycle: Lifecycle, grace_seconds: float):
        super().__init__(config)
        self.lifecycle = lifecycle
        self.grace_seconds = grace_seconds
        self._drain_task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._drain_task is not None:
            if sig == signal.SIGINT:
                logger.warning("Second interrupt: exiting without waiting")
                self.force_exit = True
                self.should_exit = True
            return
        logger.info("Received %s: draining", sig.name)
        self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            await self.lifecycle.drain(grace_seconds=self.grace_seconds)
        finally:
            self.should_exit = True


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return uvloop's loop factory when installed (uvicorn[standard] brings it), else None.

    NB: uvicorn picks uvloop itself only in ``Server.run``; we run ``serve``
    in our own loop, so we must pick it, or lose a good part of the throughput.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the workload image always has it
        return None
    return uvloop.new_event_loop


def main() -> None:
    """Read the settings, set up logging, and serve until SIGTERM."""
    try:
        settings = Settings()
    except ValidationError as exc:
        configure_logging("info", secrets=environment_secrets(os.environ))
        logger.error("Invalid configuration: %s", exc)  # noqa: TRY400 - the message is the point
        sys.exit(EXIT_CONFIG)
    configure_logging(settings.log_level, secrets=settings.secrets)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(settings))
    except StorageError as exc:
        logger.error("Cannot start: %s", exc)  # noqa: TRY400 - the message is the point
        sys.exit(EXIT_DEPENDENCY)


async def serve(settings: Settings) -> None:
    """Build the runtime and the app, and serve them on ``PORT`` until told to stop."""
    logger.info(
        "trader-api %s starting on port %d",
        __version__,
        settings.port,
        extra={"pod": settings.pod_name},
    )
    runtime = await Runtime.from_settings(settings)
    lifecycle = Lifecycle()
    app = create_app(runtime, lifecycle=lifecycle)
    config = uvicorn.Config(
        LivenessFastPath(app, metrics=runtime.metrics),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=settings.access_log,
        lifespan="on",
        # NB: the drain already waited for in-flight requests; this bounds what is left.
        timeout_graceful_shutdown=5,
        server_header=False,
        http=bounded_httptools(
            max_headers=settings.max_request_headers,
            max_head_bytes=settings.max_request_head_bytes,
        ),
    )
    server = GracefulServer(
        config, lifecycle=lifecycle, grace_seconds=settings.shutdown_grace_seconds
    )
    settle_the_heap()
    await server.serve()
    logger.info("trader-api exited cleanly")


if __name__ == "__main__":
    main()
