"""``Runtime``: every long-lived part of one trader-api replica, started and stopped in order.

A replica always serves the API. It also competes for the leader lease; the
holder runs the trading engine (market data, strategies, executor). Every
replica listens to the event bus, so its WebSockets see every order, fill and
tick, and its risk manager and strategy switches follow the others'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from trader_api.config import Settings
from trader_api.domain import Interval, Kline, Tick
from trader_api.execution import (
    CircuitBreaker,
    CircuitTransition,
    PaperExchange,
    ResilientBroker,
    RetryEvent,
)
from trader_api.marketdata import MarketFeed, SimulatedFeed, SimulatedMarket, resume_market
from trader_api.risk import HaltState, RiskLimits, RiskManager
from trader_api.services.control import ControlState
from trader_api.services.engine import KlineBuilder, TradingEngine
from trader_api.services.events import Event
from trader_api.services.health import EMBEDDED, Probe, Readiness, check_readiness
from trader_api.services.hub import EventHub
from trader_api.services.metrics import Metrics
from trader_api.services.orders import OrderService
from trader_api.services.tasks import cancel_and_wait, describe_stack
from trader_api.storage import (
    EventBus,
    LeaderLease,
    MemoryEventBus,
    MemoryLeaderLease,
    MemoryStore,
    MemoryTokenBucketLimiter,
    RateLimiter,
    RedisEventBus,
    RedisLeaderLease,
    RedisTokenBucketLimiter,
    StorageError,
    StorageUnavailableError,
    Store,
    connect_redis,
    ping_redis,
)
from trader_api.strategy import StrategyConfig, StrategyEngine, UnknownStrategyError

logger = logging.getLogger(__name__)

LEASE_NAME = "trader-api"

MarketFactory = Callable[
    [Settings], tuple[Callable[[], MarketFeed[Tick | Kline]], Callable[[], KlineBuilder]]
]
"""Build, for the engine, a fresh market feed and kline builder each time it starts leading."""


DEFAULT_START_PRICES: dict[str, Decimal] = {
    "BTCUSDT": Decimal(50000),
    "ETHUSDT": Decimal(3000),
}
"""Where the simulated walk of a symbol starts; other symbols start at 100."""


async def last_klines(store: Store, symbols: Iterable[str]) -> dict[str, Kline]:
    """Return the newest stored 1m kline of each of ``symbols`` that has one.

    NB: 1m is the finest interval the engine builds (``default_market``
    always aggregates it), so its newest kline holds the latest stored price.
    """
    last: dict[str, Kline] = {}
    for symbol in symbols:
        newest = await store.query_klines(symbol=symbol, interval=Interval.M1, limit=1)
        if newest:
            last[symbol] = newest[-1]
    return last


class StoredSimulatedFeed:
    """Play a ``SimulatedMarket`` carried on from the store's last klines: a ``MarketFeed[Tick]``.

    NB: the store is read when iteration begins, i.e. when a leader's engine
    starts consuming the market, so a new leader walks on from the last
    price its predecessor stored rather than from the seed's opening prices.
    """

    def __init__(self, market: SimulatedMarket, *, store: Store, speed: float) -> None:
        self.market = market
        self._store = store
        self._speed = speed

    async def __aiter__(self) -> AsyncIterator[Tick]:
        last = await last_klines(self._store, self.market.symbols)
        market = resume_market(self.market, last)
        if market is not self.market:
            logger.info(
                "Simulated market resumed from the stored klines",
                extra={
                    "start": market.start.isoformat(),
                    "prices": {symbol: str(kline.close) for symbol, kline in last.items()},
                },
            )
        async for tick in SimulatedFeed(market, speed=self._speed):
            yield tick


def default_market(
    settings: Settings, *, store: Store | None = None
) -> tuple[Callable[[], MarketFeed[Tick | Kline]], Callable[[], KlineBuilder]]:
    """Return the engine's market: replayed klines, or the seeded simulated market.

    With ``MARKET_REPLAY_CSV`` its klines are replayed at ``MARKET_SPEED``;
    otherwise ``SYMBOLS`` trade in a random walk aggregated into the intervals
    the strategies need, carried on from ``store``'s last klines when given
    (``StoredSimulatedFeed``).
    """
    from trader_api.marketdata import CsvReplayFeed, KlineAggregator

    intervals = {Interval.M1, *(strategy.interval for strategy in settings.strategies)}
    start_prices = {
        symbol: DEFAULT_START_PRICES.get(symbol, Decimal(100)) for symbol in settings.symbols
    }

    def feed() -> MarketFeed[Tick | Kline]:
        if settings.market_replay_csv is not None:
            return CsvReplayFeed(settings.market_replay_csv, speed=settings.market_speed)
        now = datetime.now(UTC).replace(microsecond=0)
        market = SimulatedMarket(
            seed=settings.market_seed,
            start_prices=start_prices,
            start=now,
            tick_step=timedelta(seconds=settings.market_tick_seconds),
        )
        if store is None:
            return SimulatedFeed(market, speed=settings.market_speed)
        return StoredSimulatedFeed(market, store=store, speed=settings.market_speed)

    def builder() -> KlineBuilder:
        return KlineAggregator(intervals)

    return feed, builder


_BUS_RETRY_SECONDS = 1.0
_LIMITER_WARNING_SECONDS = 10.0
# How long one background task may take to end after its cancel.
_TASK_STOP_SECONDS = 5.0


async def open_store(settings: Settings) -> Store:
    """Connect the PostgreSQL store (migrated), or return the in-process one.

    NB: retries for ``DATABASE_CONNECT_TIMEOUT_SECONDS``, so a pod that starts
    before its database waits for it instead of crash-looping at once.
    """
    dsn = settings.database_dsn
    if dsn is None:
        return MemoryStore(retention_days=settings.klines_retention_days)
    from trader_api.storage.postgres import PostgresStore
    from trader_api.storage.timescale import KlinesPolicy

    policy = KlinesPolicy(
        compress_after_days=settings.klines_compress_after_days,
        retention_days=settings.klines_retention_days,
    )
    deadline = time.monotonic() + settings.database_connect_timeout_seconds
    delay = 0.5
    while True:
        try:
            return await PostgresStore.connect(
                dsn, policy=policy, max_size=settings.database_pool_size
            )
        except StorageUnavailableError as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("Database not reachable yet; retrying in %.1fs: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class Runtime:
    """The parts of one replica and the tasks that keep them going."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        limiter: RateLimiter,
        lease: LeaderLease,
        bus: EventBus,
        redis: Redis | None = None,
        registry: CollectorRegistry | None = None,
        market: MarketFactory | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.limiter = limiter
        self.lease = lease
        self.bus = bus
        self.redis = redis
        self.metrics = Metrics(registry if registry is not None else CollectorRegistry())
        self.hub = EventHub()
        self.controls = ControlState(redis)
        self.marks: dict[str, Decimal] = {}
        self.risk = RiskManager(
            RiskLimits(
                max_order_notional=settings.risk_max_order_notional,
                max_position_notional=settings.risk_max_position_notional,
                max_open_orders=settings.risk_max_open_orders,
                daily_loss_limit=settings.risk_daily_loss_limit,
            ),
            on_halt=self._on_local_halt,
        )
        self.strategies = StrategyEngine(list(settings.strategies))
        self.orders = OrderService(
            store=store,
            bus=bus,
            hub=self.hub,
            risk=self.risk,
            marks=self.marks,
            symbols=frozenset(settings.symbols),
            metrics=self.metrics,
        )
        self.breaker = CircuitBreaker(name="broker", on_state_change=self._on_circuit_change)
        self.exchange = PaperExchange()
        self.broker = ResilientBroker(
            self.exchange, breaker=self.breaker, on_retry=self._on_broker_retry
        )
        feed_factory, builder_factory = (
            market(settings) if market is not None else default_market(settings, store=store)
        )
        self.engine = TradingEngine(
            settings=settings,
            store=store,
            bus=bus,
            hub=self.hub,
            risk=self.risk,
            strategies=self.strategies,
            orders=self.orders,
            marks=self.marks,
            metrics=self.metrics,
            broker=self.broker,
            breaker=self.breaker,
            feed_factory=feed_factory,
            kline_builder_factory=builder_factory,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._publishing: set[asyncio.Task[None]] = set()
        self._engine_task: asyncio.Task[None] | None = None
        self._applying_remote = False
        self._bus_connected = asyncio.Event()
        self._last_limiter_warning = 0.0

    @classmethod
    async def from_settings(
        cls,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        market: MarketFactory | None = None,
    ) -> Runtime:
        """Build the replica that ``settings`` describe: PostgreSQL/Redis, or embedded."""
        if settings.embedded:
            logger.warning(
                "EMBEDDED MODE: no DATABASE_URL/DATABASE_HOST and no REDIS_URL/REDIS_HOST; "
                "orders, fills and positions live in memory and are LOST on exit. "
                "Do not run more than one replica like this."
            )
        store = await open_store(settings)
        redis_url = settings.redis_dsn
        if redis_url is None:
            if not settings.embedded:
                logger.warning(
                    "No Redis configured: rate limits, leader lease and events are in-process; "
                    "run a single replica only"
                )
            return cls(
                settings=settings,
                store=store,
                limiter=MemoryTokenBucketLimiter(),
                lease=MemoryLeaderLease(
                    name=LEASE_NAME,
                    identity=settings.pod_name,
                    ttl_s=settings.leader_lease_seconds,
                ),
                bus=MemoryEventBus(),
                registry=registry,
                market=market,
            )
        redis = connect_redis(redis_url)
        return cls(
            settings=settings,
            store=store,
            limiter=RedisTokenBucketLimiter(redis),
            lease=RedisLeaderLease(
                redis,
                name=LEASE_NAME,
                identity=settings.pod_name,
                ttl_s=settings.leader_lease_seconds,
            ),
            bus=RedisEventBus(redis),
            redis=redis,
            registry=registry,
            market=market,
        )

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Start listening to the bus and competing for the lease.

        NB: waits (briefly) for the bus subscription, so nothing published
        right after start is missed by this replica's WebSockets.
        """
        await self._restore_controls()
        self._tasks.append(asyncio.create_task(self._pump_bus(), name="bus-pump"))
        self._tasks.append(asyncio.create_task(self._consume_events(), name="event-consumer"))
        self._tasks.append(asyncio.create_task(self._lead(), name="leadership"))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._bus_connected.wait()
        logger.info(
            "trader-api started",
            extra={
                "pod": self.settings.pod_name,
                "embedded": self.settings.embedded,
                "strategies": [s.name for s in self.strategies.list()],
            },
        )

    async def stop(self) -> None:
        """Stop trading, give up the lease, close the bus and the store, in that order.

        NB: the leadership loop stops first: while the engine was being
        cancelled, it found no engine running, still held the lease, and
        started a second one that nothing stopped.
        """
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            if not await cancel_and_wait(task, grace_seconds=_TASK_STOP_SECONDS):
                # A shutdown goes on: the process exits after this anyway.
                logger.error(
                    "Background task still running %.0f s after its cancel; left behind",
                    _TASK_STOP_SECONDS,
                    extra={"task": task.get_name(), "stack": describe_stack(task)},
                )
            elif not task.cancelled() and task.exception() is not None:
                logger.debug("Background task had failed", exc_info=task.exception())
        self._tasks.clear()
        await self._stop_engine()
        with contextlib.suppress(StorageError):
            await self.lease.release()
        self.metrics.leader.set(0)
        with contextlib.suppress(StorageError):
            await self.bus.close()
        await self.store.close()
        if self.redis is not None:
            await self.redis.aclose()
        logger.info("trader-api stopped: lease released, connections closed")

    # -- readiness and rate limits -----------------------------------------

    async def readiness(self) -> Readiness:
        return await check_readiness(self._probes())

    def _probes(self) -> dict[str, Probe]:
        async def strategy_engine() -> str | None:
            return self.engine.failure

        async def risk_manager() -> str | None:
            return None

        async def executor() -> str | None:
            return self.engine.executor_problem()

        async def database() -> str | None:
            if self.settings.database_dsn is None:
                return EMBEDDED
            try:
                await self.store.ping()
            except StorageError:
                return "database unreachable"
            return None

        async def redis() -> str | None:
            if self.redis is None:
                return EMBEDDED
            try:
                await ping_redis(self.redis)
            except StorageUnavailableError:
                return "redis unreachable"
            return None

        return {
            "strategy_engine": strategy_engine,
            "risk_manager": risk_manager,
            "executor": executor,
            "database": database,
            "redis": redis,
        }

    async def rate_limit(self, client_ip: str) -> float:
        """Take a token for ``client_ip``; return 0 if allowed, else seconds to wait.

        NB: fails open: if Redis is down the API keeps serving (readiness
        already reports it) rather than refusing every client.
        """
        try:
            decision = await self.limiter.acquire(
                f"ip:{client_ip}",
                rate=self.settings.rate_limit_per_second,
                burst=self.settings.rate_limit_burst,
            )
        except StorageUnavailableError:
            now = asyncio.get_running_loop().time()
            if now - self._last_limiter_warning > _LIMITER_WARNING_SECONDS:
                self._last_limiter_warning = now
                logger.warning("Rate limiter unavailable (redis unreachable); not throttling")
            return 0.0
        return 0.0 if decision.allowed else max(decision.retry_after_s, 0.001)

    def _on_circuit_change(self, transition: CircuitTransition) -> None:
        self.metrics.circuit_breaker_state.set(transition.current.metric_value)
        logger.warning(
            str(transition),
            extra={"circuit": transition.name, "state": transition.current.value},
        )

    def _on_broker_retry(self, event: RetryEvent) -> None:
        logger.warning(
            "Broker %s failed (attempt %d); retrying in %.2fs: %s",
            event.operation,
            event.attempt,
            event.delay,
            event.error,
        )

    # -- kill switch and strategy switches, replicated over the bus ---------

    def _on_local_halt(self, state: HaltState | None) -> None:
        # NB: before the early return: a halt applied from another replica is a halt here too.
        self.metrics.kill_switch_engaged.set(0 if state is None else 1)
        self.metrics.daily_loss_limit_halted.set(1 if state is not None and state.automatic else 0)
        if self._applying_remote:
            return
        event: Event = {
            "type": "risk",
            "halted": state is not None,
            "reason": state.reason if state is not None else None,
            # NB: carried so every replica tells a daily-loss halt from a person's kill
            # switch (GET /api/v1/risk may be answered by any of them).
            "automatic": state is not None and state.automatic,
        }
        task = asyncio.get_running_loop().create_task(self._broadcast_halt(state, event))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _broadcast_halt(self, state: HaltState | None, event: Event) -> None:
        try:
            await self.controls.save_halt(state)
        except StorageUnavailableError:
            logger.error("Kill switch change NOT persisted: redis unreachable")  # noqa: TRY400 - the cause is the message
        await self._publish_quietly(event)

    async def set_kill_switch(self, *, engaged: bool, reason: str) -> HaltState | None:
        """Engage or release the kill switch on every replica, and keep it across restarts."""
        if engaged:
            self.risk.halt(reason)
            logger.warning("Kill switch engaged", extra={"reason": reason})
        else:
            self.risk.resume()
            logger.warning("Kill switch released", extra={"reason": reason})
        if self._publishing:
            await asyncio.gather(*self._publishing, return_exceptions=True)
        return self.risk.halt_state

    async def leader(self) -> str | None:
        """Return the pod that holds the leader lease (runs the engine), None if unknown.

        NB: None also when Redis cannot be asked: a status read must not fail
        because one of its fields is unavailable.
        """
        try:
            return await self.lease.holder()
        except StorageUnavailableError:
            return None

    async def set_strategy_enabled(self, name: str, *, enabled: bool) -> StrategyConfig:
        """Enable or disable a strategy on every replica; raise ``UnknownStrategyError``."""
        config = self.strategies.enable(name) if enabled else self.strategies.disable(name)
        try:
            await self.controls.save_strategy(name, enabled=enabled)
        except StorageUnavailableError:
            logger.error("Strategy switch NOT persisted: redis unreachable")  # noqa: TRY400 - the cause is the message
        await self._publish_quietly({"type": "strategy", "name": name, "enabled": enabled})
        return config

    async def _restore_controls(self) -> None:
        """Apply the kill switch and strategy switches saved by any replica before us."""
        try:
            saved = await self.controls.load()
        except StorageUnavailableError:
            logger.warning("Saved controls not read (redis unreachable); using the env config")
            return
        self._applying_remote = True
        try:
            if saved.halt is not None:
                reason, automatic = saved.halt
                self.risk.halt(reason, automatic=automatic)
                logger.warning("Kill switch engaged from saved state", extra={"reason": reason})
            for name, enabled in saved.strategies.items():
                with contextlib.suppress(UnknownStrategyError):
                    _ = self.strategies.enable(name) if enabled else self.strategies.disable(name)
        finally:
            self._applying_remote = False

    async def _publish_quietly(self, event: Event) -> None:
        try:
            await self.bus.publish(event)
        except StorageUnavailableError:
            logger.warning("Could not publish %s event: redis unreachable", event.get("type"))

    def _apply_remote(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "tick":
            with contextlib.suppress(ArithmeticError, KeyError, TypeError, ValueError):
                self.marks[str(event["symbol"])] = Decimal(str(event["price"]))
        elif kind == "risk":
            self._applying_remote = True
            try:
                if event.get("halted") and not self.risk.halted:
                    self.risk.halt(
                        str(event.get("reason") or "halted on another replica"),
                        automatic=event.get("automatic") is True,
                    )
                elif not event.get("halted") and self.risk.halted:
                    self.risk.resume()
            finally:
                self._applying_remote = False
        elif kind == "strategy":
            with contextlib.suppress(UnknownStrategyError):
                if event.get("enabled"):
                    self.strategies.enable(str(event.get("name")))
                else:
                    self.strategies.disable(str(event.get("name")))

    # -- background tasks --------------------------------------------------

    async def _pump_bus(self) -> None:
        """Feed the bus into the hub for ever, resubscribing when Redis comes back."""
        while True:
            try:
                async with self.bus.subscribe() as events:
                    self._bus_connected.set()
                    async for event in events:
                        self.hub.dispatch(event)
            except StorageUnavailableError as exc:
                logger.warning("Event bus subscription lost; retrying", extra={"error": str(exc)})
            await asyncio.sleep(_BUS_RETRY_SECONDS)

    async def _consume_events(self) -> None:
        with self.hub.listen(maxsize=10_000) as listener:
            while True:
                event = await listener.get()
                self._apply_remote(event)

    async def _lead(self) -> None:
        """Hold the lease while alive; run the engine exactly while holding it."""
        interval = self.settings.leader_lease_seconds / 3
        while True:
            try:
                leader = await (
                    self.lease.renew() if self.lease.is_leader else self.lease.try_acquire()
                )
            except StorageUnavailableError:
                leader = self.lease.is_leader  # until the local TTL runs out
            crashed = self._engine_task is not None and self._engine_task.done()
            if crashed:
                self._engine_task = None  # readiness keeps the cause until it runs again
                logger.warning(
                    "Restarting the crashed engine", extra={"cause": self.engine.failure}
                )
            if leader and self._engine_task is None:
                logger.info("Leader lease acquired: starting the engine")
                # A new term starts from the store, not from this replica's last
                # term (another leader may have traded and cancelled since).
                self.exchange.forget()
                self.metrics.leader.set(1)
                self._engine_task = asyncio.create_task(self.engine.run(), name="engine")
            elif not leader and self._engine_task is not None:
                logger.warning("Leader lease lost: stopping the engine")
                await self._stop_engine()
            await asyncio.sleep(interval)

    async def _stop_engine(self) -> None:
        task, self._engine_task = self._engine_task, None
        self.metrics.leader.set(0)
        if task is None:
            return
        # NB: never given up on: an engine left running after the lease is lost
        # would trade beside the next leader's.
        while not await cancel_and_wait(task, grace_seconds=_TASK_STOP_SECONDS):
            logger.error(
                "Engine still running %.0f s after its cancel; cancelling it again",
                _TASK_STOP_SECONDS,
                extra={"stack": describe_stack(task)},
            )
        if not task.cancelled() and task.exception() is not None:
            # It crashed earlier; readiness reported why.
            logger.debug("Engine had stopped with an error", exc_info=task.exception())
