"""The CRD, the operator and trader-api agree on the engine's settings (issue 14, class 13).

Before: the CRD's interval enum allowed values trader-api refuses at start, its
strategy ``params`` defaulted to ``{}`` although ``sma_crossover`` needs
``fast``, ``slow`` and ``quantity``, and images took any string; all were deployed
as if valid and the pods crashed or never started. Now the CRD is tested against
trader-api's own models, the operator validates the env it builds with them, and
images follow the OCI reference grammar.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from trader_api.domain import Interval
from trader_api.strategy import StrategyConfig
from trader_api.strategy.registry import STRATEGY_KINDS
from traderbot_operator.models import (
    IMAGE_NAME_PATTERN,
    IMAGE_REFERENCE_PATTERN,
    TraderBotSpec,
)
from traderbot_operator.reconcile import engine_problems, spec_problems
from unit.operator.bots import bot, example
from unit.operator.crd_schema import EXAMPLES

ROOT = Path(__file__).resolve().parents[3]
SPEC = yaml.safe_load((ROOT / "crds" / "traderbot.dev_traderbots.yaml").read_text())["spec"][
    "versions"
][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
STRATEGY = SPEC["properties"]["engine"]["properties"]["strategies"]["items"]["properties"]
WORKLOAD_STRATEGY = StrategyConfig.model_json_schema()["properties"]


def test_the_crds_strategy_fields_are_trader_apis() -> None:
    assert STRATEGY["interval"]["enum"] == [interval.value for interval in Interval]
    assert sorted(STRATEGY["kind"]["enum"]) == sorted(STRATEGY_KINDS)
    assert STRATEGY["name"]["pattern"] == WORKLOAD_STRATEGY["name"]["pattern"]
    assert STRATEGY["symbol"]["pattern"] == WORKLOAD_STRATEGY["symbol"]["pattern"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_passes_trader_apis_settings(path: Path) -> None:
    assert engine_problems(example(path.name)) == []


def _strategy(**fields: Any) -> dict[str, Any]:
    return {"name": "s1", "kind": "sma_crossover", "symbol": "BTCUSDT", **fields}


@pytest.mark.parametrize(
    ("strategy", "field", "reason"),
    [
        (_strategy(), "spec.engine.strategies[0].params", "fast: Field required"),
        (
            _strategy(params={"fast": 5, "slow": 20, "quantity": "lots"}),
            "spec.engine.strategies[0].params",
            "quantity",
        ),
        (
            _strategy(kind="rsi_mean_reversion", params={"period": 0, "quantity": "1"}),
            "spec.engine.strategies[0].params",
            "period",
        ),
        # Stored before the CRD's enum was narrowed: the models take any string.
        (
            _strategy(interval="3m", params={"fast": 5, "slow": 20, "quantity": "1"}),
            "spec.engine.strategies[0].interval",
            "'1m'",
        ),
    ],
    ids=["sma-without-params", "bad-quantity", "rsi-period-zero", "interval-3m"],
)
def test_an_engine_setting_trader_api_refuses_is_an_invalid_spec(
    strategy: dict[str, Any], field: str, reason: str
) -> None:
    refused = bot("alpha", engine={"strategies": [strategy]})
    problems = spec_problems(refused, secrets={})
    assert any(p.startswith(f"{field}: trader-api refuses it") and reason in p for p in problems), (
        problems
    )


def _at(schema: dict[str, Any], bound: str) -> Any:
    """A spec with every number of ``schema`` at its ``minimum`` or ``maximum``."""
    if schema.get("type") in {"integer", "number"}:
        value = schema[bound]
        if bound == "minimum" and schema.get("exclusiveMinimum"):
            value += 1
        return value
    if schema.get("type") == "object" and "properties" in schema:
        found = {key: _at(child, bound) for key, child in schema["properties"].items()}
        numbers = {key: value for key, value in found.items() if value is not None}
        return numbers or None  # only the objects that hold numbers
    return None


@pytest.mark.parametrize("bound", ["minimum", "maximum"])
def test_every_number_the_crd_allows_trader_api_accepts(bound: str) -> None:
    """The CRD's bounds sit inside trader-api's (else a valid bot would crash-loop)."""
    spec = _at(SPEC, bound)
    spec["database"]["compressAfterDays"] = spec["database"]["klinesRetentionDays"]
    spec["api"]["rateLimit"]["burst"] = spec["api"]["rateLimit"]["perSecond"]
    risk = spec["engine"]["risk"]
    risk["maxPositionNotional"] = risk["maxOrderNotional"]
    assert engine_problems(bot("alpha", **spec)) == []


GOOD_NAMES = [
    "ghcr.io/traderbot-dev/trader-api",
    "traderbot.local/trader-api",
    "localhost:5000/a/b/c",
    "redis",
    "a__b.c-d--e",
    "registry-1.docker.io/library/postgres",
]
BAD_NAMES = [
    "",
    " redis",
    "redis ",
    "Redis",
    "redis;rm -rf /",
    "redis:7",
    "redis@sha256:" + "a" * 64,
    "a//b",
    "a/",
    "-a",
    "a-",
    "a..b",
    "$(id)",
]
GOOD_REFERENCES = [
    *GOOD_NAMES,
    "timescale/timescaledb:2.17.2-pg16",
    "redis:7.4.1-alpine",
    "traderbot.local/postgres:17",
    "localhost:5000/redis:8",
    "redis@sha256:" + "a" * 64,
    "redis:8@sha256:" + "0123456789abcdef" * 4,
]
BAD_REFERENCES = [
    "",
    " redis:7",
    "redis:7 ",
    "redis:7:8",
    "redis:",
    "redis:-7",
    "redis:" + "x" * 129,
    "redis@sha256:abc",
    "REDIS:7",
    "redis:7;rm -rf /",
    "redis:7\n",
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_image_names_follow_the_reference_grammar(name: str) -> None:
    assert re.fullmatch(IMAGE_NAME_PATTERN.strip("^$"), name)
    TraderBotSpec.model_validate({"image": name})


@pytest.mark.parametrize("name", BAD_NAMES)
def test_image_names_outside_the_grammar_are_refused(name: str) -> None:
    assert not re.fullmatch(IMAGE_NAME_PATTERN.strip("^$"), name)
    with pytest.raises(ValidationError):
        TraderBotSpec.model_validate({"image": name})


@pytest.mark.parametrize("reference", GOOD_REFERENCES)
def test_image_references_follow_the_reference_grammar(reference: str) -> None:
    TraderBotSpec.model_validate({"database": {"image": reference}, "redis": {"image": reference}})


@pytest.mark.parametrize("reference", BAD_REFERENCES)
def test_image_references_outside_the_grammar_are_refused(reference: str) -> None:
    for component in ("database", "redis"):
        with pytest.raises(ValidationError):
            TraderBotSpec.model_validate({component: {"image": reference}})


def test_the_crds_image_patterns_are_the_models() -> None:
    assert SPEC["properties"]["image"]["pattern"] == IMAGE_NAME_PATTERN
    for component in ("database", "redis"):
        assert SPEC["properties"][component]["properties"]["image"]["pattern"] == (
            IMAGE_REFERENCE_PATTERN
        )
