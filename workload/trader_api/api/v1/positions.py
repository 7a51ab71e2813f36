"""Positions, valued at the latest market price this replica has seen."""

from __future__ import annotations

from fastapi import APIRouter

from trader_api.api.deps import ReadAccess, RuntimeDep
from trader_api.api.routing import EdgeRoute
from trader_api.api.schemas import PositionOut

router = APIRouter(prefix="/api/v1", tags=["positions"], route_class=EdgeRoute)


@router.get("/positions", dependencies=[ReadAccess])
async def list_positions(runtime: RuntimeDep) -> list[PositionOut]:
    positions = await runtime.store.list_positions()
    return [PositionOut.of(p, mark=runtime.marks.get(p.symbol)) for p in positions]
