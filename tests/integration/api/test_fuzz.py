"""Property-based fuzzing of /api/v1 from its OpenAPI schema: no input makes a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import response_schema_conformance

from integration.api.api_process import TraderApiProcess
from support.servers import PostgresServer, RedisServer
from unit.workload.api_support import API_KEY

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def fuzzed_api(
    postgres_server: PostgresServer, redis_server: RedisServer
) -> Iterator[TraderApiProcess]:
    """One trader-api process on its own database for the whole module (starting is slow)."""
    postgres_server.start()
    redis_server.start()
    database = postgres_server.create_database()
    process = TraderApiProcess(
        name="fuzz",
        env={
            "DATABASE_URL": postgres_server.url(database),
            "REDIS_URL": redis_server.url(),
            "API_KEY": API_KEY,
            "RATE_LIMIT_PER_SECOND": "100000",
            "RATE_LIMIT_BURST": "100000",
            "LOG_LEVEL": "warn",
        },
    ).start()
    yield process
    process.stop()
    postgres_server.drop_database(database)


def test_no_input_makes_a_server_error(fuzzed_api: TraderApiProcess) -> None:
    """Every operation, ``EXAMPLES_PER_OPERATION`` generated requests each, with the API key.

    NB: driven through Hypothesis directly (one ``@given`` per operation)
    rather than schemathesis' pytest plugin, which does not load with our pytest.
    """
    schema = schemathesis.openapi.from_url(f"{fuzzed_api.base_url}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures[f"schema error {operations}"] = str(result.err())
            continue
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Case[Any]) -> None:
            case.call_and_validate(
                base_url=fuzzed_api.base_url,
                headers={"X-API-Key": API_KEY},
                checks=[not_a_server_error, response_schema_conformance],
                timeout=15,
            )

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected: one run reports every operation
            failures[operation.label] = str(exc)[:1500]
    assert operations >= 12
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
