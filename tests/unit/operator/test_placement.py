"""Pod placement, extra pod metadata and extra API env: where they land, what is refused."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from pydantic import ValidationError

from traderbot_operator.desired import build_children
from traderbot_operator.desired.api import api_env, build_api_deployment, config_hash
from traderbot_operator.desired.backup import build_backup_job, build_restore_job
from traderbot_operator.desired.common import labels
from traderbot_operator.models import (
    OWNED_ANNOTATION_KEYS,
    OWNED_ENV_NAMES,
    OWNED_ENV_PREFIXES,
    OWNED_KEY_PREFIX,
    OWNED_LABEL_KEYS,
    BackupRun,
    BackupRunSpec,
    RestoreRun,
    RestoreRunSpec,
    TraderBotSpec,
    env_name_owned,
)
from traderbot_operator.reconcile import engine_problems, plan
from unit.operator.bots import bot
from unit.operator.crd_schema import load_crd, version_schema

KUBERNETES_VERSION = "1.34.0"
SPEC = version_schema(load_crd())["properties"]["spec"]["properties"]

PLACEMENT: dict[str, Any] = {
    "nodeSelector": {"pool": "trading"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "trading", "effect": "NoSchedule"}
    ],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
        }
    ],
    "priorityClassName": "trading-critical",
    "imagePullSecrets": [{"name": "registry"}],
    "labels": {"team": "quant", "cost-center": "42"},
    "annotations": {"example.com/owner": "desk-7"},
}
PLACED_FIELDS = (
    "nodeSelector",
    "tolerations",
    "affinity",
    "priorityClassName",
    "imagePullSecrets",
)


def _placed_bot() -> Any:
    return bot(
        api={"pod": PLACEMENT},
        database={"pod": PLACEMENT},
        redis={"pod": PLACEMENT},
        backup={"pod": PLACEMENT},
    )


def _templates(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = manifest.get("spec", {})
    if manifest["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]
    elif manifest["kind"] in {"Deployment", "StatefulSet", "Job"}:
        yield spec["template"]


def _all_pod_templates(model: Any) -> list[tuple[str, dict[str, Any]]]:
    children = build_children(model, token=lambda n: "x" * n)
    found = [
        (f"{child['kind']}/{child['metadata']['name']}", template)
        for child in children
        for template in _templates(child)
    ]
    run = BackupRun(
        name="adhoc",
        namespace="trading",
        uid="u",
        spec=BackupRunSpec.model_validate({"botName": model.name}),
    )
    restore = RestoreRun(
        name="undo",
        namespace="trading",
        uid="u",
        spec=RestoreRunSpec.model_validate(
            {"botName": model.name, "backupName": "nightly", "what": "both"}
        ),
    )
    found.append(("Job/adhoc", build_backup_job(model, run=run)["spec"]["template"]))
    restore_job = build_restore_job(model, restore=restore, location="/backups/x")
    found.append(("Job/undo", restore_job["spec"]["template"]))
    return found


def test_placement_lands_in_every_components_pod_template() -> None:
    templates = _all_pod_templates(_placed_bot())
    assert sorted(name for name, _ in templates) == [
        "CronJob/alpha-backup",
        "CronJob/alpha-verify",
        "Deployment/alpha-api",
        "Job/adhoc",
        "Job/undo",
        "StatefulSet/alpha-db",
        "StatefulSet/alpha-redis",
    ]
    for name, template in templates:
        pod = template["spec"]
        for field in PLACED_FIELDS:
            assert pod[field] == PLACEMENT[field], (name, field)
        assert template["metadata"]["labels"]["team"] == "quant", name
        assert template["metadata"]["annotations"]["example.com/owner"] == "desk-7", name
        [constraint] = pod["topologySpreadConstraints"]
        # Without a labelSelector, a constraint counts the component's own pods.
        selector = constraint["labelSelector"]["matchLabels"]
        assert selector["app.kubernetes.io/instance"] == "alpha", name
        assert (
            selector["app.kubernetes.io/component"]
            == (template["metadata"]["labels"]["app.kubernetes.io/component"])
        ), name


def test_placed_children_are_valid_kubernetes() -> None:
    for child in build_children(_placed_bot(), token=lambda n: "x" * n):
        kubernetes_validate.validate(child, KUBERNETES_VERSION, strict=True)


def test_a_given_label_selector_and_unknown_constraint_fields_are_kept() -> None:
    constraint = {
        "maxSkew": 2,
        "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "minDomains": 2,
        "labelSelector": {"matchLabels": {"team": "quant"}},
    }
    deployment = build_api_deployment(bot(api={"pod": {"topologySpreadConstraints": [constraint]}}))
    assert deployment["spec"]["template"]["spec"]["topologySpreadConstraints"] == [constraint]


def test_without_placement_the_templates_are_unchanged() -> None:
    """A bot that sets none of it keeps the children (and applied hashes) it had: no write."""
    for name, template in _all_pod_templates(bot()):
        assert not {*PLACED_FIELDS, "topologySpreadConstraints"} & template["spec"].keys()
        if not name.startswith("Deployment"):
            assert "annotations" not in template["metadata"], name


def test_changing_placement_changes_the_pod_templates_so_the_pods_roll() -> None:
    before = build_children(bot(), token=lambda n: "x" * n)
    after = build_children(_placed_bot(), token=lambda n: "x" * n)
    converged = {
        (c["apiVersion"], c["kind"], c["metadata"]["name"]): c
        for c in (a.body for a in plan(before, {}))
    }
    patched = {action.name for action in plan(after, converged) if action.verb == "patch"}
    assert patched == {"alpha-api", "alpha-db", "alpha-redis", "alpha-backup", "alpha-verify"}


def test_the_operators_labels_win_over_extra_ones() -> None:
    template = build_api_deployment(_placed_bot())["spec"]["template"]
    assert labels(bot(), "api").items() <= template["metadata"]["labels"].items()


# --- names the operator owns ------------------------------------------------------------


def _rule(node: dict[str, Any]) -> str:
    [rule] = node["x-kubernetes-validations"]
    return " ".join(str(rule["rule"]).split())


def _lists(rule: str) -> list[list[str]]:
    return [re.findall(r"'([^']*)'", body) for body in re.findall(r"\[([^\]]*)\]", rule)]


def test_the_crds_env_rule_refuses_exactly_the_owned_names() -> None:
    names, prefixes = _lists(_rule(SPEC["api"]["properties"]["env"]))
    assert sorted(names) == sorted(OWNED_ENV_NAMES)
    assert sorted(prefixes) == sorted(OWNED_ENV_PREFIXES)


@pytest.mark.parametrize(
    ("field", "owned"), [("labels", OWNED_LABEL_KEYS), ("annotations", OWNED_ANNOTATION_KEYS)]
)
def test_the_crds_metadata_rules_refuse_exactly_the_owned_keys(
    field: str, owned: tuple[str, ...]
) -> None:
    rule = _rule(SPEC["api"]["properties"]["pod"]["properties"][field])
    [listed] = _lists(rule)
    assert sorted(listed) == sorted(owned)
    assert f"startsWith('{OWNED_KEY_PREFIX}')" in rule


def test_the_crds_service_monitor_label_rule_refuses_exactly_the_owned_keys() -> None:
    rule = _rule(SPEC["monitoring"]["properties"]["labels"])
    [listed] = _lists(rule)
    assert sorted(listed) == sorted(OWNED_LABEL_KEYS)
    assert f"startsWith('{OWNED_KEY_PREFIX}')" in rule


def test_every_env_name_the_operator_sets_is_owned() -> None:
    live = bot(
        mode="live",
        engine={
            "exchange": {"name": "binance", "credentialsSecretRef": {"name": "creds"}},
            "strategies": [{"name": "s", "kind": "sma_crossover", "symbol": "BTCUSDT"}],
        },
    )
    names = {variable["name"] for model in (bot(), live) for variable in api_env(model)}
    assert "EXCHANGE_API_SECRET" in names
    assert [name for name in names if not env_name_owned(name)] == []


def test_every_label_the_operator_sets_on_a_pod_is_owned() -> None:
    template = build_api_deployment(bot(), scrape_annotated=True)["spec"]["template"]
    assert sorted(template["metadata"]["labels"]) == sorted(OWNED_LABEL_KEYS)
    for key in template["metadata"]["annotations"]:
        assert key in OWNED_ANNOTATION_KEYS or key.startswith(OWNED_KEY_PREFIX)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"api": {"env": [{"name": "LOG_LEVEL", "value": "x"}]}}, "env LOG_LEVEL are set by"),
        ({"api": {"env": [{"name": "database_url", "value": "x"}]}}, "env database_url"),
        (
            {"api": {"env": [{"name": "A", "value": "1"}, {"name": "a", "value": "2"}]}},
            "unique",
        ),
        ({"redis": {"pod": {"labels": {"app.kubernetes.io/instance": "x"}}}}, "labels app"),
        ({"backup": {"pod": {"labels": {"traderbot.dev/x": "y"}}}}, "labels traderbot.dev/x"),
        ({"api": {"pod": {"annotations": {"prometheus.io/scrape": "false"}}}}, "annotations"),
        ({"api": {"pod": {"labels": {"bad key": "x"}}}}, "pattern"),
        ({"api": {"pod": {"labels": {"k": "not a value"}}}}, "pattern"),
    ],
)
def test_the_models_refuse_owned_names_and_bad_keys(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TraderBotSpec.model_validate(spec)
    assert message in str(refused.value)


# --- extra env ------------------------------------------------------------------------


def test_extra_env_reaches_the_api_pods_and_rolls_them() -> None:
    plain = bot()
    extra = bot(api={"env": [{"name": "ACCESS_LOG", "value": "true"}]})
    [container] = build_api_deployment(extra)["spec"]["template"]["spec"]["containers"]
    assert {"name": "ACCESS_LOG", "value": "true"} in container["env"]
    assert config_hash(extra) != config_hash(plain)


def test_rust_log_takes_the_place_of_log_level() -> None:
    directives = "debug,trader_api=trace"
    model = bot(api={"logLevel": "warn", "env": [{"name": "RUST_LOG", "value": directives}]})
    env = {variable["name"]: variable.get("value") for variable in api_env(model)}
    assert "LOG_LEVEL" not in env
    assert env["RUST_LOG"] == directives
    assert engine_problems(model) == []


def test_extra_env_trader_api_refuses_is_named_by_its_spec_field() -> None:
    model = bot(
        api={
            "env": [
                {"name": "RUST_LOG", "value": "loud"},
                {"name": "ACCESS_LOG", "value": "maybe"},
            ]
        }
    )
    problems = engine_problems(model)
    assert [p.split(":")[0] for p in problems] == [
        "spec.api.env[RUST_LOG]",
        "spec.api.env[ACCESS_LOG]",
    ]
