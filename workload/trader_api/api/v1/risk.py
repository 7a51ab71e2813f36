"""Risk: limits and state; the kill switch that halts new orders on every replica."""

from __future__ import annotations

from fastapi import APIRouter

from trader_api.api.deps import ReadAccess, RuntimeDep, WriteAccess
from trader_api.api.routing import EdgeRoute
from trader_api.api.schemas import KillSwitchOut, KillSwitchRequest, RiskLimitsOut, RiskOut

router = APIRouter(prefix="/api/v1", tags=["risk"], route_class=EdgeRoute)


@router.get("/risk", dependencies=[ReadAccess])
async def risk_state(runtime: RuntimeDep) -> RiskOut:
    """Return limits, kill switch, daily-loss halt, open orders, PnL today and the leader."""
    portfolio = await runtime.orders.portfolio()
    halt = runtime.risk.halt_state
    return RiskOut(
        limits=RiskLimitsOut.of(runtime.risk.limits),
        kill_switch=KillSwitchOut.of(halt),
        daily_loss_halt=halt is not None and halt.automatic,
        open_orders=portfolio.open_orders,
        realized_pnl_today=portfolio.realized_pnl_today,
        marks=dict(portfolio.marks),
        leader=await runtime.leader(),
        pod=runtime.settings.pod_name,
    )


@router.post("/risk/kill-switch", dependencies=[WriteAccess])
async def kill_switch(body: KillSwitchRequest, runtime: RuntimeDep) -> KillSwitchOut:
    """Engage or release the kill switch; engaged, every new order is rejected."""
    return KillSwitchOut.of(await runtime.set_kill_switch(engaged=body.engaged, reason=body.reason))
