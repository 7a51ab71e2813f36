"""``Store.portfolio_state``: the risk inputs in one read, on PostgreSQL and in process alike."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from support.trading_data import T0, make_fill, make_order
from trader_api.domain import OrderStatus, Side
from trader_api.storage import PortfolioState, Store


async def test_an_empty_store_has_no_positions_no_open_orders_and_no_pnl(store: Store) -> None:
    assert await store.portfolio_state(realized_since=T0) == PortfolioState(
        positions=(), open_orders=0, realized_pnl=Decimal(0)
    )


async def test_it_agrees_with_the_three_separate_reads(store: Store) -> None:
    buy = make_order(quantity="2", side=Side.BUY)
    sell = make_order(quantity="2", side=Side.SELL, created_at=T0 + timedelta(hours=1))
    resting = make_order(symbol="ETHUSDT", quantity="1")
    cancelled = make_order(symbol="ETHUSDT", quantity="3")
    for order in (buy, sell, resting, cancelled):
        await store.create_order(order)
    await store.update_order(cancelled.with_status(OrderStatus.CANCELLED, at=T0))
    bought = make_fill(buy, price="100", fee="1", ts=T0)
    await store.record_fill(fill=bought, order=buy)
    sell_time = T0 + timedelta(days=1)
    sold = make_fill(sell, price="110", fee="1", ts=sell_time)
    await store.record_fill(fill=sold, order=sell)

    for since in (T0, sell_time, sell_time + timedelta(seconds=1)):
        state = await store.portfolio_state(realized_since=since)
        assert state == PortfolioState(
            positions=tuple(await store.list_positions()),
            open_orders=await store.count_open_orders(),
            realized_pnl=await store.realized_pnl_since(since),
        )
    state = await store.portfolio_state(realized_since=sell_time)
    assert [p.symbol for p in state.positions] == ["BTCUSDT"]
    assert state.open_orders == 1  # only the resting ETHUSDT order can still fill
    assert state.realized_pnl == Decimal(19)


async def test_it_tells_which_pending_orders_the_snapshot_already_holds(store: Store) -> None:
    committed, not_yet = make_order(), make_order()
    await store.create_order(committed)
    state = await store.portfolio_state(realized_since=T0, pending=[committed.id, not_yet.id])
    assert state.seen == frozenset({committed.id})
    assert state.open_orders == 1
    assert (await store.portfolio_state(realized_since=T0)).seen == frozenset()
