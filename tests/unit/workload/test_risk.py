"""The risk manager refuses each kind of breach with its own reason code, and halts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader_api.domain import Position, Side
from trader_api.risk import (
    Approved,
    HaltState,
    OrderRequest,
    PortfolioSnapshot,
    RejectCode,
    Rejected,
    RiskLimits,
    RiskManager,
    utc_day,
)

NOW = datetime(2025, 1, 28, 10, 30, tzinfo=UTC)
LIMITS = RiskLimits(
    max_order_notional=Decimal(10_000),
    max_position_notional=Decimal(50_000),
    max_open_orders=3,
    daily_loss_limit=Decimal(5_000),
)
MARKS = {"BTCUSDT": Decimal(20_000)}


def manager() -> RiskManager:
    return RiskManager(LIMITS, clock=lambda: NOW)


def holding(quantity: str, *, open_orders: int = 0, pnl: str = "0") -> PortfolioSnapshot:
    position = Position("BTCUSDT", Decimal(quantity), Decimal(20_000), Decimal(0), NOW)
    return PortfolioSnapshot(
        positions={"BTCUSDT": position},
        open_orders=open_orders,
        marks=MARKS,
        realized_pnl_today=Decimal(pnl),
    )


def buy(quantity: str, limit: str | None = None, symbol: str = "BTCUSDT") -> OrderRequest:
    return OrderRequest(
        symbol, Side.BUY, Decimal(quantity), Decimal(limit) if limit is not None else None
    )


def sell(quantity: str) -> OrderRequest:
    return OrderRequest("BTCUSDT", Side.SELL, Decimal(quantity))


def rejection(decision: Approved | Rejected) -> RejectCode:
    assert isinstance(decision, Rejected), decision
    return decision.code


def test_an_order_within_every_limit_is_approved_at_its_notional() -> None:
    assert manager().check(buy("0.5"), holding("0")) == Approved(notional=Decimal(10_000))


def test_a_limit_order_is_valued_at_its_limit_price() -> None:
    assert manager().check(buy("1", limit="9000"), holding("0")) == Approved(Decimal(9000))


def test_order_notional_above_the_limit() -> None:
    decision = manager().check(buy("0.5001"), holding("0"))
    assert decision == Rejected(
        RejectCode.MAX_ORDER_NOTIONAL,
        "order notional 10002.0000 exceeds max_order_notional 10000",
    )


def test_position_notional_above_the_limit() -> None:
    # 2.1 held + 0.4 bought = 2.5 * 20000 = 50000 is at the limit; 0.0001 more is over.
    assert manager().check(buy("0.4"), holding("2.1")) == Approved(Decimal(8000))
    decision = manager().check(buy("0.4001"), holding("2.1"))
    assert decision == Rejected(
        RejectCode.MAX_POSITION,
        "position in BTCUSDT would be 2.5001 (notional 50002.0000), max_position_notional is 50000",
    )


def test_the_position_is_valued_at_the_mark_even_for_a_cheap_limit_order() -> None:
    # At the 15000 limit 2.51 would be 37650; at the 20000 mark it is 50200, over the limit.
    decision = manager().check(buy("0.41", limit="15000"), holding("2.1"))
    assert rejection(decision) is RejectCode.MAX_POSITION


def test_short_positions_count_by_their_size() -> None:
    assert rejection(manager().check(sell("0.4001"), holding("-2.1"))) is RejectCode.MAX_POSITION


def test_reducing_a_position_already_above_the_limit_is_allowed() -> None:
    # The price rose: 3 * 20000 = 60000 is over the limit; selling 0.1 shrinks it.
    assert manager().check(sell("0.1"), holding("3")) == Approved(Decimal(2000))
    # Flipping the position past zero to a bigger size on the other side is not shrinking it.
    assert rejection(manager().check(sell("0.4"), holding("-2.5"))) is RejectCode.MAX_POSITION


def test_open_orders_at_the_limit() -> None:
    assert manager().check(buy("0.1"), holding("0", open_orders=2)) == Approved(Decimal(2000))
    decision = manager().check(buy("0.1"), holding("0", open_orders=3))
    assert decision == Rejected(
        RejectCode.MAX_OPEN_ORDERS, "3 open orders already, max_open_orders is 3"
    )


def test_a_market_order_with_no_price_cannot_be_valued() -> None:
    decision = manager().check(buy("1", symbol="ETHUSDT"), holding("0"))
    assert decision == Rejected(
        RejectCode.NO_PRICE, "no market price for ETHUSDT yet to value a market order"
    )
    # A limit order carries its own price.
    assert manager().check(buy("1", limit="3000", symbol="ETHUSDT"), holding("0")) == Approved(
        Decimal(3000)
    )


@pytest.mark.parametrize("quantity", ["0", "-1", "NaN", "Infinity"])
def test_quantity_must_be_positive(quantity: str) -> None:
    assert rejection(manager().check(buy(quantity), holding("0"))) is RejectCode.INVALID_QUANTITY


@pytest.mark.parametrize("limit", ["0", "-5", "NaN"])
def test_limit_price_must_be_positive(limit: str) -> None:
    assert rejection(manager().check(buy("1", limit=limit), holding("0"))) is (
        RejectCode.INVALID_PRICE
    )


def test_the_kill_switch_refuses_everything_until_resumed() -> None:
    events: list[HaltState | None] = []
    risk = RiskManager(LIMITS, clock=lambda: NOW, on_halt=events.append)
    state = risk.halt("exchange maintenance")
    assert state == HaltState(reason="exchange maintenance", since=NOW, automatic=False)
    assert risk.check(buy("0.1"), holding("0")) == Rejected(
        RejectCode.KILL_SWITCH, "trading is halted: exchange maintenance"
    )
    # A second halt keeps the first reason: that is the one that stopped trading.
    assert risk.halt("another reason").reason == "exchange maintenance"
    risk.resume()
    assert not risk.halted
    assert risk.check(buy("0.1"), holding("0")) == Approved(Decimal(2000))
    assert events == [state, None]


def test_the_daily_loss_limit_halts_trading() -> None:
    risk = manager()
    assert risk.check(buy("0.1"), holding("0", pnl="-4999.99")) == Approved(Decimal(2000))
    decision = risk.check(buy("0.1"), holding("0", pnl="-5000"))
    assert decision == Rejected(
        RejectCode.DAILY_LOSS_LIMIT, "realized loss today 5000 reached the daily loss limit 5000"
    )
    assert risk.halt_state == HaltState(
        reason="realized loss today 5000 reached the daily loss limit 5000",
        since=NOW,
        automatic=True,
    )
    # The halt stays after the loss is gone (a new day): a person resumes trading.
    assert rejection(risk.check(buy("0.1"), holding("0"))) is RejectCode.KILL_SWITCH


def test_checks_run_in_a_fixed_order() -> None:
    risk = manager()
    everything_wrong = holding("5", open_orders=9)
    assert rejection(risk.check(buy("0"), everything_wrong)) is RejectCode.INVALID_QUANTITY
    assert rejection(risk.check(buy("100"), everything_wrong)) is RejectCode.MAX_ORDER_NOTIONAL
    assert rejection(risk.check(buy("0.1"), everything_wrong)) is RejectCode.MAX_OPEN_ORDERS
    assert rejection(risk.check(buy("0.1"), holding("5"))) is RejectCode.MAX_POSITION


def test_limits_can_be_replaced_at_runtime() -> None:
    risk = manager()
    risk.limits = RiskLimits(
        max_order_notional=Decimal(1000),
        max_position_notional=Decimal(50_000),
        max_open_orders=3,
        daily_loss_limit=Decimal(5_000),
    )
    assert rejection(risk.check(buy("0.1"), holding("0"))) is RejectCode.MAX_ORDER_NOTIONAL


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_order_notional", Decimal(0)),
        ("max_position_notional", Decimal(-1)),
        ("daily_loss_limit", Decimal("NaN")),
        ("max_open_orders", 0),
    ],
)
def test_limits_must_be_positive(field: str, value: object) -> None:
    values: dict[str, object] = {
        "max_order_notional": Decimal(1),
        "max_position_notional": Decimal(1),
        "max_open_orders": 1,
        "daily_loss_limit": Decimal(1),
        field: value,
    }
    with pytest.raises(ValueError, match=field):
        RiskLimits(**values)  # type: ignore[arg-type]  # values are checked at runtime here


def test_the_trading_day_is_the_utc_day() -> None:
    seoul = timezone(timedelta(hours=9))
    assert utc_day(datetime(2025, 1, 29, 8, 59, tzinfo=seoul)) == datetime(2025, 1, 28, tzinfo=UTC)


@settings(max_examples=300)
@given(
    held=st.decimals(min_value=-5, max_value=5, places=2),
    quantity=st.decimals(min_value="0.01", max_value=1, places=2),
    side=st.sampled_from(Side),
    mark=st.decimals(min_value=1_000, max_value=40_000, places=0),
    open_orders=st.integers(min_value=0, max_value=5),
    pnl=st.decimals(min_value=-6_000, max_value=1_000, places=0),
)
def test_approved_exactly_when_every_limit_holds(
    *, held: Decimal, quantity: Decimal, side: Side, mark: Decimal, open_orders: int, pnl: Decimal
) -> None:
    position = Position("BTCUSDT", held, mark, Decimal(0), NOW)
    portfolio = PortfolioSnapshot(
        positions={"BTCUSDT": position},
        open_orders=open_orders,
        marks={"BTCUSDT": mark},
        realized_pnl_today=pnl,
    )
    projected = held + quantity * side.sign
    within = (
        quantity * mark <= LIMITS.max_order_notional
        and open_orders < LIMITS.max_open_orders
        and pnl > -LIMITS.daily_loss_limit
        and (abs(projected) * mark <= LIMITS.max_position_notional or abs(projected) <= abs(held))
    )
    decision = manager().check(OrderRequest("BTCUSDT", side, quantity), portfolio)
    assert isinstance(decision, Approved) is within, decision
