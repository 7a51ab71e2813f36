"""Every child the operator builds is valid Kubernetes, labelled, owned and locked down."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest

from traderbot_operator.desired import build_children
from traderbot_operator.desired.api import build_api_deployment, config_hash
from traderbot_operator.desired.backup import build_backup_pvc
from traderbot_operator.desired.credentials import build_database_secret, read_key_of
from traderbot_operator.desired.redis import build_redis_statefulset
from traderbot_operator.models import TraderBot
from unit.operator.bots import UID, bot, example

KUBERNETES_VERSION = "1.34.0"
CONTRACT_ENV = {
    "PORT", "LOG_LEVEL", "TRADING_MODE", "EXCHANGE", "API_KEY", "READ_API_KEY",
    "DATABASE_HOST", "DATABASE_PORT", "DATABASE_NAME", "DATABASE_USER", "DATABASE_PASSWORD",
    "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "STRATEGIES",
    "RISK_MAX_ORDER_NOTIONAL", "RISK_MAX_POSITION_NOTIONAL", "RISK_MAX_OPEN_ORDERS",
    "RISK_DAILY_LOSS_LIMIT", "RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST",
    "KLINES_RETENTION_DAYS", "KLINES_COMPRESS_AFTER_DAYS", "POD_NAME",
}  # fmt: skip
SECRET_ENV = {"API_KEY", "READ_API_KEY", "DATABASE_USER", "DATABASE_PASSWORD", "REDIS_PASSWORD"}

BOTS = {
    "minimal": example("traderbot-minimal.yaml"),
    "full": example("traderbot-full.yaml"),
    "no-persistence-delete": bot(
        "charlie", deletionPolicy="Delete", redis={"persistence": False}, backup={"enabled": False}
    ),
    "live": bot(
        "delta",
        mode="live",
        engine={
            "exchange": {"name": "binance", "credentialsSecretRef": {"name": "delta-exchange"}}
        },
    ),
}


def _fixed_token(length: int) -> str:
    return f"generated-{length}"


def _children(model: TraderBot, **kwargs: Any) -> list[dict[str, Any]]:
    return build_children(model, **{"token": _fixed_token, **kwargs})


def _pod_specs(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = manifest.get("spec", {})
    if manifest["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif "template" in spec:
        yield spec["template"]["spec"]


@pytest.mark.parametrize("case", BOTS)
def test_every_child_validates_against_the_kubernetes_schema(case: str) -> None:
    for child in _children(BOTS[case]):
        kubernetes_validate.validate(child, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = build_api_deployment(BOTS["minimal"])
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("case", BOTS)
def test_children_carry_standard_labels_and_the_controller_owner(case: str) -> None:
    model = BOTS[case]
    for child in _children(model):
        meta = child["metadata"]
        assert meta["namespace"] == model.namespace
        assert meta["name"].startswith(f"{model.name}-")
        assert meta["labels"]["app.kubernetes.io/instance"] == model.name
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "traderbot-operator"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "traderbot"
        assert meta["labels"]["app.kubernetes.io/version"] == model.spec.version
        assert {"app.kubernetes.io/name", "app.kubernetes.io/component"} <= meta["labels"].keys()
        if model.spec.deletion_policy == "Retain" and (
            child["kind"] == "PersistentVolumeClaim" or meta["name"].endswith("-db-credentials")
        ):
            assert meta["ownerReferences"] == []  # kept with the data, see below
            continue
        [owner] = meta["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "TraderBot",
            model.name,
            UID,
            True,
        )


def test_child_names_are_unique_per_kind() -> None:
    keys = [(c["kind"], c["metadata"]["name"]) for c in _children(BOTS["full"])]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("case", BOTS)
def test_every_pod_meets_the_restricted_pod_security_standard(case: str) -> None:
    pods = [pod for child in _children(BOTS[case]) for pod in _pod_specs(child)]
    assert len(pods) >= 3
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert "privileged" not in security
        assert "hostNetwork" not in pod
        assert all("hostPath" not in volume for volume in pod.get("volumes", []))


def test_api_env_is_exactly_the_configuration_contract() -> None:
    [container] = build_api_deployment(BOTS["full"])["spec"]["template"]["spec"]["containers"]
    names = [entry["name"] for entry in container["env"]]
    assert len(names) == len(set(names))
    assert set(names) == CONTRACT_ENV


def test_api_env_takes_every_credential_from_a_secret() -> None:
    model = BOTS["live"]
    [container] = build_api_deployment(model)["spec"]["template"]["spec"]["containers"]
    env = {entry["name"]: entry for entry in container["env"]}
    for name in SECRET_ENV | {"EXCHANGE_API_KEY", "EXCHANGE_API_SECRET"}:
        assert "value" not in env[name], name
        assert env[name]["valueFrom"]["secretKeyRef"]["name"]
    assert env["EXCHANGE_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "delta-exchange"


def test_no_manifest_contains_a_generated_secret_value_except_its_own_secret() -> None:
    for child in _children(BOTS["full"]):
        if child["kind"] == "Secret":
            continue
        assert "generated-" not in json.dumps(child), child["metadata"]["name"]


def test_api_env_reflects_the_spec() -> None:
    [container] = build_api_deployment(BOTS["full"])["spec"]["template"]["spec"]["containers"]
    env = {entry["name"]: entry.get("value") for entry in container["env"]}
    assert env["LOG_LEVEL"] == "info"
    assert env["RISK_MAX_ORDER_NOTIONAL"] == "10000"
    assert env["DATABASE_HOST"] == "bravo-db"
    assert env["REDIS_HOST"] == "bravo-redis"
    strategies = json.loads(env["STRATEGIES"] or "")
    assert [s["name"] for s in strategies] == ["btc-sma", "eth-rsi"]
    assert strategies[1]["enabled"] is False


def test_api_key_comes_from_the_named_secret_when_given() -> None:
    model = BOTS["full"]
    [container] = build_api_deployment(model)["spec"]["template"]["spec"]["containers"]
    [api_key] = [e for e in container["env"] if e["name"] == "API_KEY"]
    assert api_key["valueFrom"]["secretKeyRef"] == {
        "name": "bravo-api-key-custom",
        "key": "api-key",
    }
    assert "bravo-api-key" not in [c["metadata"]["name"] for c in _children(model)]


@pytest.mark.parametrize("name", ["minimal", "full"])
def test_every_bot_gets_its_own_generated_read_only_key(name: str) -> None:
    """The operator reads with it, whether or not the spec names the full key's Secret."""
    model = BOTS[name]
    secrets = {c["metadata"]["name"]: c for c in _children(model) if c["kind"] == "Secret"}
    read_key = secrets[f"{model.name}-api-read-key"]
    value = read_key["stringData"]["read-api-key"]
    assert value.startswith("generated-")
    assert read_key_of(read_key) == value
    assert read_key_of({"data": {"read-api-key": base64.b64encode(value.encode()).decode()}}) == (
        value
    )
    assert read_key_of({"data": {"read-api-key": "not base64!"}}) is None
    assert read_key_of(None) is None
    [container] = build_api_deployment(model)["spec"]["template"]["spec"]["containers"]
    [env] = [e for e in container["env"] if e["name"] == "READ_API_KEY"]
    assert env["valueFrom"]["secretKeyRef"] == {
        "name": f"{model.name}-api-read-key",
        "key": "read-api-key",
    }


