"""The paper exchange's price rules: a marketable order fills at the market, never at its limit."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trader_api.domain import Side
from trader_api.execution.matching import maker_price, marketable, taker_price

FIVE_BPS = Decimal(5)


@pytest.mark.parametrize(
    ("side", "limit", "price", "expected"),
    [
        (Side.BUY, None, "3000", True),
        (Side.SELL, None, "3000", True),
        (Side.BUY, "3000", "3000", True),
        (Side.BUY, "2999.99", "3000", False),
        (Side.SELL, "3000", "3000", True),
        (Side.SELL, "3000.01", "3000", False),
    ],
)
def test_marketable_means_the_price_is_at_or_through_the_limit(
    side: Side, limit: str | None, price: str, *, expected: bool
) -> None:
    assert (
        marketable(side, price=Decimal(price), limit=None if limit is None else Decimal(limit))
        is expected
    )


def test_a_marketable_buy_takes_the_market_price_with_slippage_not_its_limit() -> None:
    # The failover report: a buy limit at 4501 with the market near 3000.
    paid = taker_price(Side.BUY, price=Decimal(3000), limit=Decimal(4501), slippage_bps=FIVE_BPS)
    assert paid == Decimal("3001.5")


def test_a_marketable_sell_takes_the_market_price_with_slippage_not_its_limit() -> None:
    got = taker_price(Side.SELL, price=Decimal(3000), limit=Decimal(1), slippage_bps=FIVE_BPS)
    assert got == Decimal("2998.5")


def test_a_taker_never_pays_past_its_limit() -> None:
    assert taker_price(
        Side.BUY, price=Decimal(3000), limit=Decimal(3001), slippage_bps=FIVE_BPS
    ) == Decimal(3001)
    assert taker_price(
        Side.SELL, price=Decimal(3000), limit=Decimal(2999), slippage_bps=FIVE_BPS
    ) == Decimal(2999)


def test_a_market_order_takes_the_price_with_slippage() -> None:
    assert taker_price(Side.BUY, price=Decimal(100), limit=None, slippage_bps=FIVE_BPS) == Decimal(
        "100.05"
    )


def test_a_limit_the_price_does_not_reach_rests() -> None:
    assert (
        taker_price(Side.BUY, price=Decimal(3000), limit=Decimal(2990), slippage_bps=FIVE_BPS)
        is None
    )
    assert maker_price(Side.SELL, price=Decimal(3000), limit=Decimal(3010)) is None


@pytest.mark.parametrize(
    ("side", "limit", "price"),
    [(Side.BUY, "3000", "2950"), (Side.BUY, "3000", "3000"), (Side.SELL, "3000", "3050")],
)
def test_a_resting_order_fills_at_its_limit_when_the_price_reaches_it(
    side: Side, limit: str, price: str
) -> None:
    assert maker_price(side, price=Decimal(price), limit=Decimal(limit)) == Decimal(limit)
