"""Orders: submit (idempotent by ``client_order_id``), list, get, cancel; and fills."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from trader_api.api.deps import ReadAccess, RuntimeDep, WriteAccess
from trader_api.api.routing import EdgeRoute
from trader_api.api.schemas import (
    ErrorOut,
    FillOut,
    OrderOut,
    SubmitOrderRequest,
    UnprocessableOut,
)
from trader_api.domain import OrderStatus
from trader_api.services.orders import OrderTicket

router = APIRouter(prefix="/api/v1", tags=["orders"], route_class=EdgeRoute)

_WRITE_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "no or no configured API key"},
    403: {"model": ErrorOut, "description": "wrong API key"},
    429: {"model": ErrorOut, "description": "rate limited; see Retry-After"},
}
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    dependencies=[WriteAccess],
    responses={
        200: {"model": OrderOut, "description": "resubmission: the order stored earlier"},
        409: {"model": ErrorOut, "description": "client_order_id used for a different order"},
        422: {
            "model": UnprocessableOut,
            "description": "invalid request, or rejected by risk (then stored, with code)",
        },
        **_WRITE_ERRORS,
    },
)
async def submit_order(
    body: SubmitOrderRequest, runtime: RuntimeDep, response: Response
) -> OrderOut:
    """Commit an order, then acknowledge it; the leader executes it."""
    order, created = await runtime.orders.submit(
        OrderTicket(
            client_order_id=body.client_order_id,
            symbol=body.symbol,
            side=body.side,
            type=body.type,
            quantity=body.quantity,
            limit_price=body.limit_price,
        )
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return OrderOut.of(order)


@router.get("/orders", dependencies=[ReadAccess])
async def list_orders(
    runtime: RuntimeDep,
    symbol: Annotated[str | None, Query(pattern=r"^[A-Z0-9]{2,30}$")] = None,
    status: OrderStatus | None = None,
    limit: Limit = 100,
) -> list[OrderOut]:
    """List orders, newest first."""
    orders = await runtime.orders.list(symbol=symbol, status=status, limit=limit)
    return [OrderOut.of(order) for order in orders]


@router.get(
    "/orders/{order_id}",
    dependencies=[ReadAccess],
    responses={404: {"model": ErrorOut}},
)
async def get_order(order_id: UUID, runtime: RuntimeDep) -> OrderOut:
    return OrderOut.of(await runtime.orders.get(order_id))


_CANCEL_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorOut},
    409: {"model": ErrorOut, "description": "already filled, cancelled or rejected"},
    503: {"model": ErrorOut, "description": "no leader confirmed the cancel in time"},
    **_WRITE_ERRORS,
}


@router.post("/orders/{order_id}/cancel", dependencies=[WriteAccess], responses=_CANCEL_RESPONSES)
async def cancel_order(order_id: UUID, runtime: RuntimeDep) -> OrderOut:
    """Cancel an order that can still fill; answer with it cancelled."""
    return OrderOut.of(await runtime.orders.cancel(order_id))


@router.delete("/orders/{order_id}", dependencies=[WriteAccess], responses=_CANCEL_RESPONSES)
async def delete_order(order_id: UUID, runtime: RuntimeDep) -> OrderOut:
    """Same as ``POST /orders/{order_id}/cancel``."""
    return OrderOut.of(await runtime.orders.cancel(order_id))


@router.get("/fills", dependencies=[ReadAccess], tags=["fills"])
async def list_fills(
    runtime: RuntimeDep,
    order_id: UUID | None = None,
    symbol: Annotated[str | None, Query(pattern=r"^[A-Z0-9]{2,30}$")] = None,
    limit: Limit = 100,
) -> list[FillOut]:
    """List fills, newest first."""
    fills = await runtime.store.list_fills(order_id=order_id, symbol=symbol, limit=limit)
    return [FillOut.of(fill) for fill in fills]
