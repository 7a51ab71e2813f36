"""The traderbot chart: TraderBots declared from values, checked against the CRD before install."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from unit.delivery import bots_schema
from unit.delivery.delivery_tools import BOTS_CHART_DIR, REPO_ROOT, Helm, by_kind

VALUE_SETS = sorted((BOTS_CHART_DIR / "ci").glob("*-values.yaml"))


def test_values_schema_is_generated_from_the_current_crd() -> None:
    committed = (BOTS_CHART_DIR / "values.schema.json").read_text()
    assert committed == bots_schema.render(), "stale: run `make chart-crds`"


def test_generated_schema_closes_spec_objects_but_keeps_strategy_params_open() -> None:
    spec = bots_schema.spec_schema()
    assert spec["additionalProperties"] is False
    assert spec["properties"]["api"]["additionalProperties"] is False
    strategy = spec["properties"]["engine"]["properties"]["strategies"]["items"]
    assert strategy["additionalProperties"] is False
    assert "additionalProperties" not in strategy["properties"]["params"]
    assert not any(key.startswith("x-kubernetes-") for key in spec)


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda path: path.stem)
def test_helm_lint_strict_passes(helm: Helm, values: Path) -> None:
    result = helm.run("lint", "--strict", str(BOTS_CHART_DIR), "--values", str(values))
    assert "0 chart(s) failed" in result.stdout


def test_defaults_render_no_bot(helm: Helm) -> None:
    assert helm.template(chart=BOTS_CHART_DIR) == []


def test_bots_get_the_defaults_under_their_own_spec(helm: Helm) -> None:
    manifests = helm.template(
        chart=BOTS_CHART_DIR,
        values_files=[BOTS_CHART_DIR / "ci" / "two-bots-values.yaml"],
        namespace="trading-a",
    )
    bots = {bot["metadata"]["name"]: bot for bot in by_kind(manifests, "TraderBot")}
    assert bots.keys() == {"alpha", "bravo"}
    alpha, bravo = bots["alpha"], bots["bravo"]
    assert alpha["apiVersion"] == "traderbot.dev/v1alpha1"
    assert alpha["metadata"]["namespace"] == "trading-a"
    assert bravo["metadata"]["namespace"] == "trading-b"
    assert alpha["spec"] == {
        "mode": "paper",
        "backup": {"schedule": "30 2 * * *", "retentionDays": 14},
    }
    assert bravo["spec"]["replicas"] == 2
    assert bravo["spec"]["backup"]["retentionDays"] == 14
    assert bravo["spec"]["engine"]["strategies"][0]["params"]["slow"] == 20
    assert bravo["metadata"]["labels"]["team"] == "quant"
    for bot in bots.values():
        assert bot["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_a_bot_with_an_empty_spec_is_still_a_valid_object(helm: Helm) -> None:
    (bot,) = helm.template(chart=BOTS_CHART_DIR, set_values={"bots[0].name": "alpha"})
    assert bot["spec"] == {}


def test_uninstall_may_delete_bots_when_asked(helm: Helm) -> None:
    (bot,) = helm.template(
        chart=BOTS_CHART_DIR,
        set_values={"bots[0].name": "alpha", "keepOnUninstall": "false"},
    )
    assert "helm.sh/resource-policy" not in (bot["metadata"].get("annotations") or {})


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("bots[0].spec.replica=2", "replica"),
        ("bots[0].spec.mode=yolo", "mode"),
        ("defaults.backup.retentionDays=0", "retentionDays"),
        ("bots[0].spec.api.logLevel=loud", "logLevel"),
    ],
)
def test_a_misspelt_or_invalid_spec_fails_before_it_reaches_the_cluster(
    helm: Helm, setting: str, message: str
) -> None:
    result = helm.run(
        "template",
        "x",
        str(BOTS_CHART_DIR),
        "--set",
        "bots[0].name=alpha",
        "--set",
        setting,
        check=False,
    )
    assert result.returncode != 0, f"--set {setting} was accepted"
    assert message in result.stderr


def test_a_bot_name_longer_than_the_crd_allows_is_refused(helm: Helm) -> None:
    result = helm.run(
        "template", "x", str(BOTS_CHART_DIR), "--set", f"bots[0].name={'a' * 41}", check=False
    )
    assert result.returncode != 0
    assert "name" in result.stderr


def test_the_full_example_fits_the_values_schema(helm: Helm, tmp_path: Path) -> None:
    example = yaml.safe_load((REPO_ROOT / "examples" / "traderbot-full.yaml").read_text())
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"bots": [{"name": "bravo", "spec": example["spec"]}]}))
    (bot,) = helm.template(chart=BOTS_CHART_DIR, values_files=[values])
    assert bot["spec"] == example["spec"]
