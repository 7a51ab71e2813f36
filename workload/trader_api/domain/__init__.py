"""Value types of the engine. Pure: no I/O, no framework imports."""

from trader_api.domain.decimals import plain_decimal
from trader_api.domain.market import Interval, Kline, Tick
from trader_api.domain.orders import Fill, Order, OrderStatus, OrderType, Side
from trader_api.domain.portfolio import Position, Settlement, settle
from trader_api.domain.signals import Signal

__all__ = [
    "Fill",
    "Interval",
    "Kline",
    "Order",
    "OrderStatus",
    "OrderType",
    "Position",
    "Settlement",
    "Side",
    "Signal",
    "Tick",
    "plain_decimal",
    "settle",
]
