"""``EdgeRoute``: the API key is checked before the body is read, and bodies parse strictly.

FastAPI reads and parses a request's body before it solves the route's
dependencies, so the API-key dependency ran only after an anonymous client's
body had been received and parsed. Every ``/api/v1`` router uses this route
class instead, so the rule holds for every endpoint, present and future.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Coroutine
from decimal import Decimal
from typing import Any, NoReturn

from fastapi import HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope

from trader_api.api.auth import API_KEY_HEADER
from trader_api.api.deps import ACCESS_CHECKS

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class EdgeRequest(Request):
    """A request whose body is at most ``max_body_bytes`` and whose JSON is strict.

    The body is counted as it arrives (a chunked body declares no length):
    one byte over the limit is a 413, and nothing more is read.

    JSON is RFC 8259 JSON of valid Unicode, numbers kept exact. Refused as a
    JSON decode error (422 ``json_invalid``, with the reason): ``NaN`` and
    ``Infinity`` (Python's parser takes them, JSON has no such literals),
    strings with a lone UTF-16 surrogate (``"\\ud800"``: no UTF-8 encoding
    exists, so it could be neither stored nor answered), a body that is not
    UTF-8, and nesting deeper than the parser's stack. Numbers with a
    fraction or exponent become ``Decimal``, not ``float``: ``1e400`` stays
    finite (and too large for any field) and ``0.1`` stays exactly ``0.1``.
    """

    def __init__(self, scope: Scope, receive: Receive, *, max_body_bytes: int) -> None:
        super().__init__(scope, receive)
        self.max_body_bytes = max_body_bytes

    async def stream(self) -> AsyncGenerator[bytes, None]:
        received = 0
        async for chunk in super().stream():
            received += len(chunk)
            if received > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            yield chunk

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = _strict_loads(body)
        return self._json


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"Content Too Large: a request body has {limit} bytes at most",
        # The rest of the body is not wanted: closing spares reading it to reuse the connection.
        headers={"Connection": "close"},
    )


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _strict_loads(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("the body is not UTF-8", "", 0) from exc
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=Decimal)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # the refused constants; too many digits in an integer
        raise json.JSONDecodeError(str(exc), text, 0) from None
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text, 0) from None
    if _has_lone_surrogate(value):
        raise json.JSONDecodeError("a string holds a lone UTF-16 surrogate", text, 0)
    return value


def _has_lone_surrogate(value: Any) -> bool:
    """Walk ``value`` (iteratively: depth is the client's choice) for an unencodable string."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _check_declared_size(request: Request, *, limit: int) -> None:
    """Refuse a body whose ``Content-Length`` is over ``limit``, before a byte of it is read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)


class EdgeRoute(APIRoute):
    """Refuse an oversize body and check the API key before the body is received; parse it strictly.

    NB: the access dependency (``WriteAccess``/``ReadAccess``) still runs
    after, as declared: it documents ``X-API-Key`` in the OpenAPI schema and
    costs one more constant-time compare.
    """

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        checks = [
            ACCESS_CHECKS[depends.dependency]
            for depends in self.dependencies
            if depends.dependency in ACCESS_CHECKS
        ]

        async def edge_handler(request: Request) -> Response:
            settings = request.app.state.runtime.settings
            _check_declared_size(request, limit=settings.max_request_body_bytes)
            presented = request.headers.get(API_KEY_HEADER)
            for check in checks:
                check(settings, presented)
            limit = settings.max_request_body_bytes
            return await handler(EdgeRequest(request.scope, request.receive, max_body_bytes=limit))

        return edge_handler
