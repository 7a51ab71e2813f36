"""Fixtures of the API's integration tests: trader-api on real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from integration.api.api_process import TraderApiProcess
from trader_api.config import Settings
from unit.workload.api_support import API_KEY, api_client, serving


@pytest.fixture
def service_settings(postgres_url: str, redis_url: str) -> Settings:
    """Settings of one replica on the test's database and Redis (fast lease for failover)."""
    return Settings(
        database_url=SecretStr(postgres_url),
        redis_url=SecretStr(redis_url),
        api_key=SecretStr(API_KEY),
        pod_name="integration",
        leader_lease_seconds=2,
    )


@pytest.fixture
async def app(service_settings: Settings) -> AsyncIterator[FastAPI]:
    async with serving(service_settings) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app, client_ip="10.0.0.9") as http:
        yield http


@pytest.fixture
def process_env(postgres_url: str, redis_url: str) -> dict[str, str]:
    """Environment of a real trader-api process, as the operator would set it."""
    return {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_url,
        "API_KEY": API_KEY,
        "LEADER_LEASE_SECONDS": "2",
        "SHUTDOWN_GRACE_SECONDS": "10",
        "RATE_LIMIT_PER_SECOND": "10000",
        "RATE_LIMIT_BURST": "10000",
        "LOG_LEVEL": "info",
    }


@pytest.fixture
def trader_api(process_env: dict[str, str]) -> Iterator[Callable[..., TraderApiProcess]]:
    """Start ``trader-api`` processes (``trader_api(name=..., **env)``); all stopped at the end."""
    started: list[TraderApiProcess] = []

    def start(*, name: str = "api-0", **env: Any) -> TraderApiProcess:
        process = TraderApiProcess(
            env={**process_env, **{k.upper(): str(v) for k, v in env.items()}}, name=name
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
