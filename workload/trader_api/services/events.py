"""Events on the bus: what every replica's WebSockets stream, and the leader's commands.

Public events carry a ``type`` (``order``, ``fill``, ``tick``, ``kline``,
``risk``, ``strategy``) and are forwarded to ``/ws`` clients as they are.
Commands (``type`` starting with ``command.``) ask the leader to act; they
are never forwarded to clients.

NB: money and quantities travel as decimal strings, never floats.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from trader_api.domain import Fill, Kline, Order, Tick, plain_decimal

PUBLIC_TYPES: Final = frozenset({"order", "fill", "tick", "kline", "risk", "strategy"})
EXECUTE: Final = "command.execute"
CANCEL: Final = "command.cancel"

Event = dict[str, Any]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else plain_decimal(value)


def encode_order(order: Order) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "quantity": plain_decimal(order.quantity),
        "limit_price": _money(order.limit_price),
        "status": order.status.value,
        "filled_quantity": plain_decimal(order.filled_quantity),
        "average_fill_price": _money(order.average_fill_price),
        "created_at": order.created_at.isoformat(),
        "updated_at": order.updated_at.isoformat(),
        "strategy": order.strategy,
        "reject_reason": order.reject_reason,
    }


def encode_fill(fill: Fill) -> dict[str, Any]:
    return {
        "id": str(fill.id),
        "order_id": str(fill.order_id),
        "symbol": fill.symbol,
        "side": fill.side.value,
        "quantity": plain_decimal(fill.quantity),
        "price": plain_decimal(fill.price),
        "fee": plain_decimal(fill.fee),
        "ts": fill.ts.isoformat(),
    }


def order_event(order: Order) -> Event:
    return {"type": "order", "order": encode_order(order)}


def fill_event(fill: Fill) -> Event:
    return {"type": "fill", "fill": encode_fill(fill)}


def tick_event(tick: Tick) -> Event:
    return {
        "type": "tick",
        "symbol": tick.symbol,
        "price": plain_decimal(tick.price),
        "quantity": plain_decimal(tick.quantity),
        "ts": tick.ts.isoformat(),
    }


def kline_event(kline: Kline) -> Event:
    return {
        "type": "kline",
        "symbol": kline.symbol,
        "interval": kline.interval.value,
        "open_time": kline.open_time.isoformat(),
        "open": plain_decimal(kline.open),
        "high": plain_decimal(kline.high),
        "low": plain_decimal(kline.low),
        "close": plain_decimal(kline.close),
        "volume": plain_decimal(kline.volume),
    }


def execute_command(order_id: UUID) -> Event:
    return {"type": EXECUTE, "order_id": str(order_id)}


def cancel_command(order_id: UUID) -> Event:
    return {"type": CANCEL, "order_id": str(order_id)}
