"""Service errors -> HTTP answers: a precise 4xx for the client's mistakes, 503 for outages."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from trader_api.api.schemas import OrderOut, RejectionOut
from trader_api.services.orders import (
    CancelTimeoutError,
    OrderConflictError,
    OrderNotFoundError,
    OrderRejectedError,
    UnknownSymbolError,
)
from trader_api.storage import StorageUnavailableError
from trader_api.strategy import UnknownStrategyError

logger = logging.getLogger(__name__)


def _detail(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message})


def install_error_handlers(app: FastAPI) -> None:
    """Map the service layer's errors to status codes (docs/api.md lists them)."""

    @app.exception_handler(OrderRejectedError)
    async def rejected(_: Request, exc: OrderRejectedError) -> JSONResponse:
        body = RejectionOut(detail=exc.message, code=exc.code, order=OrderOut.of(exc.order))
        return JSONResponse(status_code=422, content=body.model_dump(mode="json"))

    @app.exception_handler(UnknownSymbolError)
    async def unknown_symbol(_: Request, exc: UnknownSymbolError) -> JSONResponse:
        return _detail(422, str(exc))

    @app.exception_handler(OrderNotFoundError)
    async def not_found(_: Request, exc: OrderNotFoundError) -> JSONResponse:
        return _detail(404, str(exc))

    @app.exception_handler(UnknownStrategyError)
    async def unknown_strategy(_: Request, exc: UnknownStrategyError) -> JSONResponse:
        return _detail(404, str(exc.args[0]) if exc.args else "unknown strategy")

    @app.exception_handler(OrderConflictError)
    async def conflict(_: Request, exc: OrderConflictError) -> JSONResponse:
        return _detail(409, str(exc))

    @app.exception_handler(CancelTimeoutError)
    async def cancel_timeout(_: Request, exc: CancelTimeoutError) -> JSONResponse:
        response = _detail(503, str(exc))
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(StorageUnavailableError)
    async def unavailable(_: Request, exc: StorageUnavailableError) -> JSONResponse:
        logger.warning("Request failed on an unavailable dependency: %s", exc)
        response = _detail(503, f"temporarily unavailable: {exc}")
        response.headers["Retry-After"] = "1"
        return response