def test_deployment_rolls_safely() -> None:
    deployment = build_api_deployment(BOTS["minimal"])
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["terminationGracePeriodSeconds"] == 30
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["image"] == "ghcr.io/traderbot-dev/trader-api:0.1.0"


def test_config_hash_rolls_pods_on_config_changes_but_not_on_scaling() -> None:
    base = bot()
    assert config_hash(bot(api={"logLevel": "debug"})) != config_hash(base)
    assert config_hash(bot(version="0.2.0")) != config_hash(base)
    assert config_hash(bot(engine={"risk": {"maxOpenOrders": 3}})) != config_hash(base)
    assert config_hash(bot(replicas=3)) == config_hash(base)
    annotations = build_api_deployment(base)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["traderbot.dev/config-hash"] == config_hash(base)


def _api_hash(model: TraderBot, live: dict[str, Any], **kwargs: Any) -> str:
    [deployment] = [
        c for c in _children(model, live_secrets=live, **kwargs) if c["kind"] == "Deployment"
    ]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    hashed: str = annotations["traderbot.dev/config-hash"]
    return hashed


def _as_stored(secret: dict[str, Any]) -> dict[str, Any]:
    """Return a built Secret as the API server stores it (stringData -> base64 data)."""
    data = {k: base64.b64encode(v.encode()).decode() for k, v in secret["stringData"].items()}
    return {**{k: v for k, v in secret.items() if k != "stringData"}, "data": data}


