"""The leader's trading loop: market data -> klines -> strategies -> risk -> broker -> fills.

Only the replica holding the leader lease runs it. Every change to an order
after it was created happens here, one operation at a time through one
queue, so a tick's fill, a cancel and an execution of the same order never
race each other.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import anyio

from trader_api.config import Settings
from trader_api.domain import Fill, Kline, Order, OrderStatus, OrderType, Tick
from trader_api.execution import (
    Broker,
    BrokerError,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    OrderNotOpenError,
    OrderUpdate,
    SubmitResult,
    TransientBrokerError,
    UnknownOrderError,
)
from trader_api.logging import TRACE
from trader_api.marketdata import MarketFeed
from trader_api.risk import RejectCode, RiskManager
from trader_api.services.events import (
    CANCEL,
    EXECUTE,
    fill_event,
    kline_event,
    order_event,
    tick_event,
)
from trader_api.services.hub import EventHub
from trader_api.services.metrics import Metrics
from trader_api.services.orders import OrderError, OrderService, OrderTicket
from trader_api.storage import EventBus, StorageError, Store
from trader_api.strategy import StrategyEngine

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0
"""How often the leader looks for committed ``new`` orders nobody executed yet."""

RETENTION_SECONDS = 24 * 3600.0

ANNOUNCE_WAIT_SECONDS = 1.0
"""How long a handed-over order's execution waits for its ``new`` event to go out.

NB: a bound, so a stalled Redis delays executions by at most this, never stops them.
"""


class KlineBuilder(Protocol):
    """Turns ticks into klines; returns the klines each tick closed."""

    def on_tick(self, tick: Tick) -> list[Kline]: ...


@dataclass(frozen=True, slots=True)
class _Execute:
    order_id: uuid.UUID
    committed: Order | None = None
    """The order as this replica just committed it, when handed over in process."""
    announced: asyncio.Task[None] | None = None
    """Publishes the committed order's ``new`` event; its execution waits for it."""


@dataclass(frozen=True, slots=True)
class _Cancel:
    order_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class _Price:
    tick: Tick


_Operation = _Execute | _Cancel | _Price


def utc_now() -> datetime:
    return datetime.now(UTC)


