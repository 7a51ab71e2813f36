"""Request and response models of ``/api/v1``: what clients send and get, precisely typed.

NB: money and quantities are JSON strings of decimals (``"0.01"``), never
floats; requests accept numbers too, and refuse NaN and infinities.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    model_validator,
)

from trader_api.domain import (
    Fill,
    Interval,
    Kline,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    plain_decimal,
)
from trader_api.risk import HaltState, RiskLimits
from trader_api.strategy import StrategyConfig

Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{2,30}$", examples=["BTCUSDT"])]
Amount = Annotated[Decimal, Field(gt=0, allow_inf_nan=False, max_digits=28, decimal_places=12)]

PlainDecimal = Annotated[Decimal, PlainSerializer(plain_decimal, return_type=str, when_used="json")]
"""Every decimal in a response: a plain string (``"0.0000001"``, never ``"1E-7"``)."""


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "out of range: the time in UTC must be within 0001-01-01 and 9999-12-31"
        ) from None


EdgeDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""Every datetime a client sends: with a time zone, and representable in UTC.

NB: the stores compare in UTC; ``0001-01-01T00:00:00+05:00`` is a valid
datetime whose UTC instant is before year 1, which asyncpg cannot encode
(a 500 on PostgreSQL) while the memory store compared it happily. Normalised
here, once, both stores get the same UTC value or the client gets a 422.
"""

# Response models whose fields are a domain value's attributes, by the same
# names: ``Model.of(value)`` reads them (in pydantic-core, a little faster
# than passing each one). NB: they mirror the domain types on purpose: the
# API's schema is a contract and must not change when a domain type grows.
_FROM_ATTRIBUTES = ConfigDict(from_attributes=True)


class SubmitOrderRequest(BaseModel):
    """A new order; resubmitting its ``client_order_id`` returns the first order, unchanged."""

    model_config = ConfigDict(extra="forbid")

    client_order_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", examples=["my-order-0001"]
    )
    symbol: Symbol
    side: Side
    type: OrderType = OrderType.MARKET
    quantity: Amount
    limit_price: Amount | None = None

    @model_validator(mode="after")
    def _price_matches_type(self) -> SubmitOrderRequest:
        if self.type is OrderType.LIMIT and self.limit_price is None:
            raise ValueError("a limit order needs limit_price")
        if self.type is OrderType.MARKET and self.limit_price is not None:
            raise ValueError("a market order takes no limit_price")
        return self


class OrderOut(BaseModel):
    model_config = _FROM_ATTRIBUTES

    id: UUID
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: PlainDecimal
    limit_price: PlainDecimal | None
    status: OrderStatus
    filled_quantity: PlainDecimal
    average_fill_price: PlainDecimal | None
    created_at: datetime
    updated_at: datetime
    strategy: str | None
    reject_reason: str | None

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        return cls.model_validate(order)


class FillOut(BaseModel):
    model_config = _FROM_ATTRIBUTES

    id: UUID
    order_id: UUID
    symbol: str
    side: Side
    quantity: PlainDecimal
    price: PlainDecimal
    fee: PlainDecimal
    ts: datetime

    @classmethod
    def of(cls, fill: Fill) -> FillOut:
        return cls.model_validate(fill)


class PositionOut(BaseModel):
    symbol: str
    quantity: PlainDecimal
    average_price: PlainDecimal
    realized_pnl: PlainDecimal
    mark_price: PlainDecimal | None
    unrealized_pnl: PlainDecimal | None
    updated_at: datetime

    @classmethod
    def of(cls, position: Position, *, mark: Decimal | None) -> PositionOut:
        return cls(
            symbol=position.symbol,
            quantity=position.quantity,
            average_price=position.average_price,
            realized_pnl=position.realized_pnl,
            mark_price=mark,
            unrealized_pnl=position.unrealized_pnl(mark) if mark is not None else None,
            updated_at=position.updated_at,
        )


class StrategyOut(BaseModel):
    model_config = _FROM_ATTRIBUTES

    name: str
    kind: str
    symbol: str
    interval: Interval
    params: dict[str, Any]
    enabled: bool

    @classmethod
    def of(cls, config: StrategyConfig) -> StrategyOut:
        return cls.model_validate(config)


class KlineOut(BaseModel):
    model_config = _FROM_ATTRIBUTES

    symbol: str
    interval: Interval
    open_time: datetime
    close_time: datetime
    open: PlainDecimal
    high: PlainDecimal
    low: PlainDecimal
    close: PlainDecimal
    volume: PlainDecimal

    @classmethod
    def of(cls, kline: Kline) -> KlineOut:
        return cls.model_validate(kline)


class RiskLimitsOut(BaseModel):
    model_config = _FROM_ATTRIBUTES

    max_order_notional: PlainDecimal
    max_position_notional: PlainDecimal
    max_open_orders: int
    daily_loss_limit: PlainDecimal

    @classmethod
    def of(cls, limits: RiskLimits) -> RiskLimitsOut:
        return cls.model_validate(limits)


class KillSwitchOut(BaseModel):
    engaged: bool
    reason: str | None
    since: datetime | None
    automatic: bool

    @classmethod
    def of(cls, state: HaltState | None) -> KillSwitchOut:
        if state is None:
            return cls(engaged=False, reason=None, since=None, automatic=False)
        return cls(engaged=True, reason=state.reason, since=state.since, automatic=state.automatic)


class RiskOut(BaseModel):
    """The risk state; what the operator copies into the TraderBot's ``status.trading``."""

    limits: RiskLimitsOut
    kill_switch: KillSwitchOut
    daily_loss_halt: bool = Field(
        description="the kill switch was engaged by the daily loss limit (not by a person)"
    )
    open_orders: int
    realized_pnl_today: PlainDecimal
    marks: dict[str, PlainDecimal]
    leader: str | None = Field(
        description="the pod holding the leader lease (running the engine); null if unknown"
    )
    pod: str = Field(description="the pod that answered")


class KillSwitchRequest(BaseModel):
    """Engage (``true``) or release (``false``) the kill switch; the reason is logged."""

    model_config = ConfigDict(extra="forbid", strict=True)

    engaged: StrictBool
    reason: str = Field(min_length=1, max_length=500)


class ErrorOut(BaseModel):
    detail: str


class RejectionOut(BaseModel):
    """A risk rejection: the order was stored with status ``rejected``."""

    detail: str
    code: str
    order: OrderOut


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class UnprocessableOut(BaseModel):
    """Any 422: a schema error (``detail`` lists the issues), or a risk rejection.

    A rejection has ``code`` (the risk reason code) and the stored ``order``.
    """

    detail: str | list[ValidationIssue]
    code: str | None = None
    order: OrderOut | None = None