def test_a_rotated_api_key_rolls_the_pods() -> None:
    own_key = bot(api={"apiKeySecretRef": {"name": "mine"}})
    before = {"mine": {"data": {"api-key": base64.b64encode(b"old").decode()}}}
    after = {"mine": {"data": {"api-key": base64.b64encode(b"new").decode()}}}
    assert _api_hash(own_key, before) == _api_hash(own_key, before)
    assert _api_hash(own_key, after) != _api_hash(own_key, before)
    generated = bot()
    secrets = {
        c["metadata"]["name"]: _as_stored(c) for c in _children(generated) if c["kind"] == "Secret"
    }
    rotated = copy.deepcopy(secrets)
    rotated["alpha-api-key"]["data"]["api-key"] = base64.b64encode(b"rotated").decode()
    assert _api_hash(generated, rotated) != _api_hash(generated, secrets)


def test_creating_the_generated_secrets_does_not_roll_the_pods_again() -> None:
    model = bot()
    created = {
        c["metadata"]["name"]: _as_stored(c) for c in _children(model) if c["kind"] == "Secret"
    }
    # First pass: nothing exists yet, the Secrets are built with the same (fixed) tokens.
    assert _api_hash(model, {}) == _api_hash(model, created)
    assert _api_hash(model, {}) != _api_hash(model, {}, token=lambda _: "another-token")


def test_selectors_do_not_depend_on_the_version() -> None:
    old, new = bot(version="0.1.0"), bot(version="0.2.0")
    for before, after in zip(_children(old), _children(new), strict=True):
        assert before.get("spec", {}).get("selector") == after.get("spec", {}).get("selector")


def test_database_secret_is_generated_with_the_token_factory() -> None:
    secret = build_database_secret(bot())
    assert secret["stringData"]["username"] == "trader"
    assert len(secret["stringData"]["password"]) >= 40  # 32 random bytes, urlsafe base64
    assert (
        secret["stringData"]["password"] != build_database_secret(bot())["stringData"]["password"]
    )


