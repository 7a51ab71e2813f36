"""The ``Store`` contract, on PostgreSQL and on the in-process twin alike."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from support.trading_data import T0, make_fill, make_klines, make_order, with_close
from trader_api.domain import Interval, OrderStatus, Position, Side
from trader_api.storage import (
    ConflictError,
    NotFoundError,
    RecordedFill,
    StorageUnavailableError,
    Store,
)
from trader_api.storage.postgres import COPY_THRESHOLD

# -- klines ---------------------------------------------------------------------------------


async def test_klines_round_trip_exactly(store: Store) -> None:
    klines = make_klines(5)
    assert await store.insert_klines(klines) == 5
    assert await store.query_klines(symbol="BTCUSDT", interval=Interval.M1) == klines


async def test_klines_upsert_replaces_a_candle_with_the_same_key(store: Store) -> None:
    klines = make_klines(3)
    await store.insert_klines(klines)
    corrected = with_close(klines[2], "99999.99")
    await store.insert_klines([corrected])
    stored = await store.query_klines(symbol="BTCUSDT", interval=Interval.M1)
    assert stored == [*klines[:2], corrected]


async def test_klines_duplicates_inside_one_batch_keep_the_last(store: Store) -> None:
    (first,) = make_klines(1)
    last = with_close(first, "1.00")
    assert await store.insert_klines([first, last]) == 1
    assert await store.query_klines(symbol="BTCUSDT", interval=Interval.M1) == [last]


async def test_a_large_batch_with_a_repeated_key_keeps_the_last(store: Store) -> None:
    klines = make_klines(COPY_THRESHOLD, symbol="ETHUSDT")
    repeated = with_close(klines[0], "2.00")
    assert await store.insert_klines([*klines, repeated]) == len(klines)
    stored = await store.query_klines(symbol="ETHUSDT", interval=Interval.M1, limit=len(klines))
    assert stored == [repeated, *klines[1:]]


async def test_a_large_batch_takes_the_bulk_path_and_upserts_too(store: Store) -> None:
    count = COPY_THRESHOLD * 4
    klines = make_klines(count)
    await store.insert_klines(klines[: count // 2])
    changed = [with_close(k, "7.77") for k in klines]
    assert await store.insert_klines(changed) == count
    stored = await store.query_klines(symbol="BTCUSDT", interval=Interval.M1, limit=count)
    assert stored == changed


async def test_bulk_ingest_keeps_symbols_with_special_characters_intact(store: Store) -> None:
    symbol = "ODD\\SYM\tBOL\nX\\N"
    klines = make_klines(COPY_THRESHOLD + 1, symbol=symbol)
    await store.insert_klines(klines)
    stored = await store.query_klines(symbol=symbol, interval=Interval.M1, limit=len(klines))
    assert stored == klines


async def test_query_klines_filters_range_series_and_keeps_the_newest_within_limit(
    store: Store,
) -> None:
    btc = make_klines(10)
    eth = make_klines(10, symbol="ETHUSDT")
    btc_5m = make_klines(10, interval=Interval.M5)
    await store.insert_klines([*btc, *eth, *btc_5m])

    ranged = await store.query_klines(
        symbol="BTCUSDT",
        interval=Interval.M1,
        start=btc[2].open_time,
        end=btc[6].open_time,  # exclusive
    )
    assert ranged == btc[2:6]
    newest = await store.query_klines(symbol="BTCUSDT", interval=Interval.M1, limit=3)
    assert newest == btc[7:]
    assert await store.query_klines(symbol="BTCUSDT", interval=Interval.M5) == btc_5m
    assert await store.query_klines(symbol="XRPUSDT", interval=Interval.M1) == []
    assert await store.query_klines(symbol="BTCUSDT", interval=Interval.M1, limit=0) == []


async def test_delete_klines_before_removes_only_older_candles(store: Store) -> None:
    klines = make_klines(10) + make_klines(10, symbol="ETHUSDT")
    await store.insert_klines(klines)
    cutoff = T0 + timedelta(minutes=4)
    assert await store.delete_klines_before(cutoff) == 8
    remaining = await store.query_klines(symbol="BTCUSDT", interval=Interval.M1)
    assert [k.open_time for k in remaining] == [k.open_time for k in klines[4:10]]


# -- orders ---------------------------------------------------------------------------------


async def test_create_order_stores_every_field_exactly(store: Store) -> None:
    order = make_order(quantity="0.12345678", limit_price="41999.99", side=Side.SELL)
    created, is_new = await store.create_order(order)
    assert is_new
    assert created == order
    assert await store.get_order(order.id) == order
    assert await store.get_order_by_client_id(order.client_order_id) == order


async def test_resubmitting_a_client_order_id_returns_the_first_order(store: Store) -> None:
    first = make_order(client_order_id="abc-1")
    await store.create_order(first)
    again = make_order(client_order_id="abc-1", quantity="9")  # another id, another quantity
    returned, is_new = await store.create_order(again)
    assert not is_new
    assert returned == first
    assert await store.get_order(again.id) is None


async def test_concurrent_duplicate_submissions_create_exactly_one_order(store: Store) -> None:
    attempts = [make_order(client_order_id="race-1") for _ in range(16)]
    results = await asyncio.gather(*(store.create_order(o) for o in attempts))
    created = [order for order, is_new in results if is_new]
    assert len(created) == 1
    assert {order.id for order, _ in results} == {created[0].id}
    assert len(await store.list_orders()) == 1


async def test_reusing_an_order_id_under_another_client_id_is_a_conflict(store: Store) -> None:
    order = make_order()
    await store.create_order(order)
    with pytest.raises(ConflictError):
        await store.create_order(replace(order, client_order_id="someone-else"))


async def test_unknown_orders_are_none(store: Store) -> None:
    assert await store.get_order(uuid4()) is None
    assert await store.get_order_by_client_id("nope") is None


async def test_list_orders_is_newest_first_and_filters(store: Store) -> None:
    orders = [
        make_order(symbol="BTCUSDT", created_at=T0),
        make_order(symbol="ETHUSDT", created_at=T0 + timedelta(seconds=1)),
        make_order(symbol="BTCUSDT", created_at=T0 + timedelta(seconds=2)),
    ]
    for order in orders:
        await store.create_order(order)
    cancelled = orders[0].with_status(OrderStatus.CANCELLED, at=T0 + timedelta(seconds=3))
    await store.update_order(cancelled)

    assert [o.id for o in await store.list_orders()] == [o.id for o in reversed(orders)]
    assert [o.id for o in await store.list_orders(symbol="BTCUSDT")] == [
        orders[2].id,
        orders[0].id,
    ]
    assert await store.list_orders(status=OrderStatus.CANCELLED) == [cancelled]
    assert len(await store.list_orders(limit=2)) == 2


async def test_update_order_changes_status_and_counts_open_orders(store: Store) -> None:
    first, second = make_order(), make_order(symbol="ETHUSDT")
    await store.create_order(first)
    await store.create_order(second)
    assert await store.count_open_orders() == 2
    rejected = first.with_status(OrderStatus.REJECTED, at=T0 + timedelta(1), reason="max_notional")
    assert await store.update_order(rejected) == rejected
    assert await store.get_order(first.id) == rejected
    assert await store.count_open_orders() == 1
    assert await store.count_open_orders("ETHUSDT") == 1
    assert await store.count_open_orders("BTCUSDT") == 0


async def test_updating_an_unknown_order_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.update_order(make_order())


# -- fills and positions ------------------------------------------------------------------


async def test_record_fill_stores_fill_order_and_position_together(store: Store) -> None:
    order = make_order(quantity="2")
    await store.create_order(order)
    fill = make_fill(order, quantity="0.5", price="100", fee="0.1")
    filled = order.with_fill(fill)
    position = Position.flat("BTCUSDT", at=T0).apply(fill)

    assert await store.record_fill(fill=fill, order=order) == RecordedFill(
        order=filled, position=position, recorded=True
    )

    assert await store.get_order(order.id) == filled
    assert filled.status is OrderStatus.PARTIALLY_FILLED
    assert await store.get_position("BTCUSDT") == position
    assert await store.list_positions() == [position]
    assert await store.list_fills(order_id=order.id) == [fill]
    assert await store.list_fills(symbol="ETHUSDT") == []


async def test_a_retried_fill_changes_nothing_and_answers_what_is_stored(store: Store) -> None:
    order = make_order(quantity="1")
    await store.create_order(order)
    fill = make_fill(order, price="100", fee="0")
    first = await store.record_fill(fill=fill, order=order)

    again = await store.record_fill(fill=fill, order=order)

    assert again == RecordedFill(order=first.order, position=first.position, recorded=False)
    assert await store.get_position("BTCUSDT") == first.position
    assert await store.get_order(order.id) == order.with_fill(fill)
    assert len(await store.list_fills()) == 1


async def test_a_fill_applies_to_the_stored_order_and_position_not_the_callers_copy(
    store: Store,
) -> None:
    """A caller holding an old copy (an old leader mid-handover) cannot roll a fill back."""
    order = make_order(quantity="3")
    await store.create_order(order)
    first = make_fill(order, quantity="1", price="100", fee="0")
    second = make_fill(order, quantity="2", price="130", fee="0")
    await store.record_fill(fill=first, order=order)

    stored = await store.record_fill(fill=second, order=order)  # the copy from before `first`

    assert stored.order == order.with_fill(first).with_fill(second)
    assert stored.order.filled_quantity == Decimal(3)
    assert stored.order.average_fill_price == Decimal(120)
    assert stored.order.status is OrderStatus.FILLED
    assert stored.position.quantity == Decimal(3)
    assert stored.position.average_price == Decimal(120)
    assert await store.get_order(order.id) == stored.order
    assert await store.get_position("BTCUSDT") == stored.position


async def test_an_overfill_is_a_conflict_and_changes_nothing(store: Store) -> None:
    order = make_order(quantity="1")
    await store.create_order(order)
    await store.record_fill(fill=make_fill(order, quantity="0.6", fee="0"), order=order)
    before = (await store.get_order(order.id), await store.get_position("BTCUSDT"))

    with pytest.raises(ConflictError):
        await store.record_fill(fill=make_fill(order, quantity="0.6", fee="0"), order=order)

    assert (await store.get_order(order.id), await store.get_position("BTCUSDT")) == before
    assert len(await store.list_fills()) == 1


async def test_a_fill_of_another_order_or_client_id_is_a_conflict(store: Store) -> None:
    order, other = make_order(), make_order()
    await store.create_order(order)
    await store.create_order(other)
    with pytest.raises(ConflictError):
        await store.record_fill(fill=make_fill(other), order=order)
    with pytest.raises(ConflictError):
        await store.record_fill(
            fill=make_fill(order), order=replace(order, client_order_id="someone-else")
        )
    assert await store.list_fills() == []
    assert await store.get_position("BTCUSDT") is None
    assert await store.get_order(order.id) == order


async def test_a_fill_of_an_unknown_order_is_not_found(store: Store) -> None:
    order = make_order()
    with pytest.raises(NotFoundError):
        await store.record_fill(fill=make_fill(order), order=order)
    assert await store.list_fills() == []


async def test_update_order_changes_the_status_but_never_undoes_a_fill(store: Store) -> None:
    order = make_order(quantity="2")
    await store.create_order(order)
    fill = make_fill(order, quantity="1", price="100")
    await store.record_fill(fill=fill, order=order)

    stale = order.with_status(OrderStatus.CANCELLED, at=T0 + timedelta(minutes=1))
    stored = await store.update_order(stale)  # made from the copy before the fill

    assert stored == order.with_fill(fill).with_status(
        OrderStatus.CANCELLED, at=T0 + timedelta(minutes=1)
    )
    assert stored.filled_quantity == Decimal(1)
    assert await store.get_order(order.id) == stored


async def test_realized_pnl_since_sums_what_fills_realized_after_a_time(store: Store) -> None:
    buy = make_order(quantity="2", side=Side.BUY)
    sell = make_order(quantity="2", side=Side.SELL, created_at=T0 + timedelta(hours=1))
    await store.create_order(buy)
    await store.create_order(sell)

    await store.record_fill(fill=make_fill(buy, price="100", fee="1", ts=T0), order=buy)
    sell_time = T0 + timedelta(days=1)
    sold = await store.record_fill(
        fill=make_fill(sell, price="110", fee="1", ts=sell_time), order=sell
    )

    assert sold.position.realized_pnl == Decimal(18)  # -1 fee, then +20 - 1
    assert await store.realized_pnl_since(T0) == Decimal(18)
    assert await store.realized_pnl_since(sell_time) == Decimal(19)
    assert await store.realized_pnl_since(sell_time + timedelta(seconds=1)) == Decimal(0)


async def test_concurrent_fills_keep_realized_pnl_consistent_with_the_position(
    store: Store,
) -> None:
    """The per-fill realized PnL always adds up to the stored position's, however fills race."""
    orders = [make_order(symbol="SOLUSDT", quantity="1", side=Side.SELL) for _ in range(8)]
    for order in orders:
        await store.create_order(order)
    await asyncio.gather(
        *(
            store.record_fill(fill=make_fill(order, price="10", fee="0.5"), order=order)
            for order in orders
        )
    )

    stored = await store.get_position("SOLUSDT")
    assert stored is not None
    assert stored.quantity == Decimal(-8)
    assert stored.realized_pnl == Decimal(-4)
    assert await store.realized_pnl_since(T0) == stored.realized_pnl


# -- health ---------------------------------------------------------------------------------


async def test_plain_postgresql_and_memory_leave_retention_to_the_engine(store: Store) -> None:
    status = await store.retention_status()
    assert status.engine_retention
    assert status.retention_days == 90
    assert status.summary.startswith("timescaledb: unavailable, engine retention active")


async def test_a_closed_store_is_unavailable(store: Store) -> None:
    await store.ping()
    await store.close()
    with pytest.raises(StorageUnavailableError):
        await store.ping()
