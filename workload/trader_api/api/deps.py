"""Typed dependencies shared by the routers (``RuntimeDep``, ``WriteAccess``, ...).

NB: all ``async def``: FastAPI runs a plain ``def`` dependency in a worker
thread, a thread hop per dependency per request for what is a dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final

from fastapi import Depends, Header, Request

from trader_api.api.auth import API_KEY_HEADER, check_api_key, check_read_key
from trader_api.api.lifecycle import Lifecycle
from trader_api.config import Settings
from trader_api.services.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_lifecycle(request: Request) -> Lifecycle:
    lifecycle: Lifecycle = request.app.state.lifecycle
    return lifecycle


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]


def check_write_access(settings: Settings, presented: str | None) -> None:
    """Let a mutation through only with the configured API key (never the read-only one)."""
    check_api_key(configured=settings.api_key, presented=presented, read_only=settings.read_api_key)


def check_read_access(settings: Settings, presented: str | None) -> None:
    """Let a read through; with ``READS_REQUIRE_API_KEY`` only with either key."""
    if settings.reads_require_api_key:
        check_read_key(
            configured=settings.api_key, read_only=settings.read_api_key, presented=presented
        )


async def require_write_access(
    runtime: RuntimeDep,
    x_api_key: Annotated[str | None, Header(alias=API_KEY_HEADER)] = None,
) -> None:
    check_write_access(runtime.settings, x_api_key)


async def require_read_access(
    runtime: RuntimeDep,
    x_api_key: Annotated[str | None, Header(alias=API_KEY_HEADER)] = None,
) -> None:
    check_read_access(runtime.settings, x_api_key)


ACCESS_CHECKS: Final[dict[Callable[..., Any], Callable[[Settings, str | None], None]]] = {
    require_write_access: check_write_access,
    require_read_access: check_read_access,
}
"""The header-only check behind each access dependency: ``EdgeRoute`` runs it before the body."""


WriteAccess = Depends(require_write_access)
ReadAccess = Depends(require_read_access)
