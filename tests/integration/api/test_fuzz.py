"""Property-based fuzzing of /api/v1 from its OpenAPI schema: no input makes a 5xx.

On both stores (PostgreSQL and Redis; embedded), with valid data (responses
match the schema) and with negative data (schemathesis' invalid variants of
every parameter and body: each is refused with a 4xx, stores nothing, and
the process stays ready).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import response_schema_conformance

from integration.api.api_process import TraderApiProcess
from support.servers import PostgresServer, RedisServer
from unit.workload.api_support import API_KEY

EXAMPLES_PER_OPERATION = 25
NEGATIVE_EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module", params=["postgres", "embedded"])
def fuzzed_api(request: pytest.FixtureRequest) -> Iterator[TraderApiProcess]:
    """One trader-api process per store for the whole module (starting is slow)."""
    env = {
        "API_KEY": API_KEY,
        "RATE_LIMIT_PER_SECOND": "100000",
        "RATE_LIMIT_BURST": "100000",
        "LOG_LEVEL": "warn",
    }
    database: str | None = None
    if request.param == "postgres":
        postgres_server: PostgresServer = request.getfixturevalue("postgres_server")
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        postgres_server.start()
        redis_server.start()
        database = postgres_server.create_database()
        env |= {"DATABASE_URL": postgres_server.url(database), "REDIS_URL": redis_server.url()}
    process = TraderApiProcess(name=f"fuzz-{request.param}", env=env).start()
    yield process
    process.stop()
    if database is not None:
        postgres_server.drop_database(database)


def test_invalid_input_is_refused_and_stores_nothing(fuzzed_api: TraderApiProcess) -> None:
    """Negative data on every operation: never a 5xx; no order stored; still ready.

    Runs before the valid data (module order), on a process nothing has written to.
    """
    failures = fuzz(
        fuzzed_api,
        mode=GenerationMode.NEGATIVE,
        examples=NEGATIVE_EXAMPLES_PER_OPERATION,
        checks=[not_a_server_error],
    )
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    orders = httpx.get(f"{fuzzed_api.base_url}/api/v1/orders", headers={"X-API-Key": API_KEY})
    assert orders.json() == []
    assert httpx.get(f"{fuzzed_api.base_url}/health/ready").status_code == 200


def test_no_input_makes_a_server_error(fuzzed_api: TraderApiProcess) -> None:
    """Every operation, ``EXAMPLES_PER_OPERATION`` generated requests each, with the API key."""
    failures = fuzz(
        fuzzed_api,
        mode=GenerationMode.POSITIVE,
        examples=EXAMPLES_PER_OPERATION,
        checks=[not_a_server_error, response_schema_conformance],
    )
    assert failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


def fuzz(
    fuzzed_api: TraderApiProcess, *, mode: GenerationMode, examples: int, checks: list[Any]
) -> dict[str, str]:
    """Run ``examples`` generated requests per operation; return the failures by operation.

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

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Case[Any]) -> None:
            case.call_and_validate(
                base_url=fuzzed_api.base_url,
                headers={"X-API-Key": API_KEY},
                checks=checks,
                timeout=15,
            )

        try:
            check()
        except Unsatisfiable:
            if mode is not GenerationMode.NEGATIVE:
                raise
            operations -= 1  # nothing to make invalid: no parameters, no body
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected: one run reports every operation
            failures[operation.label] = str(exc)[:1500]
    assert operations >= (12 if mode is GenerationMode.POSITIVE else 8), operations
    return failures
