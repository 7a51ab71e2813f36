"""The whole stack on real pods: the chart's operator in its pod, a bot Ready by real probes.

What kwok's fake nodes could never show: the images start (entrypoints, users,
file systems), the kubelet's probes hit `/health` and `/health/ready`, the API
finds the database and Redis by their Service names, and an order goes through
the bot's Service into the database pod.
"""

from __future__ import annotations

import httpx

from e2e.stack import (
    Bot,
    Kubectl,
    OperatorRelease,
    container_restarts,
    place_order,
    pod_ready,
    resting_order,
)

SEED_COMPONENTS = {"strategy_engine", "risk_manager", "executor", "database", "redis"}


def test_the_operator_runs_in_its_pod_under_the_charts_service_account(
    kubectl: Kubectl, operator_release: OperatorRelease, bot: Bot
) -> None:
    ops = kubectl.in_namespace(operator_release.namespace)
    pods = ops.json("get", "pods", "-l", "app.kubernetes.io/name=traderbot-operator")["items"]
    # The chart's default: two replicas, both Ready (a standby answers its probes too).
    assert len(pods) == 2, [p["metadata"]["name"] for p in pods]
    assert all(pod_ready(pod) for pod in pods), [p["status"] for p in pods]
    holder = ops.json("get", "lease", operator_release.deployment)["spec"]["holderIdentity"]
    (pod,) = [p for p in pods if holder.startswith(p["metadata"]["name"] + "_")]
    assert pod["spec"]["serviceAccountName"] == operator_release.deployment
    status = pod["status"]["containerStatuses"][0]
    assert status["imageID"], status  # a real runtime ran it
    assert status["image"].endswith(operator_release.images.operator.split("/")[-1])
    # The chart's RBAC, not more: the operator's identity may manage bots, but not
    # nodes, namespaces or RBAC itself (its cluster-wide Secret access is documented
    # in docs/security.md; watchNamespaces narrows it).
    identity = f"system:serviceaccount:{operator_release.namespace}:{operator_release.deployment}"
    expected = {
        ("list", "traderbots.traderbot.dev"): "yes",
        ("list", "nodes"): "no",
        ("delete", "namespaces"): "no",
        ("create", "clusterrolebindings.rbac.authorization.k8s.io"): "no",
    }
    for (verb, what), want in expected.items():
        answer = kubectl("auth", "can-i", verb, what, "--as", identity, "-A", check=False)
        assert answer.stdout.strip() == want, (verb, what, answer.stdout, answer.stderr)
    # It reconciled the session's bot from inside its pod.
    assert bot.name in operator_release.logs()


def test_every_pod_is_running_and_ready_by_the_real_probes(bot: Bot) -> None:
    for component in ("api", "database", "cache"):
        pods = bot.pods(component)
        assert pods, f"no {component} pod"
        for pod in pods:
            assert pod["status"]["phase"] == "Running", (component, pod["status"])
            assert pod_ready(pod), (component, pod["status"].get("conditions"))
            for status in pod["status"]["containerStatuses"]:
                assert status["ready"], status
                assert status["started"], status
                assert status["containerID"], status
    api = bot.pods("api")[0]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    table = bot.kubectl.out("get", "tb", bot.name)
    header, row = table.splitlines()[:2]
    assert header.split()[:3] == ["NAME", "PHASE", "READY"], table
    assert row.split()[:3] == [bot.name, "Ready", "1/1"], table


def test_health_and_readiness_answer_the_seeds_json_through_the_service(bot: Bot) -> None:
    with bot.forward() as forward:
        health = httpx.get(f"{forward.url}/health", timeout=10)
        ready = httpx.get(f"{forward.url}/health/ready", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "healthy", "version": health.json()["version"]}
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ready"
    assert set(body["components"]) == SEED_COMPONENTS
    assert set(body["components"].values()) == {"healthy"}, body
    assert body["timestamp"].endswith("Z")


def test_metrics_are_served_for_scraping(bot: Bot) -> None:
    with bot.forward() as forward:
        httpx.get(f"{forward.url}/health", timeout=10)
        metrics = httpx.get(f"{forward.url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    names = {
        line.split("{")[0].split()[0] for line in metrics.text.splitlines() if line[:1].isalpha()
    }
    # NB: orders_total has labels, so it appears with the first order (checked there).
    for series in (
        "http_requests_total",
        "websocket_connections",
        "leader",
        "circuit_breaker_state",
    ):
        assert series in names, sorted(names)


def test_an_order_with_the_generated_key_is_stored_in_the_database_pod(bot: Bot) -> None:
    order = resting_order()
    client_order_id = order["client_order_id"]
    with bot.forward() as forward:
        refused = httpx.post(f"{forward.url}/api/v1/orders", json=order, timeout=10)
        order_id = place_order(forward, bot.api_key, order)["id"]
        assert refused.status_code == 401, refused.text
        seen = httpx.get(f"{forward.url}/api/v1/orders/{order_id}", timeout=10)
        metrics = httpx.get(f"{forward.url}/metrics", timeout=10).text
    assert "\norders_total{" in metrics, metrics[:2000]
    assert seen.status_code == 200
    assert seen.json()["client_order_id"] == client_order_id
    # NB: the id is ours (hex), so quoting it into the SQL is safe.
    stored = bot.psql(
        f"SELECT id, symbol, side, quantity FROM orders WHERE client_order_id = '{client_order_id}'"  # noqa: S608
    )
    assert stored.split("|") == [order_id, "BTCUSDT", "buy", "0.001"], stored


def test_no_pod_restarted(bot: Bot) -> None:
    """Nothing crash-looped on the way to Ready (a probe or an entrypoint gone wrong would).

    NB: judged on the pods as they were at the bot's first Ready: the shared bot's
    later tests kill containers on purpose, and a scale-down may keep a pod
    whose container one of them killed.
    """
    assert set(bot.first_ready_pods) == {"api", "database", "cache"}, bot.first_ready_pods
    for component, pods in bot.first_ready_pods.items():
        assert pods, f"no {component} pod at the first Ready"
        for pod in pods:
            assert container_restarts(pod) == 0, (pod["metadata"]["name"], pod["status"])


def test_no_generated_secret_appears_in_any_log(
    bot: Bot, kubectl: Kubectl, operator_release: OperatorRelease
) -> None:
    """The API key and the database and Redis passwords are in no pod's log, nor the operator's."""
    secrets = {
        "api key": bot.api_key,
        "database password": bot.secret_value(f"{bot.name}-db-credentials", "password"),
        "redis password": bot.secret_value(f"{bot.name}-redis-credentials", "password"),
    }
    assert all(len(value) >= 16 for value in secrets.values())
    with bot.forward() as forward:  # a refused key in the URL: the handshake line is logged
        httpx.get(f"{forward.url}/ws?api_key={bot.api_key}", timeout=10)
    logs = {"operator": operator_release.logs()}
    for component in ("api", "database", "cache"):
        for pod in bot.pods(component):
            name = pod["metadata"]["name"]
            logs[name] = bot.kubectl.out("logs", name, "--all-containers", "--tail=-1")
    assert all(logs.values()), [name for name, text in logs.items() if not text]
    leaks = [
        (what, name)
        for what, value in secrets.items()
        for name, text in logs.items()
        if value in text
    ]
    assert leaks == []
