"""The risk manager: every new order passes ``check`` before it reaches a broker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from trader_api.risk.limits import (
    Approved,
    HaltState,
    OrderIntent,
    PortfolioSnapshot,
    RejectCode,
    Rejected,
    RiskDecision,
    RiskLimits,
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RiskManager:
    """Check orders against limits; hold the kill switch.

    The checks run in a fixed order, and the first that fails decides the
    reason code: kill switch, quantity, price, daily loss, missing price,
    order notional, open orders, position notional. A breach of the daily
    loss limit also halts trading, and the halt stays until ``resume()``: a
    new UTC day does not lift it by itself, a person does.

    NB: no I/O and no locking; ``check`` and ``halt`` are plain method calls
    that the single engine loop makes, so a check never races a halt.
    """

    def __init__(
        self,
        limits: RiskLimits,
        *,
        clock: Callable[[], datetime] = _utc_now,
        on_halt: Callable[[HaltState | None], None] | None = None,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._on_halt = on_halt
        self._halt: HaltState | None = None

    @property
    def limits(self) -> RiskLimits:
        return self._limits

    @limits.setter
    def limits(self, limits: RiskLimits) -> None:
        self._limits = limits

    @property
    def halt_state(self) -> HaltState | None:
        """The current halt, or ``None`` while trading is allowed."""
        return self._halt

    @property
    def halted(self) -> bool:
        return self._halt is not None

    def halt(self, reason: str, *, automatic: bool = False) -> HaltState:
        """Engage the kill switch: every new order is rejected until ``resume()``.

        Halting an already halted manager keeps the first reason: the cause
        an SRE needs is the one that stopped trading.
        """
        if self._halt is None:
            self._halt = HaltState(reason=reason, since=self._clock(), automatic=automatic)
            if self._on_halt is not None:
                self._on_halt(self._halt)
        return self._halt

    def resume(self) -> None:
        """Release the kill switch."""
        if self._halt is not None:
            self._halt = None
            if self._on_halt is not None:
                self._on_halt(None)

    def check(self, order: OrderIntent, portfolio: PortfolioSnapshot) -> RiskDecision:
        """Decide whether ``order`` may be sent, given ``portfolio``."""
        if self._halt is not None:
            return Rejected(RejectCode.KILL_SWITCH, f"trading is halted: {self._halt.reason}")
        rejection = _check_order_values(order)
        if rejection is not None:
            return rejection
        limits = self._limits
        if portfolio.realized_pnl_today <= -limits.daily_loss_limit:
            message = (
                f"realized loss today {-portfolio.realized_pnl_today} reached the daily loss "
                f"limit {limits.daily_loss_limit}"
            )
            self.halt(message, automatic=True)
            return Rejected(RejectCode.DAILY_LOSS_LIMIT, message)
        mark = portfolio.marks.get(order.symbol)
        price = order.limit_price if order.limit_price is not None else mark
        if price is None:
            return Rejected(
                RejectCode.NO_PRICE,
                f"no market price for {order.symbol} yet to value a market order",
            )
        notional = order.quantity * price
        rejection = _check_exposure(
            order,
            portfolio,
            limits=limits,
            notional=notional,
            valuation=mark if mark is not None else price,
        )
        return rejection if rejection is not None else Approved(notional=notional)


def _check_order_values(order: OrderIntent) -> Rejected | None:
    if not order.quantity.is_finite() or order.quantity <= 0:
        return Rejected(
            RejectCode.INVALID_QUANTITY,
            f"quantity must be a positive number, got {order.quantity}",
        )
    if order.limit_price is not None and (
        not order.limit_price.is_finite() or order.limit_price <= 0
    ):
        return Rejected(
            RejectCode.INVALID_PRICE,
            f"limit price must be a positive number, got {order.limit_price}",
        )
    return None


def _check_exposure(
    order: OrderIntent,
    portfolio: PortfolioSnapshot,
    *,
    limits: RiskLimits,
    notional: Decimal,
    valuation: Decimal,
) -> Rejected | None:
    if notional > limits.max_order_notional:
        return Rejected(
            RejectCode.MAX_ORDER_NOTIONAL,
            f"order notional {notional} exceeds max_order_notional {limits.max_order_notional}",
        )
    if portfolio.open_orders >= limits.max_open_orders:
        return Rejected(
            RejectCode.MAX_OPEN_ORDERS,
            f"{portfolio.open_orders} open orders already, max_open_orders is "
            f"{limits.max_open_orders}",
        )
    current = portfolio.position_quantity(order.symbol)
    projected = current + order.quantity * order.side.sign
    projected_notional = abs(projected) * valuation
    # NB: an order that shrinks the position is allowed even above the limit
    # (prices move): refusing it would trap the book in the breach.
    if projected_notional > limits.max_position_notional and abs(projected) > abs(current):
        return Rejected(
            RejectCode.MAX_POSITION,
            f"position in {order.symbol} would be {projected} (notional "
            f"{projected_notional}), max_position_notional is {limits.max_position_notional}",
        )
    return None


def utc_day(ts: datetime) -> datetime:
    """Return the UTC midnight that starts the trading day of ``ts``.

    The caller keys ``realized_pnl_today`` with it: the daily loss limit is
    per UTC day, whatever the pod's time zone.
    """
    utc = ts.astimezone(UTC)
    return utc.replace(hour=0, minute=0, second=0, microsecond=0)


__all__ = ["RiskManager", "utc_day"]