class TradingEngine:
    """Run market data, strategies and the executor while this replica leads."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        bus: EventBus,
        hub: EventHub,
        risk: RiskManager,
        strategies: StrategyEngine,
        orders: OrderService,
        marks: dict[str, Decimal],
        metrics: Metrics,
        feed_factory: Callable[[], MarketFeed[Tick | Kline]],
        kline_builder_factory: Callable[[], KlineBuilder],
        broker: Broker,
        breaker: CircuitBreaker,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._settings = settings
        self._store = store
        self._bus = bus
        self._hub = hub
        self._risk = risk
        self._strategies = strategies
        self._orders = orders
        self._marks = marks
        self._metrics = metrics
        self._feed_factory = feed_factory
        self._kline_builder_factory = kline_builder_factory
        self._broker = broker
        self._breaker = breaker
        self._clock = clock
        self._queue: asyncio.Queue[_Operation] = asyncio.Queue(maxsize=10_000)
        self._unsaved: list[OrderUpdate] = []
        self._queued_executions: set[uuid.UUID] = set()
        self._untouched: set[uuid.UUID] = set()
        self._waiting: set[uuid.UUID] = set()
        """Orders the broker holds until their symbol's first price (stored as they were)."""
        self.failure: str | None = None
        self.running = False

    def executor_problem(self) -> str | None:
        """Return why orders cannot reach the broker now (readiness), or None."""
        if self._breaker.state is CircuitState.OPEN:
            return f"circuit breaker {self._breaker.name} open"
        return None

    async def run(self) -> None:
        """Trade until cancelled (the lease was lost or the service stops)."""
        self.failure = None
        self.running = True
        self._queue = asyncio.Queue(maxsize=10_000)
        self._queued_executions = set()
        self._untouched = set()
        self._waiting = set()
        try:
            await self._warm_up()
            await self._restore_resting_orders()
            self._orders.local_executor = self._take_committed
            # NB: anyio's group, not asyncio.TaskGroup: it cancels a child again at
            # its next await when the first cancel was swallowed (Python 3.11's
            # wait_for can), where asyncio's waits for that child for ever and the
            # engine never stops (an app's shutdown hung 300 s in CI on this).
            async with anyio.create_task_group() as group:
                group.start_soon(self._execute_forever, name="executor")
                group.start_soon(self._listen_for_commands, name="commands")
                group.start_soon(self._sweep_forever, name="sweeper")
                group.start_soon(self._consume_market, name="market")
                group.start_soon(self._retention_forever, name="retention")
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.failure = f"strategy engine stopped: {_describe(exc)}"
            logger.exception("Trading engine crashed")
            raise
        finally:
            if self._orders.local_executor == self._take_committed:
                self._orders.local_executor = None
            self.running = False

    async def _warm_up(self) -> None:
        """Refill strategy windows from stored klines, so a new leader trades at once."""
        seen: set[tuple[str, str]] = set()
        for config in self._strategies.list():
            key = (config.symbol, config.interval.value)
            if key in seen:
                continue
            seen.add(key)
            window = len(self._strategies.window(config.symbol, config.interval))
            klines = await self._store.query_klines(
                symbol=config.symbol, interval=config.interval, limit=5000
            )
            for kline in klines[window:]:
                self._strategies.on_kline(kline)  # history: its signals are stale, not traded

    async def _restore_resting_orders(self) -> None:
        """Hand the broker the open orders a previous leader left resting on its exchange.

        NB: the paper exchange lives in the leader's process; without this a
        failover would leave those orders ``open`` in the store and never filled.
        Submission is idempotent, so orders this broker already holds are untouched.
        """
        for order in await self._store.list_orders(status=OrderStatus.OPEN, limit=1000):
            if order.filled_quantity != 0:
                logger.warning("Partially filled order %s not restored on this exchange", order.id)
                continue
            try:
                result = await self._broker.submit(order)
            except BrokerError as exc:
                logger.warning("Resting order %s not restored: %s", order.id, exc)
                continue
            if result.duplicate:
                continue
            logger.info("Restored resting order", extra={"order_id": str(order.id)})
            if self._waits(result):
                continue  # stays open: it rested on the last leader's book
            if result.fills or result.order.status is not order.status:
                await self._apply_updates([result], base=order)

    # -- market data -> strategies -----------------------------------------

    async def _consume_market(self) -> None:
        builder = self._kline_builder_factory()
        async for event in self._feed_factory():
            _raise_if_cancelled()
            if isinstance(event, Tick):
                await self._on_tick(event)
                closed: Iterable[Kline] = builder.on_tick(event)
            else:
                # NB: a kline feed (CSV replay) has no trades: its close is the
                # price that marks positions, fills resting orders and values
                # market orders, so it is applied before strategies see the kline.
                await self._on_tick(Tick(event.symbol, event.close, Decimal(0), event.close_time))
                closed = (event,)
            klines = list(closed)
            if klines:
                try:
                    await self._on_klines(klines)
                except StorageError as exc:
                    logger.warning("Klines not stored (%d lost): %s", len(klines), exc)

    async def _on_tick(self, tick: Tick) -> None:
        self._marks[tick.symbol] = tick.price
        logger.log(TRACE, "tick", extra={"symbol": tick.symbol, "price": str(tick.price)})
        await self._publish(tick_event(tick))
        await self._queue.put(_Price(tick))

    async def _on_klines(self, klines: list[Kline]) -> None:
        await self._store.insert_klines(klines)
        self._metrics.klines_ingested.inc(len(klines))
        for kline in klines:
            await self._publish(kline_event(kline))
            for signal in self._strategies.on_kline(kline):
                self._metrics.signals.labels(signal.strategy).inc()
                logger.info(
                    "Signal",
                    extra={
                        "strategy": signal.strategy,
                        "symbol": signal.symbol,
                        "side": signal.side.value,
                        "reason": signal.reason,
                    },
                )
                ticket = OrderTicket(
                    client_order_id=f"{signal.strategy}:{signal.symbol}:{signal.ts.isoformat()}",
                    symbol=signal.symbol,
                    side=signal.side,
                    type=OrderType.MARKET,
                    quantity=signal.quantity,
                    strategy=signal.strategy,
                )
                try:
                    order, _ = await self._orders.submit(ticket)
                except OrderError as exc:
                    logger.info("Signal not traded: %s", exc, extra={"strategy": signal.strategy})
                    continue
                await self._enqueue_execute(order.id)

    # -- commands and sweeps -> the executor queue ---------------------------

    async def _listen_for_commands(self) -> None:
        with self._hub.listen(maxsize=10_000) as listener:
            while True:
                event = await listener.get()
                _raise_if_cancelled()
                kind = event.get("type")
                if kind not in (EXECUTE, CANCEL):
                    continue
                try:
                    order_id = uuid.UUID(str(event.get("order_id")))
                except ValueError:
                    logger.warning("Ignored a command with a bad order id: %r", event)
                    continue
                if kind == EXECUTE:
                    await self._enqueue_execute(order_id)
                else:
                    await self._queue.put(_Cancel(order_id))

    async def _enqueue_execute(self, order_id: uuid.UUID) -> None:
        """Queue an execution unless one is queued already (commands and sweeps overlap)."""
        if order_id in self._queued_executions:
            return
        self._queued_executions.add(order_id)
        await self._queue.put(_Execute(order_id))

    def _take_committed(self, order: Order, announced: asyncio.Task[None]) -> bool:
        """Queue an order this replica just committed, with the order itself; False if full.

        NB: the queued copy is used only if nothing saved the order since (a
        cancel runs through the same queue and may come first): the executor
        then reads the store as it does for any command.
        """
        if order.id in self._queued_executions:
            return True
        try:
            self._queue.put_nowait(_Execute(order.id, committed=order, announced=announced))
        except asyncio.QueueFull:
            return False
        self._queued_executions.add(order.id)
        self._untouched.add(order.id)
        return True

    async def _sweep_forever(self) -> None:
        while True:
            _raise_if_cancelled()
            try:
                pending = await self._store.list_orders(status=OrderStatus.NEW, limit=500)
            except Exception as exc:  # noqa: BLE001 - retried next sweep; the cause is logged
                logger.warning("Sweep for new orders failed: %s", exc)
                pending = []
            for order in reversed(pending):  # oldest first
                if order.id not in self._orders.committing:  # its submitter hands it over
                    await self._enqueue_execute(order.id)
            await asyncio.sleep(SWEEP_SECONDS)

    async def _retention_forever(self) -> None:
        """Drop old klines daily, unless TimescaleDB's retention policy does it already."""
        while True:
            try:
                status = await self._store.retention_status()
                if status.engine_retention:
                    before = self._clock() - timedelta(days=self._settings.klines_retention_days)
                    deleted = await self._store.delete_klines_before(before)
                    logger.info(
                        "Klines retention", extra={"deleted": deleted, "before": before.isoformat()}
                    )
            except Exception as exc:  # noqa: BLE001 - retried tomorrow; the cause is logged
                logger.warning("Klines retention failed: %s", exc)
            await asyncio.sleep(RETENTION_SECONDS)

    # -- the executor --------------------------------------------------------

    async def _execute_forever(self) -> None:
        """Apply operations one at a time; a failed one is logged, never fatal.

        NB: fills the broker made on a price move exist only in the broker
        until stored; if storing fails they are kept and stored before the
        next operation. Failed executions need no such care: the order stays
        ``new``, the sweep retries it, and the broker answers the retry with
        the same fills (idempotent by ``client_order_id``), which
        ``record_fill`` stores once.
        """
        while True:
            _raise_if_cancelled()
            operation = await self._queue.get()
            fresh = False
            if isinstance(operation, _Execute):
                # NB: released before anything can fail: an execution dropped
                # below (e.g. storing the unsaved fills fails first) is queued
                # again by the next sweep or command instead of being skipped
                # as "already queued" until leadership changes.
                self._queued_executions.discard(operation.order_id)
                fresh = operation.order_id in self._untouched
                self._untouched.discard(operation.order_id)
            try:
                if self._unsaved:
                    await self._apply_updates(self._unsaved)
                    self._unsaved = []
                match operation:
                    case _Execute(order_id, committed, announced):
                        if not fresh:
                            committed = None
                        if announced is not None:
                            await asyncio.wait([announced], timeout=ANNOUNCE_WAIT_SECONDS)
                        await self._execute(order_id, committed=committed)
                    case _Cancel(order_id):
                        await self._cancel(order_id)
                    case _Price(tick):
                        updates = self._broker.on_price(tick.symbol, tick.price, at=tick.ts)
                        self._waiting.difference_update(update.order.id for update in updates)
                        self._unsaved.extend(updates)
                        await self._apply_updates(updates)
                        self._unsaved = []
            except StorageError as exc:
                logger.warning("Executor could not reach storage: %s", exc)
            except Exception:  # one bad operation must not stop all trading
                logger.exception("Executor operation %r failed", operation)

    async def _execute(self, order_id: uuid.UUID, *, committed: Order | None = None) -> None:
        order = committed if committed is not None else await self._store.get_order(order_id)
        if order is None or order.status is not OrderStatus.NEW:
            return
        state = self._risk.halt_state
        if state is not None:
            reason = f"{RejectCode.KILL_SWITCH.value}: trading is halted: {state.reason}"
            await self._save(
                order.with_status(OrderStatus.REJECTED, at=self._clock(), reason=reason)
            )
            self._metrics.risk_rejections.labels(RejectCode.KILL_SWITCH.value).inc()
            return
        if self.executor_problem() is not None:
            return  # stays new; the sweep retries once the breaker lets calls through
        try:
            result = await self._broker.submit(order)
        except BrokerError as exc:
            if isinstance(exc, (CircuitOpenError, TransientBrokerError)):
                logger.warning("Order %s waits: %s", order.id, exc)
                return
            reason = f"broker_error: {exc}"
            await self._save(
                order.with_status(OrderStatus.REJECTED, at=self._clock(), reason=reason)
            )
            return
        if self._waits(result):
            return  # stays new; the symbol's first price fills or rests it
        await self._apply_updates([result], base=order)

    def _waits(self, result: SubmitResult) -> bool:
        """Note an order the broker holds for its symbol's first price; True if it does.

        NB: nothing is stored for it: its stored state is still true (new, or
        open for one restored from the last leader's book), and storing it
        again on every sweep would only repeat events. The first price
        reports it (``on_price``) and that update is stored.
        """
        if result.order.status is not OrderStatus.NEW or result.fills:
            return False
        if not result.duplicate and result.order.id not in self._waiting:
            logger.info(
                "Order waits for the first price of %s",
                result.order.symbol,
                extra={"order_id": str(result.order.id)},
            )
        self._waiting.add(result.order.id)
        return True

    async def _cancel(self, order_id: uuid.UUID) -> None:
        order = await self._store.get_order(order_id)
        if order is None:
            return
        if order.status.is_terminal:
            await self._publish(order_event(order))  # wake the waiter with the final state
            return
        if order.status is OrderStatus.NEW and order.id not in self._waiting:
            # NB: never sent, so nothing to ask the broker (which may be down).
            await self._save(order.with_status(OrderStatus.CANCELLED, at=self._clock()))
            return
        try:
            cancelled = await self._broker.cancel(order)
        except (OrderNotOpenError, UnknownOrderError):
            current = await self._store.get_order(order_id)
            if current is not None and not current.status.is_terminal:
                # NB: the broker no longer knows it (a new leader's paper exchange):
                # nothing can fill it any more, so it is cancelled.
                current = current.with_status(OrderStatus.CANCELLED, at=self._clock())
                await self._save(current)
            elif current is not None:
                await self._publish(order_event(current))
            return
        except BrokerError as exc:
            logger.warning("Cancel of %s failed: %s", order_id, exc)
            await self._publish(order_event(order))
            return
        self._waiting.discard(order_id)
        await self._save(cancelled)

    async def _apply_updates(
        self, updates: Iterable[OrderUpdate], *, base: Order | None = None
    ) -> None:
        for update in updates:
            # NB: record_fill reads the stored order itself (under its lock) and
            # returns it, so an update with fills needs no read of its own.
            current = base
            for fill in update.fills:
                current = await self._record_fill(current or update.order, fill)
            if current is None:
                current = await self._store.get_order(update.order.id) or update.order
            final = _merge(current, update.order)
            if final != current or not update.fills:
                await self._save(final)
            else:
                self._metrics.orders.labels(final.side.value, final.status.value).inc()
                await self._publish(order_event(final))

    async def _record_fill(self, order: Order, fill: Fill) -> Order:
        self._untouched.discard(order.id)
        stored = await self._store.record_fill(fill=fill, order=order)
        if stored.recorded:
            self._metrics.fills.labels(fill.side.value).inc()
            logger.info(
                "Fill",
                extra={
                    "order_id": str(order.id),
                    "symbol": fill.symbol,
                    "side": fill.side.value,
                    "quantity": str(fill.quantity),
                    "price": str(fill.price),
                },
            )
            await self._publish(fill_event(fill))
        return stored.order

    async def _save(self, order: Order) -> None:
        self._untouched.discard(order.id)
        stored = await self._store.update_order(order)
        self._metrics.orders.labels(stored.side.value, stored.status.value).inc()
        await self._publish(order_event(stored))

    async def _publish(self, event: dict[str, object]) -> None:
        try:
            await self._bus.publish(event)
        except StorageError as exc:
            logger.debug("Event not published: %s", exc)


def _raise_if_cancelled() -> None:
    """Raise the cancellation of the current task if an await below swallowed it.

    NB: on Python 3.11 ``asyncio.wait_for``, which redis-py wraps around every
    command, can return normally when the command completes just as the
    cancel lands (bpo-42130, fixed in 3.12). A loop that publishes a tick
    after another then runs on, and stopping the engine (losing the lease,
    shutting down) waits for ever. ``Task.cancelling()`` still counts the
    request.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _merge(ours: Order, brokers: Order) -> Order:
    """Take the broker's status for an order whose fills we already applied ourselves."""
    if brokers.status is ours.status:
        return ours
    if ours.status is OrderStatus.FILLED and brokers.status is not OrderStatus.FILLED:
        return ours
    return ours.with_status(brokers.status, at=brokers.updated_at, reason=brokers.reject_reason)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"
