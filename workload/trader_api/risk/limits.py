"""Risk limits, the portfolio a check sees, and the decisions it returns."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from trader_api.domain import Position, Side


class RejectCode(enum.StrEnum):
    """Why the risk manager refused an order; stable strings for metrics and the API."""

    KILL_SWITCH = "kill_switch"
    INVALID_QUANTITY = "invalid_quantity"
    INVALID_PRICE = "invalid_price"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    NO_PRICE = "no_price"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_OPEN_ORDERS = "max_open_orders"
    MAX_POSITION = "max_position"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Limits in quote currency (notional) and counts.

    ``daily_loss_limit`` is a positive amount: trading halts once the realized
    PnL of the current UTC day is at or below its negative.
    """

    max_order_notional: Decimal
    max_position_notional: Decimal
    max_open_orders: int
    daily_loss_limit: Decimal

    def __post_init__(self) -> None:
        for name in ("max_order_notional", "max_position_notional", "daily_loss_limit"):
            value = getattr(self, name)
            if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
                raise ValueError(f"risk limit {name} must be a positive finite Decimal: {value!r}")
        if self.max_open_orders < 1:
            raise ValueError(f"risk limit max_open_orders must be >= 1: {self.max_open_orders}")


class OrderIntent(Protocol):
    """What a risk check reads from an order: ``domain.Order`` satisfies it as it is."""

    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def quantity(self) -> Decimal: ...
    @property
    def limit_price(self) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order the engine or a user wants to place, before it exists.

    ``limit_price`` is ``None`` for market orders.
    """

    symbol: str
    side: Side
    quantity: Decimal
    limit_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """The portfolio as a value, so a check is a pure function of its inputs.

    ``marks`` are the latest prices per symbol; ``open_orders`` counts orders
    that can still fill; ``realized_pnl_today`` is net of fees, for the
    current UTC day (the caller resets it at midnight UTC).
    """

    positions: Mapping[str, Position] = field(default_factory=dict)
    open_orders: int = 0
    marks: Mapping[str, Decimal] = field(default_factory=dict)
    realized_pnl_today: Decimal = Decimal(0)

    def position_quantity(self, symbol: str) -> Decimal:
        position = self.positions.get(symbol)
        return position.quantity if position is not None else Decimal(0)


@dataclass(frozen=True, slots=True)
class Approved:
    """The order may go to the broker; ``notional`` is the value it was checked at."""

    notional: Decimal

    @property
    def approved(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Rejected:
    """The order must not go to the broker; ``message`` is written for a person."""

    code: RejectCode
    message: str

    @property
    def approved(self) -> bool:
        return False


RiskDecision = Approved | Rejected


@dataclass(frozen=True, slots=True)
class HaltState:
    """Why and since when new orders are refused (NautilusTrader's HALTED)."""

    reason: str
    since: datetime
    automatic: bool
