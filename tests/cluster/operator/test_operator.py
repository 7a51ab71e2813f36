"""The operator against a real API server: converge, scale, roll, repair, refuse, survive.

Each test gets its own namespace, PersistentVolumes and an in-process operator
that watches only that namespace with the least-privilege ClusterRole.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client
from lightkube.codecs import from_dict
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.batch_v1 import CronJob
from lightkube.resources.core_v1 import Event, PersistentVolumeClaim, Secret, Service
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.policy_v1 import PodDisruptionBudget
from lightkube.types import PatchType

from cluster.operator.runner import OperatorRunner
from support.kube import ClusterUnderTest, eventually
from traderbot_devtools import Binaries
from traderbot_operator.desired import build_children
from traderbot_operator.desired.common import instance_labels
from traderbot_operator.kube import LISTABLE_KINDS, Kube, TraderBotResource
from traderbot_operator.models import TraderBot
from traderbot_operator.reconcile import differences, key_of

READY_TIMEOUT = 120.0
FULL_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "traderbot-full.yaml"
INSTANCE = "app.kubernetes.io/instance"
CHILD_KINDS: tuple[Any, ...] = (
    Secret,
    Service,
    Deployment,
    StatefulSet,
    PodDisruptionBudget,
    NetworkPolicy,
    CronJob,
)
EXPECTED_CHILDREN = {
    "Secret": 4,  # database, Redis, API key, read-only API key
    "Service": 5,
    "Deployment": 1,
    "StatefulSet": 2,
    "PodDisruptionBudget": 1,
    "NetworkPolicy": 3,
    "CronJob": 2,  # backups and their verification
}


def _bot_body(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBot",
        "metadata": {"name": name},
        "spec": spec or {},
    }


def _create_bot(
    kube: Client, namespace: str, name: str, spec: dict[str, Any] | None = None
) -> None:
    kube.create(TraderBotResource.from_dict(_bot_body(name, spec)), namespace=namespace)


def _get(kube: Client, kind: Any, name: str, namespace: str) -> dict[str, Any]:
    """Return a live object as a plain dict (the typed models are all-Optional)."""
    found: dict[str, Any] = kube.get(kind, name, namespace=namespace).to_dict()
    return found


def _create_key_secret(kube: Client, namespace: str, name: str, *, key: str = "api-key") -> None:
    """Create a user's API key Secret, as an SRE would before referencing it."""
    value = base64.b64encode(secrets.token_bytes(24)).decode()
    kube.create(Secret(metadata=ObjectMeta(name=name, namespace=namespace), data={key: value}))


def _bot(kube: Client, namespace: str, name: str) -> dict[str, Any]:
    return _get(kube, TraderBotResource, name, namespace)


