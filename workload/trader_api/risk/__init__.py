"""Risk manager: pure checks of an order against limits and the portfolio.

Public API (stable names, used by ``services`` and the REST API):

- ``RiskLimits(max_order_notional, max_position_notional, max_open_orders,
  daily_loss_limit)``: positive limits in quote currency and counts.
- ``PortfolioSnapshot(positions, open_orders, marks, realized_pnl_today)``:
  the portfolio as a value.
- ``OrderRequest(symbol, side, quantity, limit_price=None)``; any object with
  those four attributes (``OrderIntent``, e.g. ``domain.Order``) can be checked.
- ``RiskManager(limits).check(order, portfolio) -> Approved | Rejected``;
  ``Rejected.code`` is a ``RejectCode``; ``halt(reason)`` / ``resume()`` /
  ``halt_state`` are the kill switch; a daily-loss breach halts automatically.
"""

from trader_api.risk.limits import (
    Approved,
    HaltState,
    OrderIntent,
    OrderRequest,
    PortfolioSnapshot,
    RejectCode,
    Rejected,
    RiskDecision,
    RiskLimits,
)
from trader_api.risk.manager import RiskManager, utc_day

__all__ = [
    "Approved",
    "HaltState",
    "OrderIntent",
    "OrderRequest",
    "PortfolioSnapshot",
    "RejectCode",
    "Rejected",
    "RiskDecision",
    "RiskLimits",
    "RiskManager",
    "utc_day",
]
