"""The traderbot-operator chart: lint-clean, checked values, valid manifests, least privilege.

Every test renders the chart with the pinned helm; nothing here needs a cluster
(tests/cluster/test_chart.py installs it into one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from traderbot_operator.__main__ import election_timings, parse_args
from traderbot_operator.handlers.traderbot import CHILD_KINDS
from traderbot_operator.leader import Timings
from traderbot_operator.models import GROUP, PLURAL
from traderbot_operator.rbac import LEADER_ELECTION_RULES, RULES
from unit.delivery import chart_rbac
from unit.delivery.delivery_tools import (
    CHART_DIR,
    KUBERNETES_VERSION,
    REPO_ROOT,
    Helm,
    Manifest,
    by_kind,
    one,
    value_sets,
)

VALUE_SETS = value_sets()
# Kinds whose schema comes from a CRD that kubernetes-validate does not carry.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


def rules_of(role: Manifest) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def grants(role: Manifest, group: str, resource: str) -> set[str]:
    """Return the verbs a Role or ClusterRole grants on one resource."""
    verbs: set[str] = set()
    for rule in rules_of(role):
        if group in rule.get("apiGroups", []) and resource in rule.get("resources", []):
            verbs |= set(rule["verbs"])
    return verbs


def iter_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_strings(item)


def test_chart_crds_are_byte_identical_to_the_source_of_truth() -> None:
    source = {path.name: path.read_bytes() for path in (REPO_ROOT / "crds").glob("*.yaml")}
    copy = {path.name: path.read_bytes() for path in (CHART_DIR / "crds").glob("*.yaml")}
    assert source, "crds/ is empty"
    assert copy.keys() == source.keys(), "run `make chart-crds` to sync charts/*/crds"
    for name, content in source.items():
        assert copy[name] == content, (
            f"charts/traderbot-operator/crds/{name} is stale: make chart-crds"
        )


def test_there_are_at_least_four_value_sets_including_the_defaults() -> None:
    names = {path.name for path in VALUE_SETS}
    assert "default-values.yaml" in names
    assert len(names) >= 4


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda path: path.stem)
def test_helm_lint_strict_passes(helm: Helm, values: Path) -> None:
    result = helm.run("lint", "--strict", str(CHART_DIR), "--values", str(values))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda path: path.stem)
def test_rendered_manifests_validate_against_the_kubernetes_schemas(
    helm: Helm, values: Path
) -> None:
    manifests = helm.template(values_files=[values], include_crds=True)
    assert by_kind(manifests, "CustomResourceDefinition")
    for manifest in manifests:
        key = (manifest["apiVersion"], manifest["kind"])
        if key in CUSTOM_KINDS:
            assert manifest["metadata"]["name"]
            continue
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{key} {manifest['metadata'].get('name')}: {error}")


def test_kubernetes_validation_does_reject_a_misspelt_field() -> None:
    """Guard the guard: strict validation must catch what a typo in a template produces."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {
                    "containers": [{"name": "c", "image": "i", "imagePullPolicy": "Sometimes"}]
                },
            },
            "replica": 1,
        },
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("imagee.tag=1.0.0", "imagee"),
        ("replicaCount=9", "replicaCount"),
        ("logFormat=xml", "logFormat"),
        ("verbose=yes", "verbose"),
        ("driftIntervalSeconds=1", "driftIntervalSeconds"),
        ("watchNamespaces[0]=Not_A_Namespace", "watchNamespaces"),
        ("metrics.serviceMonitor.interval=often", "interval"),
        ("networkPolicy.apiServerCIDRs[0]=kubernetes", "apiServerCIDRs"),
        ("image.digest=latest", "digest"),
    ],
)
def test_values_schema_turns_a_bad_value_into_a_clear_install_error(
    helm: Helm, setting: str, message: str
) -> None:
    result = helm.run("template", "x", str(CHART_DIR), "--set", setting, check=False)
    assert result.returncode != 0, f"--set {setting} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda path: path.stem)
def test_rbac_names_every_resource_and_verb_without_wildcards(helm: Helm, values: Path) -> None:
    manifests = helm.template(values_files=[values])
    roles = by_kind(manifests, "ClusterRole") + by_kind(manifests, "Role")
    assert roles
    for role in roles:
        for rule in rules_of(role):
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: {rule}"
            assert "nonResourceURLs" not in rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def operator_cluster_role(manifests: list[Manifest]) -> Manifest:
    """Return the operator's own ClusterRole (not the aggregated user roles)."""
    (role,) = [
        r for r in by_kind(manifests, "ClusterRole") if r["metadata"]["name"].endswith("-cluster")
    ]
    return role


Rule = tuple[str, str, tuple[str, ...]]  # (group, resource, resourceNames)


def flatten(rules: Iterable[Mapping[str, Any]]) -> dict[Rule, set[str]]:
    """Return RBAC rules as (group, resource, resourceNames) -> verbs, for comparison."""
    result: dict[Rule, set[str]] = {}
    for rule in rules:
        names = tuple(sorted(rule.get("resourceNames", [])))
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                result.setdefault((group, resource, names), set()).update(rule["verbs"])
    return result


