"""``create_app()``: the FastAPI application around a ``Runtime``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from trader_api import __version__
from trader_api.api import health, v1, ws
from trader_api.api.errors import install_error_handlers
from trader_api.api.lifecycle import Lifecycle
from trader_api.api.middleware import ServiceMiddleware
from trader_api.services.runtime import Runtime


def create_app(runtime: Runtime, *, lifecycle: Lifecycle | None = None) -> FastAPI:
    """Build the app; its lifespan starts ``runtime`` and, after draining, stops it.

    NB: the app owns no global state: metrics live on ``runtime.metrics.registry``
    and everything else on ``app.state``, so tests can run several apps (two
    replicas) in one process.
    """
    lifecycle = lifecycle if lifecycle is not None else Lifecycle()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await lifecycle.drain(grace_seconds=runtime.settings.shutdown_grace_seconds)
            await runtime.stop()

    app = FastAPI(
        title="trader-api",
        version=__version__,
        summary="Trading engine: market data, strategies, risk, paper execution",
        lifespan=lifespan,
        # NB: metrics are Prometheus (/metrics); FastAPI's OpenTelemetry bridge
        # would only cost a provider lookup on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    app.state.lifecycle = lifecycle
    install_error_handlers(app)
    routers = (health.router, *v1.routers, ws.router)
    for router in routers:
        app.include_router(router)
    app.add_middleware(
        ServiceMiddleware,
        lifecycle=lifecycle,
        metrics=runtime.metrics,
        rate_limit=runtime.rate_limit,
        routes=[route for router in routers for route in router.routes],
    )
    return app
