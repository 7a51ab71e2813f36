"""The CRD is the source of truth: the models and the examples must agree with it."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from traderbot_operator import __version__
from traderbot_operator.models import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    TraderBotSpec,
    TraderBotStatus,
)
from unit.operator.crd_schema import (
    CRD_PATH,
    EXAMPLES,
    apply_defaults,
    load_crd,
    model_mismatches,
    version_schema,
)

CRD = load_crd()
SCHEMA = version_schema(CRD)


def test_crd_names_match_the_decided_api() -> None:
    assert CRD["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    names = CRD["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"], names["categories"]) == (
        KIND,
        PLURAL,
        ["tb"],
        ["trading"],
    )
    assert [v["name"] for v in CRD["spec"]["versions"]] == [VERSION]


def test_status_and_scale_subresources_point_at_status_fields() -> None:
    subresources = CRD["spec"]["versions"][0]["subresources"]
    assert subresources["status"] == {}
    assert subresources["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    status = SCHEMA["properties"]["status"]["properties"]
    assert {"replicas", "selector"} <= status.keys()


def test_printer_columns_are_phase_ready_version_last_backup_age() -> None:
    columns = CRD["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"], c["jsonPath"]) for c in columns] == [
        ("Phase", ".status.phase"),
        ("Ready", ".status.ready"),
        ("Version", ".status.version"),
        ("Last Backup", ".status.lastBackup.time"),
        ("Age", ".metadata.creationTimestamp"),
    ]


def _walk(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, child in schema.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if "items" in schema:
        found += _walk(schema["items"], f"{path}[]")
    return found


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    missing = [
        path
        for path, node in _walk(SCHEMA, "traderbot")
        if not node.get("description") and path != "traderbot.metadata"
    ]
    assert missing == []


def test_every_cel_rule_has_a_message() -> None:
    rules = [
        (path, rule)
        for path, node in _walk(SCHEMA, "traderbot")
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 6
    assert all(rule.get("message") for _, rule in rules)


@pytest.mark.parametrize(
    ("model", "schema_path"),
    [(TraderBotSpec, "spec"), (TraderBotStatus, "status")],
)
def test_models_have_the_crd_fields_and_no_others(model: type[BaseModel], schema_path: str) -> None:
    assert model_mismatches(model, SCHEMA["properties"][schema_path], schema_path) == []


# Fields added after the first release with no server-side default, so that a bot
# stored before reads exactly as it did (a server default shows up in every read
# of every existing object, as a change nobody made); absent means the model's
# default (not hibernating, no placement).
WITHOUT_SERVER_DEFAULT = (
    ("hibernate",),
    ("api", "pod"),
    ("database", "pod"),
    ("redis", "pod"),
    ("backup", "pod"),
)


def test_model_defaults_equal_the_crd_defaults() -> None:
    defaulted_by_server = apply_defaults(SCHEMA["properties"]["spec"], {})
    defaulted_by_model = TraderBotSpec().model_dump(by_alias=True, exclude_none=True)
    for path in WITHOUT_SERVER_DEFAULT:
        parent = defaulted_by_model
        for key in path[:-1]:
            parent = parent[key]
        assert path[-1] not in _at(defaulted_by_server, path[:-1]), path
        del parent[path[-1]]
    assert defaulted_by_model == defaulted_by_server


def _at(value: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        value = value[key]
    return value


def test_default_version_is_the_operators_own_release() -> None:
    assert SCHEMA["properties"]["spec"]["properties"]["version"]["default"] == __version__


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_crd_and_the_models(path: Any) -> None:
    documents = list(yaml.safe_load_all(path.read_text()))
    bots = [d for d in documents if d and d.get("kind") == KIND]
    assert bots, f"{path.name} holds no TraderBot"
    for bot in bots:
        jsonschema.Draft4Validator(SCHEMA).validate(bot)
        defaulted = apply_defaults(SCHEMA["properties"]["spec"], bot["spec"])
        TraderBotSpec.model_validate(defaulted)


def test_schema_rejects_what_it_should() -> None:
    validator = jsonschema.Draft4Validator(SCHEMA)
    bad_specs = [
        {"mode": "yolo"},
        {"replicas": -1},
        {"api": {"logLevel": "verbose"}},
        {"engine": {"strategies": [{"name": "x", "kind": "martingale", "symbol": "BTCUSDT"}]}},
        {"database": {"storage": {"size": "lots"}}},
    ]
    for spec in bad_specs:
        errors = list(validator.iter_errors({"apiVersion": "traderbot.dev/v1alpha1", "spec": spec}))
        assert errors, spec


def test_crd_file_is_plain_yaml_kubectl_can_apply() -> None:
    assert CRD_PATH.read_text().startswith("#")
    assert CRD["apiVersion"] == "apiextensions.k8s.io/v1"
