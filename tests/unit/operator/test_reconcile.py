"""Reconcile decides from data alone: converged means no writes, drift means exactly one."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from traderbot_operator.desired import build_children
from traderbot_operator.models import TraderBot, TraderBotStatus
from traderbot_operator.reconcile import (
    APPLIED_HASH_ANNOTATION,
    STATEFULSET_PROGRESS_DEADLINE,
    ObjectKey,
    Outcome,
    compute_status,
    database_claim_key,
    differences,
    key_of,
    lost_credentials,
    parse_quantity,
    plan,
    spec_problems,
    status_changed,
)
from unit.operator.bots import bot

NOW = datetime(2026, 1, 28, 10, 30, tzinfo=UTC)


def _as_server_returns(manifest: dict[str, Any]) -> dict[str, Any]:
    """Return ``manifest`` the way the API server hands it back: defaulted and canonical."""
    live = copy.deepcopy(manifest)
    meta = live["metadata"]
    meta.update(uid="child-uid", resourceVersion="1", generation=1, managedFields=[{}])
    meta["annotations"]["deployment.kubernetes.io/revision"] = "1"
    if live["kind"] == "Secret":
        live["data"] = {
            key: base64.b64encode(value.encode()).decode()
            for key, value in live.pop("stringData").items()
        }
    spec = live.get("spec", {})
    if live["kind"] == "Service" and "clusterIP" not in spec:
        spec["clusterIP"] = "10.96.0.17"
        spec["sessionAffinity"] = "None"
    if live["kind"] in {"Deployment", "StatefulSet"}:
        pod = spec["template"]["spec"]
        pod["restartPolicy"] = "Always"
        pod["dnsPolicy"] = "ClusterFirst"
        for container in pod["containers"]:
            container["terminationMessagePath"] = "/dev/termination-log"
            for entry in container.get("env", []):
                if "fieldRef" in entry.get("valueFrom", {}):
                    entry["valueFrom"]["fieldRef"]["apiVersion"] = "v1"
            requests = container.get("resources", {}).get("requests", {})
            if requests.get("cpu") == "1000m":
                requests["cpu"] = "1"
        for template in spec.get("volumeClaimTemplates", []):
            template["spec"]["volumeMode"] = "Filesystem"
            template["status"] = {"phase": "Pending"}
        live["status"] = {"observedGeneration": 1}
    return live


def _converged(model: TraderBot) -> dict[ObjectKey, dict[str, Any] | None]:
    children = build_children(model)
    stamped = {key_of(a.body): a.body for a in plan(children, {})}
    return {key: _as_server_returns(body) for key, body in stamped.items()}


def test_nothing_exists_so_everything_is_created_in_order() -> None:
    model = bot()
    children = build_children(model)
    actions = plan(children, {})
    assert [a.verb for a in actions] == ["create"] * len(children)
    assert [a.key for a in actions] == [key_of(c) for c in children]
    assert all(APPLIED_HASH_ANNOTATION in a.body["metadata"]["annotations"] for a in actions)


@pytest.mark.parametrize(
    "spec",
    [{}, {"replicas": 3, "api": {"resources": {"requests": {"cpu": "1000m"}}}}],
    ids=["defaults", "canonicalised-quantity"],
)
def test_a_converged_bot_plans_no_writes_despite_server_defaulting(spec: dict[str, Any]) -> None:
    model = bot(**spec)
    assert plan(build_children(model), _converged(model)) == []


def test_secrets_are_never_regenerated() -> None:
    model = bot()
    observed = _converged(model)
    # build_children draws fresh passwords every call; none of them may be written.
    assert plan(build_children(model), observed) == []
    for key, live in observed.items():
        if live is not None and key[1] == "Secret":
            live["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "someone"
    patches = plan(build_children(model), observed)
    assert {a.verb for a in patches} == {"patch"}
    assert all(a.kind == "Secret" and "stringData" not in a.body for a in patches)


def test_a_child_edited_by_hand_is_patched_back() -> None:
    model = bot()
    observed = _converged(model)
    deployment_key = ("apps/v1", "Deployment", "alpha-api")
    live = observed[deployment_key]
    assert live is not None
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    [action] = plan(build_children(model), observed)
    assert (action.verb, action.key) == ("patch", deployment_key)


def test_a_deleted_child_is_created_again() -> None:
    model = bot()
    observed = _converged(model)
    observed[("v1", "Service", "alpha-db")] = None
    [action] = plan(build_children(model), observed)
    assert (action.verb, action.name) == ("create", "alpha-db")


def test_a_field_we_stop_setting_is_reapplied_so_apply_removes_it() -> None:
    monitored = bot(monitoring={"enabled": True})
    observed = _converged(monitored)
    [action] = plan(build_children(bot()), observed)
    assert (action.verb, action.name) == ("patch", "alpha-api")
    template = action.body["spec"]["template"]["metadata"]["annotations"]
    assert "prometheus.io/scrape" not in template


def test_scaling_patches_only_the_deployment() -> None:
    observed = _converged(bot())
    [action] = plan(build_children(bot(replicas=2)), observed)
    assert (action.verb, action.name, action.body["spec"]["replicas"]) == ("patch", "alpha-api", 2)


def test_volume_template_changes_are_reported_not_retried() -> None:
    observed = _converged(bot())
    actions = plan(build_children(bot(database={"storage": {"size": "50Gi"}})), observed)
    [forbidden] = [a for a in actions if a.verb == "forbidden"]
    assert forbidden.name == "alpha-db"
    assert forbidden.forbidden == ("spec.volumeClaimTemplates",)
    [template] = forbidden.body["spec"]["volumeClaimTemplates"]
    assert template["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert "status" not in template
    assert forbidden.write


def test_a_forbidden_change_is_written_once_then_only_reported() -> None:
    observed = _converged(bot())
    resized = bot(database={"storage": {"size": "50Gi"}})
    [first] = [a for a in plan(build_children(resized), observed) if a.verb == "forbidden"]
    observed[first.key] = _as_server_returns(first.body)
    [again] = plan(build_children(resized), observed)
    assert (again.verb, again.key, again.write) == ("forbidden", first.key, False)


def test_turning_backups_off_deletes_the_cronjobs_but_keeps_the_volume() -> None:
    observed = _converged(bot())
    actions = plan(build_children(bot(backup={"enabled": False})), observed)
    assert sorted((a.verb, a.kind, a.name) for a in actions) == [
        ("delete", "CronJob", "alpha-backup"),
        ("delete", "CronJob", "alpha-verify"),
    ]


def test_differences_ignore_server_additions_but_not_changes() -> None:
    assert differences({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3}) == []
    assert differences({"a": [1, 2]}, {"a": [1]}) == [".a"]
    assert differences({"requests": {"memory": "1024Mi"}}, {"requests": {"memory": "1Gi"}}) == []
    assert differences({"image": "1"}, {"image": "1.0"}) == [".image"]


@pytest.mark.parametrize(
    ("text", "value"),
    [("500m", "0.5"), ("1", "1"), ("1Gi", str(2**30)), ("2k", "2000"), ("1e3", "1000"), (3, "3")],
)
def test_quantities_parse_to_numbers(text: object, value: str) -> None:
    from decimal import Decimal

    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["lots", "1Zi", "", None, True])
def test_non_quantities_are_refused(text: object) -> None:
    assert parse_quantity(text) is None


def test_spec_problems_name_the_field_and_the_fix() -> None:
    model = bot(
        api={
            "resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
            "apiKeySecretRef": {"name": "mine"},
        }
    )
    problems = spec_problems(model, secrets={"mine": None})
    assert problems == [
        "spec.api.resources: memory request 2Gi exceeds its limit 1Gi",
        "spec.api.apiKeySecretRef: Secret trading/mine does not exist; create it with keys api-key",
    ]
    present = {"mine": {"data": {"other": "eA=="}}}
    assert spec_problems(bot(api={"apiKeySecretRef": {"name": "mine"}}), secrets=present) == [
        "spec.api.apiKeySecretRef: Secret trading/mine lacks key(s) api-key"
    ]
    assert spec_problems(bot(), secrets={}) == []


# --- status -----------------------------------------------------------------------------


def _ready(observed: dict[ObjectKey, dict[str, Any] | None], *, replicas: int = 1) -> None:
    for key, live in observed.items():
        if live is None:
            continue
        if key[1] == "Deployment":
            live["status"] = {
                "observedGeneration": 1,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
        if key[1] == "StatefulSet":
            live["status"] = {
                "observedGeneration": 1,
                "replicas": 1,
                "readyReplicas": 1,
                "currentRevision": "r1",
                "updateRevision": "r1",
            }


def _running(model: TraderBot) -> dict[ObjectKey, dict[str, Any] | None]:
    """Return the children of a converged bot whose pods are all ready."""
    observed = _converged(model)
    _ready(observed)
    return observed


def _with_status(model: TraderBot, status: dict[str, Any]) -> TraderBot:
    return model.model_copy(update={"status": TraderBotStatus.model_validate(status)})


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_status_is_pending_before_anything_exists() -> None:
    status = compute_status(bot(), observed={}, outcome=Outcome(), now=NOW)
    assert status["phase"] == "Pending"
    assert status["ready"] == "0/1"
    assert _conditions(status)["Ready"]["status"] == "False"


def test_status_is_ready_when_api_database_and_cache_are_ready() -> None:
    model = bot()
    observed = _running(model)
    status = compute_status(model, observed=observed, outcome=Outcome(), now=NOW)
    conditions = _conditions(status)
    assert status["phase"] == "Ready"
    assert status["ready"] == "1/1"
    assert status["version"] == "0.1.0"
    assert status["selector"] == (
        "app.kubernetes.io/component=api,app.kubernetes.io/instance=alpha,"
        "app.kubernetes.io/name=trader-api"
    )
    assert status["endpoints"] == {"api": "http://alpha-api.trading.svc:3000"}
    assert {t: c["status"] for t, c in conditions.items()} == {
        "Ready": "True",
        "ApiReady": "True",
        "DatabaseReady": "True",
        "CacheReady": "True",
        "BackupScheduled": "True",
        "BackupHealthy": "True",
        # Nothing read yet (tests/unit/operator/test_trading.py has the reads).
        "TradingHalted": "Unknown",
        "Reconciled": "True",
    }
    assert conditions["BackupHealthy"]["reason"] == "NoRunYet"
    assert conditions["TradingHalted"]["reason"] == "NotReadYet"
    assert "trading" not in status


def test_a_component_lost_after_ready_is_degraded_and_named() -> None:
    model = bot()
    observed = _running(model)
    ready = compute_status(model, observed=observed, outcome=Outcome(), now=NOW)
    db = observed[("apps/v1", "StatefulSet", "alpha-db")]
    assert db is not None
    db["status"]["readyReplicas"] = 0
    later = NOW + timedelta(minutes=5)
    status = compute_status(
        _with_status(model, ready), observed=observed, outcome=Outcome(), now=later
    )
    conditions = _conditions(status)
    assert status["phase"] == "Degraded"
    assert "database" in conditions["Ready"]["message"]
    assert conditions["DatabaseReady"]["status"] == "False"
    assert conditions["DatabaseReady"]["lastTransitionTime"] == "2026-01-28T10:35:00Z"
    assert conditions["ApiReady"]["lastTransitionTime"] == "2026-01-28T10:30:00Z"


def test_a_new_bot_coming_up_is_progressing_not_degraded() -> None:
    model = bot()
    status = compute_status(model, observed=_converged(model), outcome=Outcome(), now=NOW)
    assert status["phase"] == "Progressing"


def test_an_unchanged_world_yields_an_identical_status() -> None:
    model = bot()
    observed = _running(model)
    first = compute_status(model, observed=observed, outcome=Outcome(), now=NOW)
    again = compute_status(
        _with_status(model, first),
        observed=observed,
        outcome=Outcome(),
        now=NOW + timedelta(hours=1),
    )
    assert again == first
    assert not status_changed(first, again)


def test_rollout_of_a_new_version_is_progressing_and_keeps_the_running_version() -> None:
    old = bot()
    observed = _running(old)
    ready = compute_status(old, observed=observed, outcome=Outcome(), now=NOW)
    deployment = observed[("apps/v1", "Deployment", "alpha-api")]
    assert deployment is not None
    deployment["metadata"]["generation"] = 2
    new = _with_status(bot(version="0.2.0"), ready)
    status = compute_status(new, observed=observed, outcome=Outcome(), now=NOW)
    assert status["phase"] == "Progressing"
    assert status["version"] == "0.1.0"


def test_paused_invalid_and_forbidden_outcomes_set_phase_and_reconciled() -> None:
    model = bot()
    observed = _running(model)
    paused = compute_status(bot(paused=True), observed=observed, outcome=Outcome(), now=NOW)
    assert paused["phase"] == "Paused"
    failed = compute_status(
        model, observed=observed, outcome=Outcome(invalid_spec=("spec.x: broken",)), now=NOW
    )
    assert failed["phase"] == "Failed"
    assert _conditions(failed)["Reconciled"]["reason"] == "InvalidSpec"
    assert _conditions(failed)["Reconciled"]["message"] == "spec.x: broken"
    forbidden = compute_status(
        model,
        observed=observed,
        outcome=Outcome(forbidden_changes=("StatefulSet alpha-db: spec.volumeClaimTemplates",)),
        now=NOW,
    )
    assert forbidden["phase"] == "Degraded"
    assert _conditions(forbidden)["Reconciled"]["reason"] == "ForbiddenChange"
    assert _conditions(forbidden)["ApiReady"]["status"] == "True"


def test_last_backup_comes_from_the_cronjob() -> None:
    model = bot()
    observed = _converged(model)
    cronjob = observed[("batch/v1", "CronJob", "alpha-backup")]
    assert cronjob is not None
    cronjob["status"] = {"lastSuccessfulTime": "2026-01-28T03:00:41Z"}
    status = compute_status(model, observed=observed, outcome=Outcome(), now=NOW)
    assert status["lastBackup"] == {"time": "2026-01-28T03:00:41Z"}
    disabled = compute_status(
        bot(backup={"enabled": False}), observed={}, outcome=Outcome(), now=NOW
    )
    assert _conditions(disabled)["BackupScheduled"]["reason"] == "Disabled"


def test_an_api_error_is_shown_in_status_without_hiding_the_components() -> None:
    model = bot()
    observed = _running(model)
    error = "create Service trading/alpha-api failed: HTTP 500 InternalError: range is full"
    status = compute_status(model, observed=observed, outcome=Outcome(errors=(error,)), now=NOW)
    reconciled = _conditions(status)["Reconciled"]
    assert (reconciled["status"], reconciled["reason"]) == ("False", "ApplyFailed")
    assert reconciled["message"].startswith(error)
    assert _conditions(status)["ApiReady"]["status"] == "True"


@pytest.mark.parametrize(
    ("cronjob_status", "healthy", "reason"),
    [
        ({}, "True", "NoRunYet"),
        (
            {"lastScheduleTime": "2026-01-28T03:00:00Z", "active": [{"name": "j"}]},
            "True",
            "Running",
        ),
        (
            {
                "lastScheduleTime": "2026-01-28T03:00:00Z",
                "lastSuccessfulTime": "2026-01-28T03:01:40Z",
            },
            "True",
            "LastRunSucceeded",
        ),
        (
            {
                "lastScheduleTime": "2026-01-28T03:00:00Z",
                "lastSuccessfulTime": "2026-01-27T03:01:40Z",
            },
            "False",
            "LastRunFailed",
        ),
        ({"lastScheduleTime": "2026-01-28T03:00:00Z"}, "False", "LastRunFailed"),
    ],
    ids=["no-run-yet", "running", "succeeded", "failed-after-a-success", "never-succeeded"],
)
def test_backup_health_follows_the_last_scheduled_run(
    cronjob_status: dict[str, Any], healthy: str, reason: str
) -> None:
    model = bot()
    observed = _converged(model)
    cronjob = observed[("batch/v1", "CronJob", "alpha-backup")]
    assert cronjob is not None
    cronjob["status"] = cronjob_status
    status = compute_status(model, observed=observed, outcome=Outcome(), now=NOW)
    condition = _conditions(status)["BackupHealthy"]
    assert (condition["status"], condition["reason"]) == (healthy, reason)


def test_no_backup_health_when_backups_are_off() -> None:
    status = compute_status(bot(backup={"enabled": False}), observed={}, outcome=Outcome(), now=NOW)
    assert "BackupHealthy" not in _conditions(status)


def test_a_lost_database_password_is_reported_not_regenerated() -> None:
    model = bot()
    observed = _converged(model)
    observed[("v1", "Secret", "alpha-db-credentials")] = None
    assert lost_credentials(model, observed=observed) == []  # no data yet: safe to generate
    observed[database_claim_key(model)] = {"metadata": {"name": "data-alpha-db-0"}}
    [problem] = lost_credentials(model, observed=observed)
    assert "Secret trading/alpha-db-credentials is missing" in problem
    assert "restore the Secret" in problem


def test_switching_to_retain_takes_the_owner_reference_off_kept_objects() -> None:
    deleted = bot(deletionPolicy="Delete")
    observed = _converged(deleted)
    actions = plan(build_children(bot()), observed)
    changed = {(a.kind, a.name) for a in actions}
    assert ("PersistentVolumeClaim", "alpha-backup") in changed
    assert ("Secret", "alpha-db-credentials") in changed
    [secret] = [a for a in actions if a.name == "alpha-db-credentials"]
    assert secret.body["metadata"]["ownerReferences"] == []


def test_live_mode_is_refused_until_trader_api_supports_it() -> None:
    problems = spec_problems(bot(mode="live", version="0.1.0"), secrets={})
    assert problems == [
        "spec: trader-api refuses it: TRADING_MODE=live needs a live exchange adapter; "
        "only EXCHANGE=paper exists"
    ]
    status = compute_status(
        bot(mode="live"), observed={}, outcome=Outcome(invalid_spec=tuple(problems)), now=NOW
    )
    assert status["phase"] == "Failed"
    assert (
        "TRADING_MODE=live needs a live exchange adapter" in _conditions(status)["Ready"]["message"]
    )


def test_a_rollout_past_its_deadline_is_degraded_with_the_reason() -> None:
    model = bot()
    observed = _running(model)
    deployment = observed[("apps/v1", "Deployment", "alpha-api")]
    assert deployment is not None
    deployment["status"].update(
        readyReplicas=0,
        availableReplicas=0,
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "alpha-api-5d9" has timed out progressing.',
            }
        ],
    )
    status = compute_status(model, observed=observed, outcome=Outcome(), now=NOW)
    conditions = _conditions(status)
    assert status["phase"] == "Degraded"
    assert conditions["Ready"]["reason"] == "ProgressDeadlineExceeded"
    assert "timed out progressing" in conditions["Ready"]["message"]
    assert conditions["ApiReady"]["reason"] == "ProgressDeadlineExceeded"


def test_a_bot_scaled_to_zero_never_says_ready() -> None:
    model = bot(replicas=0)
    observed = _converged(model)
    _ready(observed, replicas=0)
    status = compute_status(model, observed=observed, outcome=Outcome(), now=NOW)
    conditions = _conditions(status)
    assert status["phase"] == "Degraded"
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "ScaledToZero"
    assert conditions["ApiReady"]["status"] == "False"
    assert conditions["ApiReady"]["reason"] == "ScaledToZero"
    assert "nothing trades" in conditions["ApiReady"]["message"]


@pytest.mark.parametrize(
    ("statefulset", "condition", "pod"),
    [("alpha-db", "DatabaseReady", "alpha-db-0"), ("alpha-redis", "CacheReady", "alpha-redis-0")],
)
def test_a_statefulset_never_ready_past_its_deadline_is_degraded_naming_the_pod(
    statefulset: str, condition: str, pod: str
) -> None:
    model = bot()
    observed = _running(model)
    stuck = observed[("apps/v1", "StatefulSet", statefulset)]
    assert stuck is not None
    stuck["status"]["readyReplicas"] = 0
    first = compute_status(model, observed=observed, outcome=Outcome(), now=NOW)
    assert first["phase"] == "Progressing"
    assert _conditions(first)[condition]["reason"] == "PodNotReady"

    def later(seconds: float, status: dict[str, Any]) -> dict[str, Any]:
        return compute_status(
            _with_status(model, status),
            observed=observed,
            outcome=Outcome(),
            now=NOW + timedelta(seconds=seconds),
        )

    assert later(STATEFULSET_PROGRESS_DEADLINE.total_seconds(), first)["phase"] == "Progressing"
    past = later(STATEFULSET_PROGRESS_DEADLINE.total_seconds() + 1, first)
    conditions = _conditions(past)
    assert past["phase"] == "Degraded"
    assert conditions[condition]["reason"] == "ProgressDeadlineExceeded"
    assert conditions["Ready"]["reason"] == "ProgressDeadlineExceeded"
    assert f"kubectl describe pod {pod}" in conditions["Ready"]["message"]
    # The clock is the condition's own lastTransitionTime: later passes change nothing.
    assert later(STATEFULSET_PROGRESS_DEADLINE.total_seconds() + 3600, past) == past

    stuck["status"]["readyReplicas"] = 1
    recovered = later(STATEFULSET_PROGRESS_DEADLINE.total_seconds() + 3700, past)
    assert recovered["phase"] == "Ready"


def test_a_statefulset_deadline_is_counted_from_when_it_was_first_seen_not_ready() -> None:
    model = bot()
    observed = _running(model)
    ready = compute_status(model, observed=observed, outcome=Outcome(), now=NOW)
    db = observed[("apps/v1", "StatefulSet", "alpha-db")]
    assert db is not None
    db["status"].update(readyReplicas=0, updateRevision="r2")  # a database update rolling out
    day = timedelta(days=1)
    rolling = compute_status(
        _with_status(model, ready), observed=observed, outcome=Outcome(), now=NOW + day
    )
    assert rolling["phase"] == "Progressing"
    soon = compute_status(
        _with_status(model, rolling),
        observed=observed,
        outcome=Outcome(),
        now=NOW + day + STATEFULSET_PROGRESS_DEADLINE / 2,
    )
    assert soon["phase"] == "Progressing"
    assert _conditions(soon)["DatabaseReady"]["reason"] == "RollingOut"
    late = compute_status(
        _with_status(model, rolling),
        observed=observed,
        outcome=Outcome(),
        now=NOW + day + STATEFULSET_PROGRESS_DEADLINE * 2,
        statefulset_deadline=STATEFULSET_PROGRESS_DEADLINE * 3,
    )
    assert late["phase"] == "Progressing", "the deadline is a parameter"
