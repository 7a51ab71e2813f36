"""Signals: what a strategy wants, before risk decides whether it may."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from trader_api.domain.market import Interval
from trader_api.domain.orders import Side


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's wish to trade ``quantity`` of ``symbol`` at about ``price``.

    ``reason`` is human-readable (e.g. ``"sma 5 crossed above sma 20"``) and
    is stored with the order the signal becomes.
    """

    strategy: str
    symbol: str
    interval: Interval
    side: Side
    quantity: Decimal
    price: Decimal
    ts: datetime
    reason: str
