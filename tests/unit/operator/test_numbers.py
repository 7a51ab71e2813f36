"""Every number a spec may hold is bounded by what the code handles (issue 14, class 12).

A retention of a billion days was a valid int32 and crashed the restore handler
with an OverflowError in ``timedelta``. One rule: every integer and number of the
three CRDs' specs has a minimum and a maximum, the models carry the same bounds,
and the pure code runs with every number at its maximum.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from traderbot_operator.desired import build_children
from traderbot_operator.models import BackupRun, RestoreRun, TraderBotSpec
from traderbot_operator.runs import outlived_retention, pruned_records, restore_refusal
from unit.operator.bots import bot

ROOT = Path(__file__).resolve().parents[3]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _numbers(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    if schema.get("type") in {"integer", "number"}:
        found.append((path, schema))
    for key, child in (schema.get("properties") or {}).items():
        found += _numbers(child, f"{path}.{key}")
    if "items" in schema:
        found += _numbers(schema["items"], f"{path}[]")
    return found


def _spec_numbers() -> list[tuple[str, dict[str, Any]]]:
    numbers = []
    for path in CRDS:
        crd = yaml.safe_load(path.read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        numbers += _numbers(schema, f"{crd['spec']['names']['kind']}.spec")
    return numbers


@pytest.mark.parametrize(("path", "field"), _spec_numbers(), ids=lambda v: str(v)[:60])
def test_every_number_of_a_spec_is_bounded_in_the_crd(path: str, field: dict[str, Any]) -> None:
    assert "minimum" in field, path
    assert "maximum" in field, path
    assert field["minimum"] <= field.get("default", field["maximum"]) <= field["maximum"], path


def _model_bounds(schema: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """The model's JSON schema, walked like the CRD's: ``path`` -> (minimum, maximum)."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            return _model_bounds(option, defs, path)
    found: dict[str, Any] = {}
    if schema.get("type") in {"integer", "number"}:
        exclusive = "exclusiveMinimum" in schema
        low = schema["exclusiveMinimum"] if exclusive else schema.get("minimum")
        found[path] = (low, exclusive, schema.get("maximum"))
    for key, child in (schema.get("properties") or {}).items():
        found |= _model_bounds(child, defs, f"{path}.{key}")
    if "items" in schema:
        found |= _model_bounds(schema["items"], defs, f"{path}[]")
    return found


def test_the_models_carry_the_crds_bounds() -> None:
    schema = TraderBotSpec.model_json_schema(by_alias=True)
    model = _model_bounds(schema, schema.get("$defs", {}), "TraderBot.spec")
    crd = {
        path: (field["minimum"], field.get("exclusiveMinimum", False), field["maximum"])
        for path, field in _spec_numbers()
        if path.startswith("TraderBot.spec")
    }
    assert model == crd


def _at_maximum(schema: dict[str, Any], value: Any) -> Any:
    """``value`` with every number of the CRD schema set to its maximum."""
    if schema.get("type") in {"integer", "number"}:
        return schema["maximum"]
    if schema.get("type") == "object" and "properties" in schema:
        result = dict(value or {})
        for key, child in schema["properties"].items():
            if key in result or child.get("type") in {"integer", "number"} or "default" in child:
                result[key] = _at_maximum(child, result.get(key, child.get("default")))
        return result
    return value


def test_the_code_runs_with_every_number_at_its_maximum() -> None:
    crd = yaml.safe_load((ROOT / "crds" / "traderbot.dev_traderbots.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec = _at_maximum(schema, {"backup": {"verify": {"enabled": True}}})
    spec["replicas"] = schema["properties"]["replicas"]["maximum"]
    biggest = bot("alpha", **spec)
    assert (
        biggest.spec.backup.retention_days
        == schema["properties"]["backup"]["properties"]["retentionDays"]["maximum"]
    )
    children = build_children(biggest)
    assert children
    ended = {"status": {"completionTime": "2026-01-01T00:00:00Z", "succeeded": 1}}
    outlived_retention(ended, retention_days=biggest.spec.backup.retention_days, now=NOW)
    completed = BackupRun.model_validate(
        {
            "name": "nightly",
            "namespace": "trading",
            "uid": "b",
            "spec": {"botName": "alpha"},
            "status": {
                "phase": "Completed",
                "completionTime": "2026-01-01T00:00:00Z",
                "location": "/backups/alpha/x",
            },
        }
    )
    restore = RestoreRun.model_validate(
        {
            "name": "undo",
            "namespace": "trading",
            "uid": "r",
            "spec": {"botName": "alpha", "backupName": "nightly"},
        }
    )
    restore_refusal(
        restore,
        bot=biggest,
        backup=completed,
        holder=None,
        newest_completed="other",
        now=NOW,
    )
    pruned_records(
        [completed],
        pruning=completed,
        result={"truncated": ["pruned"]},
        retention_days=biggest.spec.backup.retention_days,
    )
