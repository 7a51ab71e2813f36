"""The engine's Prometheus series, registered on a registry the caller owns.

NB: every collector lives on an explicit ``CollectorRegistry`` (one per app),
never the process-global default, so two apps in one test process, or two
replicas in one interpreter, never collide or double count.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every series trader-api exports, HTTP and engine alike."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status code.",
            ("method", "path", "status"),
            registry=registry,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ("method", "path"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.websocket_connections = Gauge(
            "websocket_connections",
            "Open WebSocket connections on /ws.",
            registry=registry,
        )
        self.orders = Counter(
            "orders_total",
            "Orders by side and the status they reached (new, filled, rejected, ...).",
            ("side", "status"),
            registry=registry,
        )
        self.signals = Counter(
            "signals_total",
            "Signals emitted by strategies.",
            ("strategy",),
            registry=registry,
        )
        self.risk_rejections = Counter(
            "risk_rejections_total",
            "Orders refused by the risk manager, by reason code.",
            ("reason",),
            registry=registry,
        )
        self.fills = Counter(
            "fills_total",
            "Executions received from the broker.",
            ("side",),
            registry=registry,
        )
        self.circuit_breaker_state = Gauge(
            "circuit_breaker_state",
            "Broker circuit breaker: 0 closed, 1 half-open, 2 open.",
            registry=registry,
        )
        self.kill_switch_engaged = Gauge(
            "kill_switch_engaged",
            "1 while the kill switch refuses every new order (engaged by a person or by the"
            " daily loss limit).",
            registry=registry,
        )
        self.daily_loss_limit_halted = Gauge(
            "daily_loss_limit_halted",
            "1 while trading is halted because the day's realized loss reached the daily loss"
            " limit.",
            registry=registry,
        )
        self.leader = Gauge(
            "leader",
            "1 while this replica holds the leader lease and runs strategies and the executor.",
            registry=registry,
        )
        self.klines_ingested = Counter(
            "klines_ingested_total",
            "Closed klines stored by the engine.",
            registry=registry,
        )
