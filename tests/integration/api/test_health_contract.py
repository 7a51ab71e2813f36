"""The seed's probes on real PostgreSQL and Redis, including each one going away and back."""

from __future__ import annotations

import re

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support.servers import PostgresServer, RedisServer
from trader_api import __version__
from unit.workload.api_support import SEED_METRIC_FAMILIES, eventually

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
ALL_HEALTHY = {
    "strategy_engine": "healthy",
    "risk_manager": "healthy",
    "executor": "healthy",
    "database": "healthy",
    "redis": "healthy",
}


async def test_health_and_ready_match_the_seed(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert (health.status_code, health.json()) == (
        200,
        {"status": "healthy", "version": __version__},
    )
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert set(body) == {"status", "timestamp", "components"}
    assert body["status"] == "ready"
    assert RFC3339_UTC.match(body["timestamp"])
    assert body["components"] == ALL_HEALTHY


async def test_redis_down_is_503_naming_redis_and_back_to_200(
    client: httpx.AsyncClient, redis_server: RedisServer
) -> None:
    redis_server.stop()
    down = await eventually(
        lambda: client.get("/health/ready"), until=lambda r: r.status_code == 503
    )
    assert down.json()["status"] == "not_ready"
    assert down.json()["components"]["redis"] == "unhealthy: redis unreachable"
    assert down.json()["components"]["database"] == "healthy"
    assert (await client.get("/health")).status_code == 200
    redis_server.start()
    back = await eventually(
        lambda: client.get("/health/ready"), until=lambda r: r.status_code == 200, timeout=15
    )
    assert back.json()["components"] == ALL_HEALTHY


async def test_database_down_is_503_naming_the_database_and_back_to_200(
    client: httpx.AsyncClient, postgres_server: PostgresServer
) -> None:
    postgres_server.stop()
    down = await eventually(
        lambda: client.get("/health/ready"), until=lambda r: r.status_code == 503
    )
    assert down.json()["components"]["database"] == "unhealthy: database unreachable"
    assert down.json()["components"]["redis"] == "healthy"
    listing = await client.get("/api/v1/orders")
    assert listing.status_code == 503
    postgres_server.start()
    back = await eventually(
        lambda: client.get("/health/ready"), until=lambda r: r.status_code == 200, timeout=15
    )
    assert back.json()["components"] == ALL_HEALTHY


async def test_metrics_names_on_a_real_deployment(client: httpx.AsyncClient) -> None:
    await client.get("/health/ready")
    text = (await client.get("/metrics")).text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert set(SEED_METRIC_FAMILIES) <= names
    assert 'http_requests_total{method="GET",path="/health/ready",status="200"}' in text
