"""Service errors -> HTTP answers: a precise 4xx for the client's mistakes, 503 for outages."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from trader_api.api.schemas import OrderOut, RejectionOut, UnprocessableOut, ValidationIssue
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

MAX_ECHO_CHARS: Final = 120
"""The most of one location part or message a 422 repeats (a JSON key is the client's input)."""


def _detail(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message})


def _printable(value: object) -> str:
    """Return ``value`` as text any JSON encoder takes: no lone surrogate, at most a line long."""
    text = str(value)
    if len(text) > MAX_ECHO_CHARS:
        text = text[:MAX_ECHO_CHARS] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _issue(error: Mapping[str, Any]) -> ValidationIssue:
    message = str(error.get("msg", "invalid"))
    context = error.get("ctx")
    if error.get("type") == "json_invalid" and isinstance(context, Mapping) and "error" in context:
        message = f"{message}: {context['error']}"
    return ValidationIssue(
        loc=[part if isinstance(part, int) else _printable(part) for part in error.get("loc", ())],
        msg=_printable(message),
        type=_printable(error.get("type", "value_error")),
    )


def _validation_answer(exc: RequestValidationError) -> JSONResponse:
    """Answer 422 with where and why, never with what: the rejected input is not echoed.

    NB: FastAPI's default handler copies each rejected value (``input``) and
    the validator's context into the answer: a NaN, an overflowing number or
    a lone surrogate then fails to encode (a 500 for a client's mistake), and
    a 5 MiB field comes back as a 5 MiB error. The client has its input.
    """
    body = UnprocessableOut(detail=[_issue(error) for error in exc.errors()])
    return JSONResponse(status_code=422, content=body.model_dump(mode="json", exclude_none=True))


def install_error_handlers(app: FastAPI) -> None:
    """Map the service layer's errors to status codes (docs/api.md lists them)."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_answer(exc)

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