def test_redis_requires_a_password_and_persists_per_spec() -> None:
    persistent = build_redis_statefulset(bot())
    args = persistent["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    assert args[args.index("--appendonly") + 1] == "yes"
    assert persistent["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "1Gi"
    }
    ephemeral = build_redis_statefulset(bot(redis={"persistence": False}))
    assert "volumeClaimTemplates" not in ephemeral["spec"]
    assert ephemeral["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]


def test_data_volumes_are_kept_unless_deletion_policy_is_delete() -> None:
    kept, deleted = bot(), bot(deletionPolicy="Delete")
    assert build_backup_pvc(kept)["metadata"]["ownerReferences"] == []
    assert build_backup_pvc(deleted)["metadata"]["ownerReferences"][0]["uid"] == UID
    # The database password goes (or stays) with the database's volume.
    assert build_database_secret(kept)["metadata"]["ownerReferences"] == []
    assert build_database_secret(deleted)["metadata"]["ownerReferences"][0]["uid"] == UID
    for model, policy in ((kept, "Retain"), (deleted, "Delete")):
        statefulsets = [c for c in _children(model) if c["kind"] == "StatefulSet"]
        assert {
            s["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] for s in statefulsets
        } == {policy}


def _network_policies(model: TraderBot) -> dict[str, dict[str, Any]]:
    return {
        c["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]: c["spec"]
        for c in _children(model)
        if c["kind"] == "NetworkPolicy"
    }


def test_every_pod_template_is_selected_by_a_network_policy() -> None:
    for model in BOTS.values():
        children = _children(model)
        selectors = [c["spec"]["podSelector"] for c in children if c["kind"] == "NetworkPolicy"]
        for child in children:
            if child["kind"] in {"Deployment", "StatefulSet"}:
                pod_labels = child["spec"]["template"]["metadata"]["labels"]
                assert any(s["matchLabels"].items() <= pod_labels.items() for s in selectors), (
                    child["metadata"]["name"]
                )


def test_the_api_accepts_clients_from_anywhere_unless_the_spec_lists_them() -> None:
    [open_rule] = _network_policies(bot())["api"]["ingress"]
    assert open_rule == {"ports": [{"protocol": "TCP", "port": 3000}]}
    [listed] = _network_policies(BOTS["full"])["api"]["ingress"]
    assert listed["ports"] == [{"protocol": "TCP", "port": 3000}]
    assert listed["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "trading-desk"}}},
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        },
        {"ipBlock": {"cidr": "203.0.113.0/24"}},
    ]


def _egress(model: TraderBot) -> list[tuple[str, str, int]]:
    """Return (destination, protocol, port) for each connection the API pods may open."""
    spec = _network_policies(model)["api"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    found = []
    for rule in spec["egress"]:
        targets = [peer["podSelector"]["matchLabels"] for peer in rule.get("to", [])]
        where = ",".join(
            f"{t['app.kubernetes.io/instance']}/{t['app.kubernetes.io/component']}" for t in targets
        )
        found += [(where or "anywhere", port["protocol"], port["port"]) for port in rule["ports"]]
    return found


def test_the_api_connects_only_to_its_database_redis_dns_and_in_live_mode_https() -> None:
    assert _egress(bot()) == [
        ("alpha/database", "TCP", 5432),
        ("alpha/cache", "TCP", 6379),
        ("anywhere", "UDP", 53),
        ("anywhere", "TCP", 53),
    ]
    assert _egress(BOTS["live"]) == [
        ("delta/database", "TCP", 5432),
        ("delta/cache", "TCP", 6379),
        ("anywhere", "UDP", 53),
        ("anywhere", "TCP", 53),
        ("anywhere", "TCP", 443),
    ]


def test_network_policies_admit_only_this_bots_api_and_backup_pods() -> None:
    policies = [spec for component, spec in _network_policies(bot()).items() if component != "api"]
    assert len(policies) == 2
    for policy in policies:
        [rule] = policy["ingress"]
        [peer] = rule["from"]
        assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "alpha"
        assert peer["podSelector"]["matchExpressions"][0]["values"] == ["api", "backup"]
        assert "namespaceSelector" not in peer


def test_backup_cronjob_never_overlaps_or_piles_up() -> None:
    [cronjob] = [
        c
        for c in _children(bot())
        if (c["kind"], c["metadata"]["name"]) == ("CronJob", "alpha-backup")
    ]
    spec = cronjob["spec"]
    assert spec["schedule"] == "0 3 * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["trader-backup"]
    assert not [c for c in _children(bot(backup={"enabled": False})) if c["kind"] == "CronJob"]


def test_monitoring_uses_a_service_monitor_only_when_the_cluster_serves_one() -> None:
    model = bot(monitoring={"enabled": True})
    with_crd = _children(model, service_monitor_available=True)
    without_crd = _children(model, service_monitor_available=False)
    assert [c["kind"] for c in with_crd].count("ServiceMonitor") == 1
    assert "ServiceMonitor" not in [c["kind"] for c in without_crd]
    [deployment] = [c for c in without_crd if c["kind"] == "Deployment"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    [deployment] = [c for c in with_crd if c["kind"] == "Deployment"]
    assert "prometheus.io/scrape" not in deployment["spec"]["template"]["metadata"]["annotations"]
    assert "ServiceMonitor" not in [
        c["kind"] for c in _children(bot(), service_monitor_available=True)
    ]


def test_an_api_upgrade_does_not_touch_the_database_or_redis_pods() -> None:
    def templates(model: TraderBot) -> dict[str, Any]:
        return {
            c["metadata"]["name"]: c["spec"]["template"]
            for c in _children(model)
            if c["kind"] == "StatefulSet"
        }

    assert templates(bot(version="0.1.0")) == templates(bot(version="0.2.0"))
