"""The paper exchange's price rules, as pure functions of an order's terms and a price.

One rule, in two roles: an order that is marketable when it meets a price
(a market order, a buy limit at or above the price, a sell limit at or below
it) fills at the market price, never at its own limit when the market
offers better.

- A **taker** meets a price it has not met before: on arrival, or, when it
  arrived before any price of its symbol, that symbol's first price. It
  fills at the price moved against it by the slippage (its own demand moves
  the market), capped at its limit.
- A **maker** rested on the book against an earlier price it did not reach.
  A later price at or through its limit fills it at its limit, as on an
  exchange: the resting order is the book's best price, so the first trade
  that reaches it trades at that price; a later tick further through the
  limit says the market went on past it. (Bar-based backtesters fill a gap
  at the open instead: they treat the order as arriving at the open, a
  taker.)

NB: a limit order that arrives before any price is neither: it waits (see
``PaperExchange``). Resting it on no price made it a maker that the first
price then filled at its limit, however far that price was through it (a
buy at its 4501 limit with the market near 3000).
"""

from __future__ import annotations

from decimal import Decimal

from trader_api.domain import Side

BPS = Decimal(10_000)


def slipped(price: Decimal, side: Side, *, slippage_bps: Decimal) -> Decimal:
    """Return ``price`` moved against a taker on ``side``: a buy pays more, a sell gets less."""
    return price * (1 + side.sign * slippage_bps / BPS)


def marketable(side: Side, *, price: Decimal, limit: Decimal | None) -> bool:
    """Return whether an order would trade at ``price``: market orders always do."""
    if limit is None:
        return True
    return price <= limit if side is Side.BUY else price >= limit


def taker_price(
    side: Side, *, price: Decimal, limit: Decimal | None, slippage_bps: Decimal
) -> Decimal | None:
    """Return the price a taker fills at against ``price``, or ``None`` if it must rest.

    The market price with slippage, never worse than ``limit``.
    """
    if not marketable(side, price=price, limit=limit):
        return None
    paid = slipped(price, side, slippage_bps=slippage_bps)
    if limit is None:
        return paid
    return min(paid, limit) if side is Side.BUY else max(paid, limit)


def maker_price(side: Side, *, price: Decimal, limit: Decimal) -> Decimal | None:
    """Return the price a resting limit order fills at when the market trades at ``price``.

    Its limit once ``price`` is at or through it; ``None`` while it is not.
    """
    return limit if marketable(side, price=price, limit=limit) else None
