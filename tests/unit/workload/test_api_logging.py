"""JSON logs and the seed's RUST_LOG-style directives."""

from __future__ import annotations

import io
import json
import logging
import secrets as token
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from trader_api.config import Settings
from trader_api.logging import TRACE, configure_logging, parse_log_directives
from unit.workload.api_support import API_KEY

# Generated per run; the database one has characters a URL and JSON must escape.
DB_PASSWORD = token.token_urlsafe(12) + '"/@:%'
REDIS_PASSWORD = token.token_urlsafe(12)
READ_KEY = token.token_urlsafe(24)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    configure_logging("info")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_a_bare_level_sets_the_global_level() -> None:
    directives = parse_log_directives("warn")
    assert directives.default == logging.WARNING
    assert directives.per_logger == {}


def test_the_seed_example_sets_global_debug_and_trace_for_trader_api() -> None:
    directives = parse_log_directives("debug,trader_api=trace")
    assert directives.default == logging.DEBUG
    assert directives.per_logger == {"trader_api": TRACE}


def test_rust_module_paths_name_python_loggers() -> None:
    directives = parse_log_directives("info,trader_api::api=debug")
    assert directives.per_logger == {"trader_api.api": logging.DEBUG}


@pytest.mark.parametrize("spec", ["loud", "info,trader_api=chatty", "=debug"])
def test_bad_directives_are_errors(spec: str) -> None:
    with pytest.raises(ValueError, match=r"unknown log level|empty logger name"):
        parse_log_directives(spec)


@pytest.mark.usefixtures("restore_logging")
def test_records_are_json_lines_with_level_logger_message_and_extras() -> None:
    out = io.StringIO()
    configure_logging("info", stream=out)
    logging.getLogger("trader_api.api").warning(
        "Rate limit exceeded", extra={"client_ip": "10.1.2.3"}
    )
    record = json.loads(out.getvalue().splitlines()[-1])
    assert record["level"] == "WARNING"
    assert record["logger"] == "trader_api.api"
    assert record["message"] == "Rate limit exceeded"
    assert record["client_ip"] == "10.1.2.3"
    assert "timestamp" in record


@pytest.mark.usefixtures("restore_logging")
def test_per_logger_trace_passes_while_other_loggers_stay_at_the_global_level() -> None:
    out = io.StringIO()
    configure_logging("info,trader_api=trace", stream=out)
    logging.getLogger("trader_api.services").log(TRACE, "tick")
    logging.getLogger("somelib").debug("hidden")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["level"], line["message"]) for line in lines] == [("TRACE", "tick")]


@pytest.mark.usefixtures("restore_logging")
def test_reconfiguring_drops_earlier_per_logger_levels() -> None:
    out = io.StringIO()
    configure_logging("info,trader_api=trace", stream=out)
    configure_logging("warn", stream=out)
    assert logging.getLogger("trader_api").level == logging.NOTSET
    logging.getLogger("trader_api").info("hidden")
    assert out.getvalue() == ""


@pytest.mark.usefixtures("restore_logging")
def test_no_configured_secret_appears_in_any_line_at_any_level() -> None:
    settings = Settings(
        api_key=SecretStr(API_KEY),
        read_api_key=SecretStr(READ_KEY),
        database_url=SecretStr(f"postgresql://trader:{quote(DB_PASSWORD, safe='')}@db:5432/t"),
        redis_password=SecretStr(REDIS_PASSWORD),
        pod_name="log-test",
    )
    out = io.StringIO()
    configure_logging("trace", stream=out, secrets=settings.secrets)
    secrets = (API_KEY, READ_KEY, DB_PASSWORD, REDIS_PASSWORD)
    for level in (TRACE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        for name in ("uvicorn.error", "trader_api.api", "asyncpg"):
            log = logging.getLogger(name)
            log.log(level, '%s - "WebSocket %s" 403', ("10.0.0.1", 5), f"/ws?x-api-key={API_KEY}")
            log.log(level, "connecting to %s with %s", settings.database_dsn, READ_KEY)
            log.log(level, "auth %s", REDIS_PASSWORD, extra={"header": f"X-API-Key: {API_KEY}"})
            log.log(level, "failed", exc_info=RuntimeError(f"bad password {DB_PASSWORD!r}"))
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 * 3 * 4
    assert [line for line in lines if any(secret in line for secret in secrets)] == []
    assert all(json.loads(line) for line in lines)  # redaction keeps every line JSON


@pytest.mark.usefixtures("restore_logging")
def test_a_key_like_query_parameter_is_redacted_even_when_not_configured() -> None:
    out = io.StringIO()
    configure_logging("info", stream=out)
    logging.getLogger("uvicorn.error").info('"WebSocket %s" 403', "/ws?types=order&api_key=guess")
    message = json.loads(out.getvalue())["message"]
    assert message == '"WebSocket /ws?types=order&api_key=[REDACTED]" 403'
