"""Events on the bus: what every replica's WebSockets stream, and the leader's commands.

Public events carry a ``type`` (``order``, ``fill``, ``tick``, ``kline``,
``risk``, ``strategy``) and are forwarded to ``/ws`` clients as they are.
Commands (``type`` starting with ``command.``) ask the leader to act; they
are never forwarded to clients.

NB: money and quantities travel as decimal strings, never floats.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from trader_api.domain import Fill, Kline, Order, Tick

PUBLIC_TYPES: Final = frozenset({"order", "fill", "tick", "kline", "risk", "strategy"})
EXECUTE: Final = "command.execute"
CANCEL: Final = "command.cancel"

Event = dict[str, Any]


def _money(value: object) -> str | None:
    return None if value is None else str(value)


def encode_order(order: Order) -> dict[str, Any]:
    return {
        "id": str(order.id),
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "quantity": str(order.quantity),
        "limit_price": _money(order.limit_price),
        "status": order.status.value,
        "filled_quantity": str(order.filled_quantity),
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
        "quantity": str(fill.quantity),
        "price": str(fill.price),
        "fee": str(fill.fee),
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
        "price": str(tick.price),
        "quantity": str(tick.quantity),
        "ts": tick.ts.isoformat(),
    }


def kline_event(kline: Kline) -> Event:
    return {
        "type": "kline",
        "symbol": kline.symbol,
        "interval": kline.interval.value,
        "open_time": kline.open_time.isoformat(),
        "open": str(kline.open),
        "high": str(kline.high),
        "low": str(kline.low),
        "close": str(kline.close),
        "volume": str(kline.volume),
    }


def execute_command(order_id: UUID) -> Event:
    return {"type": EXECUTE, "order_id": str(order_id)}


def cancel_command(order_id: UUID) -> Event:
    return {"type": CANCEL, "order_id": str(order_id)}