CRD_READ: Rule = (
    "apiextensions.k8s.io",
    "customresourcedefinitions",
    ("servicemonitors.monitoring.coreos.com",),
)


def operator_rules() -> dict[Rule, set[str]]:
    """Return the operator's own list of what its code calls (traderbot_operator.rbac.RULES)."""
    return flatten(RULES)


def needed_namespaced_rules() -> dict[Rule, set[str]]:
    """Return the operator's rules that apply inside a managed namespace."""
    rules = operator_rules()
    del rules[CRD_READ]
    return rules


def granted(role: Manifest) -> dict[Rule, set[str]]:
    return flatten(rules_of(role))


def is_election(role: Manifest) -> bool:
    return bool(role["metadata"]["name"].endswith("-leader-election"))


def watch_roles(manifests: list[Manifest], kind: str) -> list[Manifest]:
    """Return the Roles (or RoleBindings) of managed namespaces, not the Lease's."""
    return [role for role in by_kind(manifests, kind) if not is_election(role)]


def test_chart_rules_file_is_generated_from_the_current_operator_rules() -> None:
    committed = chart_rbac.RULES_PATH.read_text()
    assert committed == chart_rbac.render(), "stale: run `make chart-crds`"


def test_operator_rules_cover_every_child_kind_the_operator_watches() -> None:
    rules = operator_rules()
    for group, _version, plural in CHILD_KINDS:
        assert {"get", "list", "watch", "create", "patch"} <= rules[(group, plural, ())], plural
    assert {"get", "list", "watch", "patch"} <= rules[(GROUP, PLURAL, ())]
    assert "patch" in rules[(GROUP, f"{PLURAL}/status", ())]


def test_default_install_grants_exactly_the_operators_rules_everywhere(
    helm: Helm,
) -> None:
    manifests = helm.template()
    assert not watch_roles(manifests, "Role")
    cluster_role = operator_cluster_role(manifests)
    assert granted(cluster_role) == operator_rules()
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    (subject,) = binding["subjects"]
    service_account = one(manifests, "ServiceAccount")
    assert subject["name"] == service_account["metadata"]["name"]
    assert subject["namespace"] == service_account["metadata"]["namespace"]


