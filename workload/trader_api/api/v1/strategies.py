"""Strategies: list them; enable or disable one at runtime (on every replica)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from trader_api.api.deps import ReadAccess, RuntimeDep, WriteAccess
from trader_api.api.routing import EdgeRoute
from trader_api.api.schemas import ErrorOut, StrategyOut

router = APIRouter(prefix="/api/v1", tags=["strategies"], route_class=EdgeRoute)

StrategyName = Annotated[str, Path(min_length=1, max_length=63)]


@router.get("/strategies", dependencies=[ReadAccess])
async def list_strategies(runtime: RuntimeDep) -> list[StrategyOut]:
    return [StrategyOut.of(config) for config in runtime.strategies.list()]


@router.post(
    "/strategies/{name}/enable",
    dependencies=[WriteAccess],
    responses={404: {"model": ErrorOut}},
)
async def enable_strategy(name: StrategyName, runtime: RuntimeDep) -> StrategyOut:
    return StrategyOut.of(await runtime.set_strategy_enabled(name, enabled=True))


@router.post(
    "/strategies/{name}/disable",
    dependencies=[WriteAccess],
    responses={404: {"model": ErrorOut}},
)
async def disable_strategy(name: StrategyName, runtime: RuntimeDep) -> StrategyOut:
    return StrategyOut.of(await runtime.set_strategy_enabled(name, enabled=False))
