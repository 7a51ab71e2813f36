"""Klines (OHLCV candles) by symbol, interval and time range."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from trader_api.api.deps import ReadAccess, RuntimeDep
from trader_api.api.routing import EdgeRoute
from trader_api.api.schemas import EdgeDatetime, KlineOut
from trader_api.domain import Interval

router = APIRouter(prefix="/api/v1", tags=["klines"], route_class=EdgeRoute)


@router.get("/klines", dependencies=[ReadAccess])
async def query_klines(
    *,
    runtime: RuntimeDep,
    symbol: Annotated[str, Query(pattern=r"^[A-Z0-9]{2,30}$")],
    interval: Interval = Interval.M1,
    start: EdgeDatetime | None = None,
    end: EdgeDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[KlineOut]:
    """Klines with ``start <= open_time < end``, oldest first; the newest ``limit`` if more."""
    if start is not None and end is not None and start >= end:
        raise _invalid("end", "start must be before end")
    klines = await runtime.store.query_klines(
        symbol=symbol, interval=interval, start=start, end=end, limit=limit
    )
    return [KlineOut.of(kline) for kline in klines]


def _invalid(parameter: str, message: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own, so clients parse every 422 the same way."""
    return RequestValidationError(
        [{"loc": ("query", parameter), "msg": message, "type": "value_error"}]
    )