def test_watch_namespaces_confines_write_access_to_those_namespaces(helm: Helm) -> None:
    namespaces = ["trading-paper", "trading-live"]
    manifests = helm.template(set_values={"watchNamespaces": "{" + ",".join(namespaces) + "}"})
    roles = watch_roles(manifests, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == sorted(namespaces)
    bindings = watch_roles(manifests, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(namespaces)
    for role in roles:
        assert granted(role) == needed_namespaced_rules()
    # Cluster-wide, only one CRD read: no Secret, no TraderBot, no namespace list.
    assert granted(operator_cluster_role(manifests)) == {CRD_READ: {"get"}}
    env = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "TRADERBOT_NAMESPACES", "value": "trading-paper,trading-live"} in env


def test_default_install_watches_every_namespace(helm: Helm) -> None:
    env = one(helm.template(), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "TRADERBOT_NAMESPACES", "value": ""} in env
    assert parse_args([]).all_namespaces is False
    assert parse_args([]).namespace == []


def test_servicemonitor_rbac_can_be_left_out(helm: Helm) -> None:
    with_it = operator_cluster_role(helm.template())
    without = operator_cluster_role(helm.template(set_values={"rbac.serviceMonitors": "false"}))
    assert grants(with_it, "monitoring.coreos.com", "servicemonitors") == {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "delete",
    }
    assert not grants(without, "monitoring.coreos.com", "servicemonitors")


def test_namespace_editors_can_scale_bots_through_the_aggregated_roles(helm: Helm) -> None:
    roles = {r["metadata"]["name"]: r for r in by_kind(helm.template(), "ClusterRole")}
    edit, view = roles["traderbot-operator-edit"], roles["traderbot-operator-view"]
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert {"update", "patch"} <= grants(edit, GROUP, f"{PLURAL}/scale")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert grants(view, GROUP, PLURAL) == {"get", "list", "watch"}
    off = helm.template(set_values={"rbac.aggregateToDefaultRoles": "false"})
    assert [r["metadata"]["name"] for r in by_kind(off, "ClusterRole")] == [
        "traderbot-operator-cluster"
    ]


def test_operator_pod_meets_the_restricted_pod_security_standard(helm: Helm) -> None:
    deployment = one(helm.template(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod
    assert "hostPID" not in pod
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"] == [
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        {"name": "health", "containerPort": 8080, "protocol": "TCP"},
    ]
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["TRADERBOT_METRICS_PORT"] == "9090"
    assert env["TRADERBOT_LIVENESS_PORT"] == "8080"
    assert env["TRADERBOT_DRIFT_INTERVAL_SECONDS"] == "60"
    assert container["resources"]["limits"]["memory"]


def test_image_defaults_to_the_app_version_and_a_digest_pins_it(helm: Helm) -> None:
    def image(**values: str) -> str:
        deployment = one(helm.template(set_values=values), "Deployment")
        reference: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        return reference

    assert image() == "ghcr.io/traderbot-dev/traderbot-operator:0.1.0"
    assert image(**{"image.tag": "0.1.1"}) == "ghcr.io/traderbot-dev/traderbot-operator:0.1.1"
    digest = "sha256:" + "ab" * 32
    assert image(**{"image.digest": digest}) == (
        f"ghcr.io/traderbot-dev/traderbot-operator@{digest}"
    )


def test_no_literal_secret_or_latest_tag_is_rendered(helm: Helm) -> None:
    for values in VALUE_SETS:
        manifests = helm.template(values_files=[values])
        assert not by_kind(manifests, "Secret")
        for text in (s for m in manifests for s in iter_strings(m)):
            assert not text.endswith(":latest"), text


def test_metrics_service_and_servicemonitor_select_the_operator_pod(helm: Helm) -> None:
    manifests = helm.template(set_values={"metrics.serviceMonitor.enabled": "true"})
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one(manifests, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    monitor = one(manifests, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_two_replicas_elect_a_leader_through_a_lease_only_they_may_write(helm: Helm) -> None:
    manifests = helm.template()
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    env = {
        item["name"]: item.get("value")
        for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["TRADERBOT_LEADER_ELECTION"] == "true"
    assert env["TRADERBOT_LEADER_ELECTION_NAME"] == deployment["metadata"]["name"]
    # The chart's timings are the operator's defaults, and valid ones.
    lease_env = {k: v for k, v in env.items() if k.startswith("TRADERBOT_LEASE_")}
    with pytest.MonkeyPatch.context() as patched:
        for key, value in lease_env.items():
            patched.setenv(key, str(value))
        assert election_timings() == Timings()
    (role,) = [r for r in by_kind(manifests, "Role") if is_election(r)]
    namespace = deployment["metadata"]["namespace"]
    assert role["metadata"]["namespace"] == namespace
    assert granted(role) == flatten(LEADER_ELECTION_RULES)
    (binding,) = [b for b in by_kind(manifests, "RoleBinding") if is_election(b)]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == one(manifests, "ServiceAccount")["metadata"]["name"]


def test_one_replica_without_leader_election_recreates_and_needs_no_lease(helm: Helm) -> None:
    manifests = helm.template(set_values={"leaderElection.enabled": "false", "replicaCount": "1"})
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert not [r for r in by_kind(manifests, "Role") if is_election(r)]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not [item for item in env if item["name"].startswith("TRADERBOT_LEADER")]


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (["leaderElection.enabled=false", "replicaCount=2"], "needs leaderElection.enabled"),
        (
            ["leaderElection.leaseDurationSeconds=5", "leaderElection.renewDeadlineSeconds=5"],
            "must be longer than renewDeadlineSeconds",
        ),
    ],
)
def test_replicas_that_could_both_reconcile_are_refused(
    helm: Helm, settings: list[str], reason: str
) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    result = helm.run("template", "x", str(CHART_DIR), *args, check=False)
    assert result.returncode != 0
    assert reason in result.stderr


def test_servicemonitor_without_its_service_fails_with_a_reason(helm: Helm) -> None:
    result = helm.run(
        "template",
        "x",
        str(CHART_DIR),
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.service.enabled=false",
        check=False,
    )
    assert result.returncode != 0
    assert "needs metrics.service.enabled" in result.stderr


def test_network_policy_opens_only_metrics_in_and_dns_bots_and_api_server_out(helm: Helm) -> None:
    manifests = helm.template(
        set_values={
            "networkPolicy.enabled": "true",
            "networkPolicy.apiServerCIDRs": "{10.96.0.1/32}",
        }
    )
    policy = one(manifests, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    dns, bots, api_server = policy["spec"]["egress"]
    assert {port["port"] for port in dns["ports"]} == {53}
    # The bots' API pods, whatever their namespace and port: the operator reads their risk.
    assert bots == {
        "to": [
            {
                "namespaceSelector": {},
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/name": "trader-api",
                        "app.kubernetes.io/component": "api",
                    }
                },
            }
        ]
    }
    assert api_server["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}}]
    assert {port["port"] for port in api_server["ports"]} == {443, 6443}
    assert not by_kind(helm.template(), "NetworkPolicy")


def test_release_objects_live_in_the_release_namespace(helm: Helm) -> None:
    for manifest in helm.template(values_files=[CHART_DIR / "ci" / "monitoring-values.yaml"]):
        if manifest["kind"] in {"ClusterRole", "ClusterRoleBinding"}:
            assert "namespace" not in manifest["metadata"]
        else:
            assert manifest["metadata"]["namespace"] == "traderbot-system", manifest["kind"]


def leaf_keys(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaf_keys(value, f"{path}.")
        else:
            yield path


def test_chart_readme_documents_every_value() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for key in leaf_keys(values):
        if key.startswith("resources."):
            continue  # one row documents the whole block
        last = key.rsplit(".", 1)[-1]
        documented = f"`{key}`" in readme or (
            f".{last}`" in readme and f"`{key.rsplit('.', 1)[0]}." in readme
        )
        assert documented, f"charts/traderbot-operator/README.md does not document {key}"
    assert "`resources`" in readme
