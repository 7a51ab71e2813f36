"""The chart's monitoring: alert rules checked and unit-tested by promtool, names of real series.

The rules and the dashboard are tested as the chart renders them (`helm template`
with monitoring.prometheusRule and monitoring.dashboard on). Every metric name a
rule or a panel uses is looked up in what trader-api (an app built and scraped in
process) and the operator (its registry) really serve on /metrics.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from trader_api.config import Settings
from traderbot_operator import metrics as operator_metrics
from unit.delivery.delivery_tools import CHART_DIR, Helm, Manifest, by_kind, one
from unit.workload.api_support import API_KEY, api_client, serving

RULES_FILE = CHART_DIR / "files" / "prometheus-rules.yaml"
DASHBOARD_FILE = CHART_DIR / "files" / "dashboards" / "traderbot.json"
RULE_TESTS = Path(__file__).with_name("prometheus-rules-test.yaml")
MONITORING_ON = {
    "monitoring.prometheusRule.enabled": "true",
    "monitoring.dashboard.enabled": "true",
}
# Grafana's built-in interval variables, as a query would receive them.
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
# The series names each metric type puts on /metrics, from its family name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "info": ("_info",),
}


@pytest.fixture(scope="module")
def rendered(helm: Helm) -> list[Manifest]:
    return helm.template(set_values=MONITORING_ON)


@pytest.fixture(scope="module")
def rule_spec(rendered: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = one(rendered, "PrometheusRule")["spec"]
    return spec


def alerts(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for group in spec["groups"]:
        yield from group["rules"]


def promtool_tests(
    promtool: Path, folder: Path, spec: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """Run the promtool unit tests against ``spec`` written as the rule file they load."""
    (folder / "rules.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(RULE_TESTS, folder / RULE_TESTS.name)
    return subprocess.run(
        [str(promtool), "test", "rules", RULE_TESTS.name],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


# --- promtool -------------------------------------------------------------------------


def test_the_rendered_rules_pass_promtool_check_with_every_lint(
    promtool: Path, rule_spec: dict[str, Any], tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule_spec, sort_keys=False))
    result = subprocess.run(
        [str(promtool), "check", "rules", "--lint=all", "--lint-fatal", str(rules)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(list(alerts(rule_spec)))} rules found" in result.stdout


def test_the_rendered_rules_pass_their_promtool_unit_tests(
    promtool: Path, rule_spec: dict[str, Any], tmp_path: Path
) -> None:
    result = promtool_tests(promtool, tmp_path, rule_spec)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _without_the_daily_loss_exception(rule: dict[str, Any]) -> None:
    rule["expr"] = 'max by (namespace, bot) (kill_switch_engaged{bot!=""}) == 1'


def _alerting_on_paused_bots(rule: dict[str, Any]) -> None:
    rule["expr"] = rule["expr"].replace("Ready|Paused|Hibernated", "Ready")


def _counting_other_applications(rule: dict[str, Any]) -> None:
    rule["expr"] = rule["expr"].replace('bot!="", ', "")


def _without_waiting(rule: dict[str, Any]) -> None:
    rule["for"] = "0m"


@pytest.mark.parametrize(
    ("alert", "break_rule"),
    [
        ("TraderBotKillSwitchEngaged", _without_the_daily_loss_exception),
        ("TraderBotNotReady", _alerting_on_paused_bots),
        ("TraderBotRateLimitedRequests", _counting_other_applications),
        ("TraderBotOperatorReconcileErrors", _without_waiting),
        ("TraderBotBackupFailing", _without_waiting),
    ],
)
def test_the_unit_tests_fail_when_a_rule_is_broken(
    promtool: Path,
    rule_spec: dict[str, Any],
    tmp_path: Path,
    alert: str,
    break_rule: Callable[[dict[str, Any]], None],
) -> None:
    """Guard the guard: each mutation makes a must-fire or a must-not-fire case fail."""
    broken = copy.deepcopy(rule_spec)
    [rule] = [r for r in alerts(broken) if r["alert"] == alert]
    break_rule(rule)
    result = promtool_tests(promtool, tmp_path, broken)
    assert result.returncode != 0
    assert f"alertname: {alert}" in result.stdout + result.stderr


def test_every_alert_has_cases_that_fire_and_cases_that_must_not(
    rule_spec: dict[str, Any],
) -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for rule in alerts(rule_spec):
        name = rule["alert"]
        outcomes = [bool(c.get("exp_alerts")) for c in cases if c["alertname"] == name]
        assert True in outcomes, f"{name}: no case where it fires"
        assert False in outcomes, f"{name}: no case where it must not fire"


# --- the chart ------------------------------------------------------------------------


def test_the_chart_installs_the_rules_file_as_it_is(rule_spec: dict[str, Any]) -> None:
    assert rule_spec == yaml.safe_load(RULES_FILE.read_text())


def test_alert_labels_reach_every_alert_and_a_rules_own_severity_wins(helm: Helm) -> None:
    manifests = helm.template(
        set_values={
            "monitoring.prometheusRule.enabled": "true",
            "monitoring.prometheusRule.labels.release": "kube-prometheus-stack",
            "monitoring.prometheusRule.alertLabels.team": "trading",
            "monitoring.prometheusRule.alertLabels.severity": "page",
        }
    )
    rule = one(manifests, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    source = {r["alert"]: r for r in alerts(yaml.safe_load(RULES_FILE.read_text()))}
    for rendered_rule in alerts(rule["spec"]):
        own = source[rendered_rule["alert"]]["labels"]
        assert rendered_rule["labels"] == {"team": "trading", **own}


def test_the_dashboard_configmap_carries_the_sidecars_label_and_the_json(
    rendered: list[Manifest], helm: Helm
) -> None:
    [configmap] = [
        m for m in by_kind(rendered, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["data"] == {"traderbot.json": DASHBOARD_FILE.read_text()}
    relabelled = helm.template(
        set_values={
            "monitoring.dashboard.enabled": "true",
            "monitoring.dashboard.labels.grafana_dashboard": "null",
            "monitoring.dashboard.labels.dashboards": "trading",
            "monitoring.dashboard.annotations.grafana_folder": "Trading",
        }
    )
    [configmap] = by_kind(relabelled, "ConfigMap")
    assert configmap["metadata"]["labels"]["dashboards"] == "trading"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Trading"}


def test_values_of_a_release_older_than_monitoring_still_render(helm: Helm) -> None:
    """`helm upgrade --reuse-values` from a release without `monitoring` passes no default."""
    manifests = helm.template(set_values={"monitoring": "null"})
    assert one(manifests, "Deployment")
    assert not by_kind(manifests, "PrometheusRule")


def test_nothing_of_monitoring_is_rendered_by_default(helm: Helm) -> None:
    manifests = helm.template()
    assert not by_kind(manifests, "PrometheusRule")
    assert not by_kind(manifests, "ConfigMap")


# --- metric names ---------------------------------------------------------------------


def served_names(text: str) -> set[str]:
    """Return every series name a /metrics text serves, with the suffixes its types add.

    NB: a labelled metric that has not counted anything yet has no sample, only its
    HELP and TYPE lines; its names come from the type (counter ``x`` -> ``x_total``).
    """
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


async def _scrape_trader_api() -> str:
    settings = Settings(api_key=SecretStr(API_KEY), pod_name="metrics-names")
    async with serving(settings) as app, api_client(app, client_ip="10.0.0.9") as client:
        response: httpx.Response = await client.get("/metrics")
        assert response.status_code == 200
        return response.text


@pytest.fixture(scope="module")
def served() -> set[str]:
    """Names trader-api and the operator serve: an app scraped in process, the registry."""
    trader_api = served_names(asyncio.run(_scrape_trader_api()))
    operator = served_names(generate_latest(operator_metrics.REGISTRY).decode())
    assert "circuit_breaker_state" in trader_api
    assert "traderbot_operator_reconcile_errors_total" in operator
    return trader_api | operator


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects, read by Prometheus' parser (Rust)."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def grafana_expr(expr: str) -> str:
    """Return a panel's query as Prometheus receives it (Grafana's interval variables replaced)."""
    for variable, value in GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, value)
    return expr


def dashboard_queries() -> list[tuple[str, str]]:
    """Return (where, PromQL) for every panel target and every query variable."""
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    queries = [
        (f"panel {panel['title']!r}", grafana_expr(target["expr"]))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable["query"]["query"])
            assert match, variable["query"]
            queries.append((f"variable {variable['name']!r}", match.group(1)))
    return queries


def test_every_metric_a_rule_uses_is_served(rule_spec: dict[str, Any], served: set[str]) -> None:
    for rule in alerts(rule_spec):
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= served, f"{rule['alert']}: {sorted(used - served)} served by nobody"


def test_every_metric_a_dashboard_panel_uses_is_served(served: set[str]) -> None:
    queries = dashboard_queries()
    assert len(queries) > 20
    for where, expr in queries:
        used = metric_names(expr)
        assert used, where
        assert used <= served, f"{where}: {sorted(used - served)} served by nobody"


def test_the_name_check_catches_a_misspelt_or_suffixless_name(served: set[str]) -> None:
    """Guard the guard: a near miss is not served."""
    assert not metric_names("circuit_breaker_status == 2") <= served
    assert not metric_names("rate(traderbot_operator_reconcile_errors[5m])") <= served
    assert not metric_names("rate(http_request_duration_seconds[5m])") <= served
    assert metric_names("rate(http_request_duration_seconds_bucket[5m])") <= served