def _pod_spec(kube: Client, deployment: str, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = _get(kube, Deployment, deployment, namespace)["spec"]["template"]["spec"]
    return spec


def _patch_spec(kube: Client, namespace: str, name: str, spec: dict[str, Any]) -> None:
    kube.patch(
        TraderBotResource, name, {"spec": spec}, namespace=namespace, patch_type=PatchType.MERGE
    )


def _phase_is(kube: Client, namespace: str, name: str, phase: str) -> Callable[[], Any]:
    def probe() -> dict[str, Any] | None:
        bot = _bot(kube, namespace, name)
        return bot if bot.get("status", {}).get("phase") == phase else None

    return probe


def _wait_phase(
    kube: Client, namespace: str, name: str, phase: str, timeout: float = READY_TIMEOUT
) -> dict[str, Any]:
    try:
        found: dict[str, Any] = eventually(
            _phase_is(kube, namespace, name, phase),
            what=f"TraderBot {namespace}/{name} phase {phase}",
            timeout=timeout,
        )
    except AssertionError as error:
        # NB: says whether kopf ever handled the bot (its annotations) and what the
        # status says, to tell a blind operator from a slow or failing pass.
        body = _bot(kube, namespace, name)
        meta = body.get("metadata") or {}
        seen = {k: v[:300] for k, v in (meta.get("annotations") or {}).items()}
        # ... and whether the pods it waits for could run at all (a claim never bound).
        claims = {
            c.metadata.name: (c.status.phase if c.status else None, c.spec.volumeName)
            for c in kube.list(PersistentVolumeClaim, namespace=namespace)
            if c.metadata is not None and c.spec is not None
        }
        raise AssertionError(
            f"{error}; status: {body.get('status')!r}; annotations: {seen!r}; "
            f"finalizers: {meta.get('finalizers')!r}; claims: {claims!r}"
        ) from error
    return found


def kubectl_get_tb(cluster: ClusterUnderTest, namespace: str, name: str) -> list[str]:
    """The columns ``kubectl get tb NAME`` prints (the CRD's printer columns)."""
    kubectl = Binaries.find().kubectl
    assert kubectl is not None, "no kubectl: make k8s-binaries builds it with the control plane"
    return subprocess.run(
        [str(kubectl), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace,
         "get", "tb", name, "--no-headers"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout.split()  # fmt: skip


def _children(kube: Client, namespace: str, name: str) -> dict[str, list[dict[str, Any]]]:
    return {
        kind.__name__: [
            obj.to_dict() for obj in kube.list(kind, namespace=namespace, labels={INSTANCE: name})
        ]
        for kind in CHILD_KINDS
    }


def _claim_names(kube: Client, namespace: str) -> set[str]:
    return {
        c.to_dict()["metadata"]["name"]
        for c in kube.list(PersistentVolumeClaim, namespace=namespace)
    }


def _events_of(kube: Client, namespace: str, name: str) -> list[dict[str, Any]]:
    events = (e.to_dict() for e in kube.list(Event, namespace=namespace))
    return [e for e in events if e["involvedObject"].get("name") == name]


def _conditions(bot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in bot["status"]["conditions"]}


def _resource_versions(kube: Client, namespace: str, name: str) -> dict[str, str]:
    versions = {
        f"{kind}/{obj['metadata']['name']}": obj["metadata"]["resourceVersion"]
        for kind, objs in _children(kube, namespace, name).items()
        for obj in objs
    }
    versions["TraderBot"] = _bot(kube, namespace, name)["metadata"]["resourceVersion"]
    return versions


def _wait_timer_passes(operator: OperatorRunner, count: int) -> None:
    start = operator.timer_passes()
    eventually(
        lambda: operator.timer_passes() >= start + count,
        what=f"{count} drift-timer passes",
        timeout=30,
    )


_SMA = {"name": "s", "kind": "sma_crossover", "symbol": "BTCUSDT"}

# --- the API server enforces our schema -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("live", {"mode": "live"}, "mode: live requires spec.engine.exchange.name"),
        (
            "paper-binance",
            {"engine": {"exchange": {"name": "binance"}}},
            "mode: paper trades against the built-in paper exchange only",
        ),
        (
            "retention",
            {"database": {"klinesRetentionDays": 3, "compressAfterDays": 7}},
            "klinesRetentionDays must be at least compressAfterDays",
        ),
        (
            "burst",
            {"api": {"rateLimit": {"perSecond": 50, "burst": 10}}},
            "burst must be at least spec.api.rateLimit.perSecond",
        ),
        (
            "risk",
            {"engine": {"risk": {"maxOrderNotional": 100, "maxPositionNotional": 10}}},
            "maxPositionNotional must be at least",
        ),
        ("x" * 41, {}, "metadata.name must be at most 40 characters"),
        ("level", {"api": {"logLevel": "verbose"}}, "Unsupported value"),
        (
            "climb",
            {"api": {"apiKeySecretRef": {"name": "../../kube-system/secrets/x"}}},
            "spec.api.apiKeySecretRef.name: Invalid value",
        ),
        (
            "climb-exchange",
            {"engine": {"exchange": {"credentialsSecretRef": {"name": "a/b"}}}},
            "spec.engine.exchange.credentialsSecretRef.name: Invalid value",
        ),
        (
            "class",
            {"redis": {"storage": {"storageClassName": "Fast Disks"}}},
            "spec.redis.storage.storageClassName: Invalid value",
        ),
        ("image", {"image": "ghcr.io/x/y;rm -rf /"}, "spec.image: Invalid value"),
        ("blank", {"database": {"image": " postgres:17"}}, "spec.database.image: Invalid value"),
        ("tags", {"redis": {"image": "redis:7:8"}}, "spec.redis.image: Invalid value"),
        (
            "interval",
            {"engine": {"strategies": [{**_SMA, "interval": "3m"}]}},
            "Unsupported value",
        ),
    ],
    ids=[
        "live-without-credentials",
        "paper-on-real-exchange",
        "retention",
        "burst",
        "risk",
        "long-name",
        "log-level",
        "secret-ref-leaves-namespace",
        "exchange-secret-ref-with-slash",
        "storage-class-not-a-name",
        "image-with-a-command",
        "image-with-a-leading-blank",
        "image-with-two-tags",
        "interval-trader-api-does-not-know",
    ],
)
@pytest.mark.usefixtures("crd")
def test_bad_traderbots_are_refused_with_actionable_messages(
    kube: Client, namespace: str, name: str, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiError) as refused:
        _create_bot(kube, namespace, name, spec)
    assert refused.value.status.code == 422
    assert message in (refused.value.status.message or "")


def test_storage_class_cannot_change_after_creation(
    kube: Client, crd: dict[str, Any], namespace: str
) -> None:
    _create_bot(kube, namespace, "fixed", {"database": {"storage": {"storageClassName": "fast"}}})
    with pytest.raises(ApiError) as refused:
        _patch_spec(
            kube, namespace, "fixed", {"database": {"storage": {"storageClassName": "slow"}}}
        )
    assert "storageClassName cannot change after creation" in (refused.value.status.message or "")


def test_the_server_fills_in_every_default(
    kube: Client, crd: dict[str, Any], namespace: str
) -> None:
    _create_bot(kube, namespace, "defaults")
    spec = _bot(kube, namespace, "defaults")["spec"]
    assert spec["version"] == "0.1.0"
    assert spec["backup"]["schedule"] == "0 3 * * *"
    assert spec["database"]["image"] == "timescale/timescaledb:2.17.2-pg16"
    assert spec["api"]["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}


# --- the operator -------------------------------------------------------------------------


def test_a_traderbot_converges_to_ready_with_owned_children(
    kube: Client, namespace: str, operator: OperatorRunner, cluster: ClusterUnderTest
) -> None:
    _create_bot(kube, namespace, "alpha")
    bot = _wait_phase(kube, namespace, "alpha", "Ready")
    status = bot["status"]
    assert status["ready"] == "1/1"
    assert status["version"] == "0.1.0"
    assert status["observedGeneration"] == bot["metadata"]["generation"]
    assert status["endpoints"]["api"] == f"http://alpha-api.{namespace}.svc:3000"
    assert {t: c["status"] for t, c in _conditions(bot).items()} == dict.fromkeys(
        [
            "Ready",
            "ApiReady",
            "DatabaseReady",
            "CacheReady",
            "BackupScheduled",
            "BackupHealthy",
            "Reconciled",
        ],
        "True",
    ) | {
        "BackupVerified": "Unknown",
        "UpgradeFailed": "False",
        # kwok's pods serve nothing: the read fails (test_trading_state.py)
        "TradingHalted": "Unknown",
    }
    children = _children(kube, namespace, "alpha")
    assert {kind: len(objs) for kind, objs in children.items()} == EXPECTED_CHILDREN
    for objs in children.values():
        for obj in objs:
            if obj["metadata"]["name"] == "alpha-db-credentials":
                # deletionPolicy Retain: the password stays with the database volume
                assert not obj["metadata"].get("ownerReferences")
                continue
            [owner] = obj["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
                "TraderBot",
                "alpha",
                bot["metadata"]["uid"],
                True,
            )
    backup_claim = _get(kube, PersistentVolumeClaim, "alpha-backup", namespace)
    assert not backup_claim["metadata"].get("ownerReferences")  # Retain: survives the bot
    reasons = {e.get("reason") for e in _events_of(kube, namespace, "alpha")}
    assert "Created" in reasons
    # Built once and right: no child (the API pod template's config hash above all) was
    # patched on the way to Ready.
    assert "Updated" not in reasons

    assert kubectl_get_tb(cluster, namespace, "alpha")[:4] == ["alpha", "Ready", "1/1", "0.1.0"]


def test_the_full_example_is_accepted_as_written_and_converges(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    body = yaml.safe_load(FULL_EXAMPLE.read_text())
    key_ref = body["spec"]["api"]["apiKeySecretRef"]
    _create_key_secret(kube, namespace, key_ref["name"], key=key_ref["key"])
    # The real server runs the CEL rules and prunes unknown fields; the unit tier cannot.
    kube.create(TraderBotResource.from_dict(body), namespace=namespace)
    name = body["metadata"]["name"]
    bot = _wait_phase(kube, namespace, name, "Ready")
    assert differences(body["spec"], bot["spec"]) == [], "the server dropped or changed a field"
    assert bot["status"]["ready"] == "2/2"
    policy = _get(kube, NetworkPolicy, f"{name}-api", namespace)["spec"]
    [ingress] = policy["ingress"]
    assert ingress["from"] == body["spec"]["api"]["allowedClients"]


def _template_hash(kube: Client, deployment: str, namespace: str) -> str:
    template = _get(kube, Deployment, deployment, namespace)["spec"]["template"]
    found: str = template["metadata"]["annotations"]["traderbot.dev/config-hash"]
    return found


def test_a_rotated_api_key_rolls_the_api_pods(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_key_secret(kube, namespace, "keyed-key")
    _create_bot(kube, namespace, "keyed", {"api": {"apiKeySecretRef": {"name": "keyed-key"}}})
    _wait_phase(kube, namespace, "keyed", "Ready")
    before = _template_hash(kube, "keyed-api", namespace)
    rotated = base64.b64encode(secrets.token_bytes(24)).decode()
    kube.patch(
        Secret,
        "keyed-key",
        {"data": {"api-key": rotated}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    # Secrets are not watched: the drift timer (2 s here) reads the new content.
    eventually(
        lambda: _template_hash(kube, "keyed-api", namespace) != before,
        what="a new config hash on the API pod template",
    )
    _wait_phase(kube, namespace, "keyed", "Ready")


def _versions(observed: dict[Any, dict[str, Any] | None]) -> dict[Any, str | None]:
    return {
        key: None if obj is None else obj["metadata"]["resourceVersion"]
        for key, obj in observed.items()
    }


async def test_a_bot_is_read_with_one_list_per_kind_and_unlabelled_children_still_found(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "seen")
    _wait_phase(kube, namespace, "seen", "Ready")
    # NB: the backup claim binds on its own time (no pod waits for it); its binding is
    # a write of the volume controller's that would change a version between reads.
    eventually(
        lambda: all(
            claim.status is not None and claim.status.phase == "Bound"
            for claim in kube.list(PersistentVolumeClaim, namespace=namespace)
        ),
        what="every claim Bound",
    )
    _patch_spec(kube, namespace, "seen", {"paused": True})  # nothing repairs what we edit
    model = TraderBot.from_body(_wait_phase(kube, namespace, "seen", "Paused"))
    keys = [key_of(child) for child in build_children(model)]
    client = Kube.connect(kubeconfig=str(operator.kubeconfig))
    try:
        one_by_one = {key: await client.get(namespace=namespace, key=key) for key in keys}
        before = Counter(client.calls)
        observed = await client.observe(
            namespace=namespace, keys=keys, labels=instance_labels(model)
        )
        calls = client.calls - before
        assert _versions(observed) == _versions(one_by_one)
        per_kind = Counter(key[:2] for key in keys)
        listed = [kind for kind, n in per_kind.items() if n > 1 and kind[1] in LISTABLE_KINDS]
        assert {kind for _, kind in listed} == {
            "Service",
            "NetworkPolicy",
            "StatefulSet",
            "CronJob",
        }
        assert calls["list"] == len(listed)
        assert calls["get"] == len(keys) - sum(per_kind[kind] for kind in listed)

        kube.patch(
            Service,
            "seen-api",
            {"metadata": {"labels": {INSTANCE: None}}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        again = await client.observe(namespace=namespace, keys=keys, labels=instance_labels(model))
        found = again[("v1", "Service", "seen-api")]
        assert found is not None, "a child without its labels must be found by name"
        assert INSTANCE not in found["metadata"]["labels"]
    finally:
        await client.close()


def test_a_converged_bot_gets_no_writes_from_reconciles(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "quiet")
    _wait_phase(kube, namespace, "quiet", "Ready")
    _wait_timer_passes(operator, 2)  # let the last status refresh land
    writes = operator.writes
    versions = _resource_versions(kube, namespace, "quiet")
    _wait_timer_passes(operator, 3)
    assert operator.writes == writes
    assert _resource_versions(kube, namespace, "quiet") == versions


def test_kubectl_scale_changes_the_api_replicas(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "scaled")
    _wait_phase(kube, namespace, "scaled", "Ready")
    kube.patch(
        TraderBotResource.Scale,
        "scaled",
        {"spec": {"replicas": 2}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    eventually(
        lambda: _bot(kube, namespace, "scaled")["status"].get("ready") == "2/2",
        what="status.ready 2/2",
        timeout=READY_TIMEOUT,
    )
    assert _get(kube, Deployment, "scaled-api", namespace)["spec"]["replicas"] == 2
    scale = _get(kube, TraderBotResource.Scale, "scaled", namespace)
    assert scale["status"]["replicas"] == 2
    assert "app.kubernetes.io/instance=scaled" in scale["status"]["selector"]


def test_version_and_log_level_changes_roll_the_pods(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "rolling")
    _wait_phase(kube, namespace, "rolling", "Ready")
    before = _get(kube, Deployment, "rolling-api", namespace)["spec"]["template"]
    _patch_spec(kube, namespace, "rolling", {"version": "0.2.0", "api": {"logLevel": "debug"}})

    def rolled() -> bool:
        bot = _bot(kube, namespace, "rolling")
        return bool(
            bot["status"].get("version") == "0.2.0" and bot["status"].get("phase") == "Ready"
        )

    eventually(rolled, what="version 0.2.0 running and Ready", timeout=READY_TIMEOUT)
    after = _get(kube, Deployment, "rolling-api", namespace)["spec"]["template"]
    hash_key = "traderbot.dev/config-hash"
    assert after["metadata"]["annotations"][hash_key] != before["metadata"]["annotations"][hash_key]
    [container] = after["spec"]["containers"]
    assert container["image"] == "ghcr.io/traderbot-dev/trader-api:0.2.0"
    assert {e["name"]: e.get("value") for e in container["env"]}["LOG_LEVEL"] == "debug"


def test_deleted_and_edited_children_are_restored(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "repair")
    _wait_phase(kube, namespace, "repair", "Ready")
    old_uid = _get(kube, Service, "repair-api", namespace)["metadata"]["uid"]
    kube.delete(Service, "repair-api", namespace=namespace)
    eventually(
        lambda: _get(kube, Service, "repair-api", namespace)["metadata"]["uid"] != old_uid,
        what="Service repair-api recreated",
    )
    kube.patch(
        Deployment,
        "repair-api",
        {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 10}}}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    eventually(
        lambda: _pod_spec(kube, "repair-api", namespace)["terminationGracePeriodSeconds"] == 30,
        what="hand edit of the Deployment undone",
    )


def test_an_invalid_spec_fails_loudly_and_deletes_nothing(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "strict")
    _wait_phase(kube, namespace, "strict", "Ready")
    deployment_uid = _get(kube, Deployment, "strict-api", namespace)["metadata"]["uid"]
    _patch_spec(kube, namespace, "strict", {"api": {"apiKeySecretRef": {"name": "strict-own-key"}}})
    failed = _wait_phase(kube, namespace, "strict", "Failed")
    reconciled = _conditions(failed)["Reconciled"]
    assert reconciled["reason"] == "InvalidSpec"
    assert f"Secret {namespace}/strict-own-key does not exist" in reconciled["message"]
    assert _get(kube, Deployment, "strict-api", namespace)["metadata"]["uid"] == deployment_uid
    events = _events_of(kube, namespace, "strict")
    assert any(e.get("reason") == "InvalidSpec" and e.get("type") == "Warning" for e in events)

    _create_key_secret(kube, namespace, "strict-own-key")
    _wait_phase(kube, namespace, "strict", "Ready")
    [container] = _pod_spec(kube, "strict-api", namespace)["containers"]
    [api_key] = [e for e in container["env"] if e["name"] == "API_KEY"]
    assert api_key["valueFrom"]["secretKeyRef"]["name"] == "strict-own-key"


def test_objects_that_only_share_a_childs_name_are_never_taken_over(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    """Issue 14, class 9: a user's Service and Secret with children's names stay theirs."""
    users_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "mine-api", "namespace": namespace, "labels": {"team": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    users_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mine-db-credentials", "namespace": namespace},
        "stringData": {"note": "not a database password"},
    }
    kube.create(from_dict(users_service))
    kube.create(from_dict(users_secret))
    _create_bot(kube, namespace, "mine")
    failed = _wait_phase(kube, namespace, "mine", "Failed")
    reconciled = _conditions(failed)["Reconciled"]
    assert reconciled["reason"] == "InvalidSpec"
    for what in (f"Service {namespace}/mine-api", f"Secret {namespace}/mine-db-credentials"):
        assert f"{what} exists but was not made for TraderBot mine" in reconciled["message"]
    assert any(
        e.get("reason") == "InvalidSpec" and e.get("type") == "Warning"
        for e in _events_of(kube, namespace, "mine")
    )
    _wait_timer_passes(operator, 2)
    service = _get(kube, Service, "mine-api", namespace)
    assert service["spec"]["selector"] == {"app": "web"}
    assert not service["metadata"].get("ownerReferences")
    secret = _get(kube, Secret, "mine-db-credentials", namespace)
    assert set(secret["data"]) == {"note"}
    assert not secret["metadata"].get("ownerReferences")
    created = _children(kube, namespace, "mine")
    assert not any(created.values()), created  # nothing else was created either

    kube.delete(Service, "mine-api", namespace=namespace)
    kube.delete(Secret, "mine-db-credentials", namespace=namespace)
    _wait_phase(kube, namespace, "mine", "Ready")


def test_engine_settings_trader_api_refuses_are_never_deployed(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    """Issue 14, class 13: checked with trader-api's own settings before any pod exists."""
    strategy = {"name": "s1", "kind": "sma_crossover", "symbol": "BTCUSDT"}  # no params
    _create_bot(kube, namespace, "paramless", {"engine": {"strategies": [strategy]}})
    failed = _wait_phase(kube, namespace, "paramless", "Failed")
    reconciled = _conditions(failed)["Reconciled"]
    assert reconciled["reason"] == "InvalidSpec"
    assert "spec.engine.strategies[0].params: trader-api refuses it" in reconciled["message"]
    assert "fast: Field required" in reconciled["message"]
    created = _children(kube, namespace, "paramless")
    assert not any(created.values()), created  # not half a stack: nothing


def test_a_large_user_annotation_leaves_kopfs_bookkeeping_small(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    """Issue 14, class 14: kopf's copy of the object used to hold the annotation again,
    and past 256 KiB of annotations every write of it failed, in a loop."""
    body = _bot_body("noted", {})
    notes = "n" * 200_000  # most of the 256 KiB the API server allows for annotations
    body["metadata"]["annotations"] = {"example.com/notes": notes}
    kube.create(TraderBotResource.from_dict(body), namespace=namespace)
    _wait_phase(kube, namespace, "noted", "Ready")
    _patch_spec(kube, namespace, "noted", {"api": {"logLevel": "debug"}})

    def handled() -> str | None:
        annotations = _bot(kube, namespace, "noted")["metadata"]["annotations"]
        stored: str = annotations.get("traderbot.dev/last-handled-configuration", "")
        return stored if '"logLevel":"debug"' in stored.replace(" ", "") else None

    stored = eventually(handled, what="kopf recorded the handled change", timeout=60)
    assert len(stored) < 10_000
    assert "nnnnnnnn" not in stored
    assert _bot(kube, namespace, "noted")["metadata"]["annotations"]["example.com/notes"] == notes


def test_a_paused_bot_is_not_reconciled_and_resumes_when_unpaused(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "napping")
    _wait_phase(kube, namespace, "napping", "Ready")
    _patch_spec(kube, namespace, "napping", {"paused": True})
    _wait_phase(kube, namespace, "napping", "Paused")
    kube.delete(Service, "napping-db", namespace=namespace)
    _wait_timer_passes(operator, 3)
    with pytest.raises(ApiError):
        kube.get(Service, "napping-db", namespace=namespace)
    assert kube.get(Deployment, "napping-api", namespace=namespace)  # nothing deleted
    _patch_spec(kube, namespace, "napping", {"paused": False})
    eventually(
        lambda: kube.get(Service, "napping-db", namespace=namespace), what="Service restored"
    )
    _wait_phase(kube, namespace, "napping", "Ready")


def test_a_volume_change_kubernetes_forbids_is_reported_not_retried(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "grow")
    _wait_phase(kube, namespace, "grow", "Ready")
    _patch_spec(kube, namespace, "grow", {"database": {"storage": {"size": "50Gi"}}})
    degraded = _wait_phase(kube, namespace, "grow", "Degraded")
    reconciled = _conditions(degraded)["Reconciled"]
    assert reconciled["reason"] == "ForbiddenChange"
    assert "StatefulSet grow-db: spec.volumeClaimTemplates" in reconciled["message"]
    _wait_timer_passes(operator, 2)
    writes = operator.writes
    _wait_timer_passes(operator, 3)
    assert operator.writes == writes


def test_an_operator_restart_mid_reconcile_converges_without_duplicates(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "phoenix")
    eventually(
        lambda: kube.get(Secret, "phoenix-db-credentials", namespace=namespace),
        what="the first child",
        timeout=30,
    )
    operator.stop()
    password = _get(kube, Secret, "phoenix-db-credentials", namespace)["data"]["password"]
    operator.start()
    _wait_phase(kube, namespace, "phoenix", "Ready")
    counts = {kind: len(objs) for kind, objs in _children(kube, namespace, "phoenix").items()}
    assert counts == EXPECTED_CHILDREN
    after = _get(kube, Secret, "phoenix-db-credentials", namespace)["data"]["password"]
    assert after == password, "a restart must never regenerate credentials"


def test_deleting_the_bot_keeps_its_data_and_a_new_bot_of_that_name_opens_it(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "goner")
    _wait_phase(kube, namespace, "goner", "Ready")
    claims_before = _claim_names(kube, namespace)
    assert {"goner-backup", "data-goner-db-0", "data-goner-redis-0"} <= claims_before
    password = _get(kube, Secret, "goner-db-credentials", namespace)["data"]["password"]
    kube.delete(TraderBotResource, "goner", namespace=namespace)

    def only_kept_objects_left() -> bool:
        left = [
            f"{kind}/{obj['metadata']['name']}"
            for kind, objs in _children(kube, namespace, "goner").items()
            for obj in objs
        ]
        return left == ["Secret/goner-db-credentials"]

    eventually(only_kept_objects_left, what="garbage collection", timeout=READY_TIMEOUT)
    assert claims_before <= _claim_names(kube, namespace)

    # Deleted by mistake: applying it again finds the data and the password it needs.
    _create_bot(kube, namespace, "goner")
    _wait_phase(kube, namespace, "goner", "Ready")
    assert _get(kube, Secret, "goner-db-credentials", namespace)["data"]["password"] == password


def test_a_lost_database_password_is_reported_instead_of_regenerated(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, "amnesia")
    _wait_phase(kube, namespace, "amnesia", "Ready")
    kube.delete(Secret, "amnesia-db-credentials", namespace=namespace)
    failed = _wait_phase(kube, namespace, "amnesia", "Failed")
    reconciled = _conditions(failed)["Reconciled"]
    assert "amnesia-db-credentials is missing but the database volume" in reconciled["message"]
    with pytest.raises(ApiError):
        kube.get(Secret, "amnesia-db-credentials", namespace=namespace)


def test_operator_metrics_count_reconciles(
    operator: OperatorRunner, kube: Client, namespace: str
) -> None:
    from prometheus_client import generate_latest

    from traderbot_operator import metrics

    _create_bot(kube, namespace, "counted")
    _wait_phase(kube, namespace, "counted", "Ready")
    eventually(
        lambda: operator.state.phases.get((namespace, "counted")) == "Ready",
        what="the operator's own record of the bot's phase",
    )
    text = generate_latest(metrics.REGISTRY).decode()
    assert 'traderbot_operator_bots{phase="Ready"} 1.0' in text
    assert "traderbot_operator_reconcile_duration_seconds_bucket" in text
    assert 'traderbot_operator_reconcile_total{result="ok",trigger="create"}' in text
    phase = {"namespace": namespace, "bot": "counted", "phase": "Ready"}
    assert metrics.REGISTRY.get_sample_value("traderbot_operator_bot_phase", phase) == 1

    # The chart's TraderBotNotReady alert must not outlive the bot.
    kube.delete(TraderBotResource, "counted", namespace=namespace)
    eventually(
        lambda: metrics.REGISTRY.get_sample_value("traderbot_operator_bot_phase", phase) is None,
        what="the deleted bot's phase series removed",
    )
