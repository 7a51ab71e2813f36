"""Every command of docs/operations-guide.md, run against the running stack.

The tests follow the guide's sections in order, on the session's bot; each
command is run as the guide writes it (names substituted, see e2e/guide.py)
and its effect is checked against what the guide says it does. The last test
checks that no command of the guide was left out, so a command added to the
guide fails the tier until a test runs it.

TimescaleDB-only commands (its job views and functions) run too: against
the local PostgreSQL image they must fail for the reason that they need
TimescaleDB, and against a TimescaleDB database they must succeed.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.guide import GUIDE, GuideRunner, guide_commands
from e2e.stack import (
    Bot,
    Images,
    Kubectl,
    OperatorRelease,
    bot_manifest,
    place_order,
    pod_ready,
)
from support.kube import eventually

ROLL_TIMEOUT = 300.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def guide(
    bot: Bot,
    kubectl: Kubectl,
    operator_release: OperatorRelease,
    images: Images,
    tmp_path_factory: pytest.TempPathFactory,
) -> GuideRunner:
    port = free_port()
    return GuideRunner.create(
        kubectl_binary=kubectl.binary,
        kubeconfig=kubectl.kubeconfig,
        workdir=tmp_path_factory.mktemp("sre"),
        names={
            "alpha": bot.name,
            "trading": bot.namespace,
            "traderbot-system": operator_release.namespace,
            "0.1.0": images.workload_version,
            "0.1.1": images.workload_next_version,
            "3000:3000": f"{port}:3000",
            "localhost:3000": f"localhost:{port}",
        },
    )


@pytest.fixture(scope="module")
def ran(guide: GuideRunner) -> dict[str, str]:
    return guide.ran


# 200 GETs at once from inside the API pod: through a port-forward (one SPDY
# stream per connection) requests arrive too slowly to pass 20/s, so the burst
# starts where the limiter sees it, from the pod's own loopback.
BURST = """
import collections, concurrent.futures, json, urllib.error, urllib.request
def get(_):
    try:
        url = "http://127.0.0.1:3000/api/v1/orders?limit=1"
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as refused:
        return refused.code
with concurrent.futures.ThreadPoolExecutor(50) as pool:
    print(json.dumps(collections.Counter(pool.map(get, range(200)))))
"""


def api_pod(bot: Bot) -> str:
    name: str = bot.pods("api")[0]["metadata"]["name"]
    return name


def wait_ready(bot: Bot, replicas: int = 1) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        body = bot.get()
        status = body.get("status", {})
        done = status.get("phase") == "Ready" and status.get("ready") == f"{replicas}/{replicas}"
        # NB: terminating pods count: `kubectl logs deploy/...` picks any pod of the
        # selector, an old one still shutting down included.
        pods = bot.pods("api", terminating=True)
        settled = len(pods) == replicas and all(pod_ready(p) for p in pods)
        return body if done and settled else None

    found: dict[str, Any] = eventually(
        ready, what=f"{bot.name} Ready {replicas}/{replicas}", timeout=ROLL_TIMEOUT, interval=2.0
    )
    return found


def patch_spec(bot: Bot, spec: dict[str, Any]) -> None:
    bot.kubectl("patch", "tb", bot.name, "--type=merge", "-p", json.dumps({"spec": spec}))


@pytest.fixture(autouse=True)
def baseline(bot: Bot, images: Images) -> Iterator[None]:
    """After each section, put the bot back as the other tests expect it (Ready, 1/1).

    NB: a section that failed half-way (scaled to 0, paused, deleted) would
    otherwise fail every later one for a reason that is not theirs.
    """
    yield
    manifest = bot_manifest(bot.name, images, deletion_policy="Retain")
    bot.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))  # back if it was deleted
    spec = manifest["spec"]
    patch_spec(
        bot,
        {
            "replicas": 1,
            "paused": False,
            "version": images.workload_version,
            "api": {"logLevel": "info", "resources": spec["api"]["resources"]},
        },
    )
    wait_ready(bot)


def test_0_install(guide: GuideRunner, bot: Bot, kubectl: Kubectl, images: Images) -> None:
    # The session's fixtures did the install, with the images built here.
    guide.done_by_fixture(
        "helm install traderbot-operator charts/traderbot-operator"
        " --namespace traderbot-system --create-namespace",
        "operator_release: the same command plus --set image.repository/tag (the image built"
        " here) and --wait",
    )
    guide.done_by_fixture("kubectl create namespace trading", "make_bot_namespace")
    out = guide.run("kubectl -n traderbot-system rollout status deployment/traderbot-operator")
    assert "successfully rolled out" in out.stdout
    # The guide's first command: the namespace every later command assumes.
    guide.run("kubectl config set-context --current --namespace trading")
    assert guide.run("kubectl get tb").stdout.split()[:2] == ["NAME", "PHASE"]
    # The minimal example applies as is; its default images come from registries this
    # machine cannot reach, so here it is checked in a namespace of its own up to what
    # the operator does with it (children created, status written).
    scratch = kubectl.in_namespace(bot.namespace + "-min")
    kubectl("create", "namespace", scratch.namespace or "")
    try:
        applied = guide.run(
            "kubectl -n trading apply -f examples/traderbot-minimal.yaml",
            extra={"trading": scratch.namespace or ""},
        )
        assert "traderbot.traderbot.dev/alpha created" in applied.stdout
        eventually(
            lambda: scratch.json("get", "tb", "alpha").get("status", {}).get("phase"),
            what="the operator's status on the minimal example",
            timeout=60,
        )
        assert scratch.out("get", "deploy", "alpha-api", "-o", "name").strip()
    finally:
        kubectl("delete", "namespace", scratch.namespace or "", "--wait=false")
    watched = guide.run("kubectl -n trading get tb alpha -w", follow_seconds=5)
    assert re.search(rf"^{bot.name}\s+Ready\s+1/1", watched.stdout, re.MULTILINE), watched


def test_1_daily_operations(guide: GuideRunner, bot: Bot) -> None:
    listed = guide.run("kubectl get tb -A").stdout
    assert re.search(rf"^{bot.namespace}\s+{bot.name}\s+Ready", listed, re.MULTILINE), listed
    conditions = guide.run(
        "kubectl get tb alpha -o jsonpath='{range .status.conditions[*]}{.type}={.status}"
        ' {.reason}: {.message}{"\\n"}{end}\''
    ).stdout
    assert "Ready=True" in conditions
    assert "DatabaseReady=True" in conditions
    described = guide.run("kubectl describe tb alpha").stdout
    assert "Events:" in described
    everything = guide.run(
        "kubectl get all,pvc,secret,networkpolicy,cronjob -l app.kubernetes.io/instance=alpha"
    ).stdout
    for child in (
        f"deployment.apps/{bot.name}-api",
        f"statefulset.apps/{bot.name}-db",
        f"statefulset.apps/{bot.name}-redis",
        f"cronjob.batch/{bot.name}-backup",
        f"secret/{bot.name}-db-credentials",
    ):
        assert child in everything, (child, everything)
    with bot.forward() as forward:  # orders_total (labelled) shows from the first order on
        place_order(forward, bot.api_key)
    with guide.background("kubectl port-forward svc/alpha-api 3000:3000 &"):
        health = json.loads(guide.run("curl -s localhost:3000/health").stdout)
        assert health["status"] == "healthy"
        ready = json.loads(guide.run("curl -s localhost:3000/health/ready").stdout)
        assert ready["status"] == "ready"
        grepped = guide.run(
            "curl -s localhost:3000/metrics"
            " | grep -E '^(http_requests|websocket_connections|orders_total)'"
        ).stdout
        assert re.search(r"^http_requests_total\{", grepped, re.MULTILINE), grepped
        assert re.search(r"^websocket_connections ", grepped, re.MULTILINE), grepped
        assert re.search(r"^orders_total", grepped, re.MULTILINE), grepped
    claims = guide.run("kubectl get pvc -l app.kubernetes.io/instance=alpha").stdout
    assert f"data-{bot.name}-db-0" in claims
    assert "Bound" in claims
    df = guide.run("kubectl exec alpha-db-0 -- df -h /var/lib/postgresql/data").stdout
    assert "/var/lib/postgresql/data" in df
    size = guide.run(
        "kubectl exec alpha-db-0 -- psql -U trader -d trader -c"
        " \"SELECT pg_size_pretty(pg_database_size('trader'))\""
    ).stdout
    assert re.search(r"\d+ (kB|MB)", size), size


def test_2_service_management(guide: GuideRunner, bot: Bot, images: Images) -> None:
    guide.run("kubectl scale tb/alpha --replicas=0")
    eventually(
        lambda: re.search(
            rf"^{bot.name}\s+Degraded\s+0/0", guide.run("kubectl get tb alpha").stdout, re.MULTILINE
        ),
        what="kubectl get tb showing Degraded 0/0",
        timeout=ROLL_TIMEOUT,
    )
    guide.run("kubectl scale tb/alpha --replicas=1")
    wait_ready(bot)
    guide.run("kubectl scale tb/alpha --replicas=3")
    wait_ready(bot, 3)
    guide.run("kubectl scale tb/alpha --replicas=1")
    wait_ready(bot)

    followed = guide.run("kubectl logs -f deploy/alpha-api", follow_seconds=5)
    assert followed.stdout.strip(), followed

    victim = api_pod(bot)
    guide.run(
        "kubectl delete pod alpha-api-... --grace-period=0 --force", extra={"alpha-api-...": victim}
    )
    eventually(lambda: victim not in {p["metadata"]["name"] for p in bot.pods("api")}, what="gone")
    wait_ready(bot)

    before = api_pod(bot)
    guide.run("kubectl rollout restart deploy/alpha-api")
    eventually(lambda: api_pod(bot) != before, what="a new API pod", timeout=ROLL_TIMEOUT)
    wait_ready(bot)
    db_uid = bot.kubectl.json("get", "pod", f"{bot.name}-db-0")["metadata"]["uid"]
    guide.run("kubectl rollout restart deploy/alpha-api sts/alpha-db sts/alpha-redis")
    eventually(
        lambda: bot.kubectl.json("get", "pod", f"{bot.name}-db-0")["metadata"]["uid"] != db_uid,
        what="the database pod restarted",
        timeout=ROLL_TIMEOUT,
    )
    wait_ready(bot)

    guide.run('kubectl patch tb alpha --type merge -p \'{"spec":{"paused":true}}\'')
    bot.wait_phase("Paused")
    patch_spec(bot, {"paused": False})
    wait_ready(bot)

    # `kubectl edit` with an editor that changes the log level: the pods roll.
    before = api_pod(bot)
    guide.run(
        "kubectl edit tb alpha",
        env={"KUBE_EDITOR": "sed -i -e 's/logLevel: info/logLevel: warn/'"},
    )
    assert bot.get()["spec"]["api"]["logLevel"] == "warn"
    eventually(lambda: api_pod(bot) != before, what="pods rolled by the edit", timeout=ROLL_TIMEOUT)
    patch_spec(bot, {"api": {"logLevel": "info"}})
    wait_ready(bot)
    # A hand edit of a child is reverted by the operator.
    guide.run(
        "kubectl edit deploy alpha-api",
        env={"KUBE_EDITOR": "sed -i -e 's/^  replicas: 1$/  replicas: 2/'"},
    )
    eventually(
        lambda: bot.kubectl.json("get", "deploy", f"{bot.name}-api")["spec"]["replicas"] == 1,
        what="the operator reverting the hand edit",
        timeout=120,
    )
    wait_ready(bot)

    # Stop everything, keep the data (Retain), start again from the SRE's file.
    marker = bot.psql("SELECT count(*) FROM orders")
    manifest = bot_manifest(bot.name, images, deletion_policy="Retain")
    (guide.workdir / "alpha.yaml").write_text(json.dumps(manifest))
    guide.run("kubectl delete tb alpha")
    eventually(lambda: not bot.pods("database"), what="the bot's pods gone", timeout=ROLL_TIMEOUT)
    assert f"data-{bot.name}-db-0" in bot.kubectl.out("get", "pvc")
    guide.run("kubectl apply -f alpha.yaml")
    wait_ready(bot)
    assert int(bot.psql("SELECT count(*) FROM orders")) >= int(marker)

    every = list(guide.ran)
    for shorthand in ("kubectl scale tb", "kubectl scale", "kubectl rollout restart"):
        guide.covered_by(shorthand, every)
    guide.covered_by("kubectl edit tb", every)


def test_3_logs(guide: GuideRunner, bot: Bot, operator_release: OperatorRelease) -> None:
    lines = guide.run(
        "kubectl logs -f -l app.kubernetes.io/instance=alpha,app.kubernetes.io/component=api"
        " --prefix",
        follow_seconds=5,
    ).stdout
    assert lines.startswith("[pod/"), lines[:200]
    assert guide.run("kubectl logs deploy/alpha-api --tail=100").stdout.strip()
    assert guide.run("kubectl logs deploy/alpha-api --since=1h").stdout.strip()
    everything = guide.run(
        "kubectl logs -l app.kubernetes.io/instance=alpha --all-containers --prefix --tail=50"
    ).stdout
    assert f"[pod/{bot.name}-db-0/" in everything, everything[:500]
    # --previous needs a container that ended: SIGTERM trader-api (PID 1 handles it).
    pod = api_pod(bot)
    restarts = bot.kubectl.json("get", "pod", pod)["status"]["containerStatuses"][0]
    bot.kubectl("exec", pod, "--", "sh", "-c", "kill 1")
    eventually(
        lambda: (
            bot.kubectl.json("get", "pod", pod)["status"]["containerStatuses"][0]["restartCount"]
            > restarts["restartCount"]
        ),
        what="the API container restarted",
        timeout=ROLL_TIMEOUT,
    )
    previous = guide.run("kubectl logs alpha-api-... --previous", extra={"alpha-api-...": pod})
    assert "shutting down" in previous.stdout.lower() or previous.stdout.strip(), previous
    wait_ready(bot)
    guide.run("kubectl logs deploy/alpha-api --since=24h > alpha-api_$(date +%Y%m%d_%H%M%S).log")
    saved = list(guide.workdir.glob(f"{bot.name}-api_*.log"))
    assert saved, list(guide.workdir.iterdir())
    assert saved[0].stat().st_size > 0
    operators = guide.run(
        "kubectl -n traderbot-system logs -l app.kubernetes.io/name=traderbot-operator"
        " --prefix --tail=-1"
    ).stdout
    assert bot.name in operators, operators[-2000:]  # the leader's log, among the replicas'
    lease = guide.run("kubectl -n traderbot-system get lease traderbot-operator").stdout
    holder = lease.splitlines()[1].split()[1]
    assert holder.startswith(f"{operator_release.deployment}-"), lease

    before = api_pod(bot)
    guide.run('kubectl patch tb alpha --type merge -p \'{"spec":{"api":{"logLevel":"debug"}}}\'')
    eventually(lambda: api_pod(bot) != before, what="pods rolled to debug", timeout=ROLL_TIMEOUT)
    wait_ready(bot)
    patch_spec(bot, {"api": {"logLevel": "info"}})
    wait_ready(bot)

    # Rate limiting for real: far past the bucket (20/s, burst 40 per client IP).
    codes = json.loads(bot.kubectl.out("exec", api_pod(bot), "--", "python", "-c", BURST))
    assert codes.get("429", 0) > 0, codes
    assert codes.get("200", 0) >= 40, codes  # the burst passed before the limit
    guide.run("kubectl logs deploy/alpha-api --since=24h | jq -c 'select(.level==\"ERROR\")'")
    by_client = guide.run(
        "kubectl logs deploy/alpha-api --since=24h | jq -c 'select(.client_ip==\"10.0.0.7\")'",
        extra={"10.0.0.7": "127.0.0.1"},  # the burst came from the pod's loopback
    ).stdout
    limited = guide.run("kubectl logs deploy/alpha-api --since=24h | grep 'Rate limit exceeded'")
    assert limited.stdout.count("Rate limit exceeded") >= 1
    assert "Rate limit exceeded" in by_client, (by_client[:500], limited.stdout[:1000])
    guide.run("kubectl logs deploy/alpha-api --since=24h | jq -c 'select(.circuit)'")
    guide.covered_by("kubectl logs", list(guide.ran))


def run_name(created: str) -> str:
    """``traderbotbackup.traderbot.dev/alpha-manual-x7k2q created`` -> the name."""
    match = re.search(r"/(\S+) created", created)
    assert match, created
    return match.group(1)


def wait_phase(bot: Bot, resource: str, name: str, phase: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body: dict[str, Any] = bot.kubectl.json("get", resource, name)
        now = body.get("status", {}).get("phase")
        if now == "Failed" and phase != "Failed":
            raise AssertionError(f"{resource} {name} Failed: {body['status']}")
        return body if now == phase else None

    found: dict[str, Any] = eventually(
        reached, what=f"{resource} {name} {phase}", timeout=ROLL_TIMEOUT, interval=2.0
    )
    return found


def test_4_backup_and_recovery(guide: GuideRunner, bot: Bot) -> None:
    cronjob = guide.run("kubectl get cronjob alpha-backup").stdout
    assert "0 3 * * *" in cronjob
    created = guide.run(
        "kubectl create -f - <<EOF\napiVersion: traderbot.dev/v1alpha1\nkind: TraderBotBackup\n"
        "metadata: {generateName: alpha-manual-}\nspec: {botName: alpha}\nEOF"
    ).stdout
    backup = run_name(created)
    record = wait_phase(bot, "tbb", backup, "Completed")
    listed = guide.run("kubectl get tbb").stdout
    assert re.search(rf"^{backup}\s+{bot.name}\s+Completed", listed, re.MULTILINE), listed
    where = guide.run(
        "kubectl get tbb alpha-manual-x7k2q -o jsonpath='{.status.location} {.status.checksum}"
        '{"\\n"}\'',
        extra={"alpha-manual-x7k2q": backup},
    ).stdout.split()
    assert len(where) == 2, where
    assert re.fullmatch(r"(sha256:)?[0-9a-f]{64}", where[1]), where
    jobs = guide.run(
        "kubectl get jobs -l app.kubernetes.io/instance=alpha,app.kubernetes.io/component=backup"
    ).stdout
    job = record["status"]["jobName"]
    assert job in jobs
    report = guide.run(
        "kubectl logs job/alpha-backup-29012345", extra={"alpha-backup-29012345": job}
    ).stdout
    assert json.loads(report.splitlines()[-1])["ok"] is True
    guide.run("kubectl get tb alpha -o jsonpath='{.status.lastBackup.time}'")
    maintenance = json.loads(
        guide.run("kubectl get tb alpha -o jsonpath='{.status.maintenance}' | jq").stdout
    )
    assert maintenance["backend"] in {"timescaledb", "postgresql"}, maintenance

    # The same program by hand, from the CronJob's template.
    script = "\n".join(
        [
            "job=alpha-backup-manual-$(date +%Y%m%d%H%M%S)",
            'kubectl create job "$job" --from=cronjob/alpha-backup',
            'kubectl wait --for=condition=complete "job/$job" --timeout=30m',
            'kubectl logs "job/$job"',
        ]
    )
    by_hand = guide.run_script(script)
    assert '"ok":true' in by_hand.stdout.replace(" ", ""), by_hand.stdout

    restore = run_name(
        guide.run(
            "kubectl create -f - <<EOF\napiVersion: traderbot.dev/v1alpha1\n"
            "kind: TraderBotRestore\nmetadata: {generateName: alpha-restore-}\n"
            "spec: {botName: alpha, backupName: alpha-29012345, what: database}\nEOF",
            extra={"alpha-29012345": backup},
        ).stdout
    )
    watched = guide.run("kubectl get tbr -w", follow_seconds=8).stdout
    assert restore in watched
    wait_phase(bot, "tbr", restore, "Completed")
    wait_ready(bot)
    assert re.search(
        rf"^{bot.name}\s+Ready", guide.run("kubectl get tb alpha").stdout, re.MULTILINE
    )
    assert restore in guide.run("kubectl get tbr").stdout

    guide.run("kubectl create job --from=cronjob/alpha-verify alpha-verify-now")
    bot.kubectl(
        "wait", "--for=condition=complete", "job/alpha-verify-now", "--timeout=300s", timeout=320
    )
    verified = guide.run(
        "kubectl logs job/alpha-verify-now", extra={"alpha-verify-now": "alpha-verify-now"}
    ).stdout
    result = json.loads(verified.splitlines()[-1])
    assert result["ok"] is True, result
    assert result["tables"]["orders"] >= 1, result  # restored into a scratch database
    bot.kubectl("delete", "job", "alpha-verify-now", "--wait=false")
    every = list(guide.ran)
    for shorthand in ("kubectl get tbb", "kubectl get tbr", "kubectl create job --from"):
        guide.covered_by(shorthand, every)


def test_5_scaling(guide: GuideRunner, bot: Bot, images: Images) -> None:
    guide.run(
        'kubectl patch tb alpha --type merge -p \'{"spec":{"api":{"resources":{"requests"'
        ':{"cpu":"1","memory":"1Gi"},"limits":{"cpu":"2","memory":"2Gi"}}}}}\''
    )
    eventually(
        lambda: bot.pods("api")[0]["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "2",
        what="pods with the new resources",
        timeout=ROLL_TIMEOUT,
    )
    wait_ready(bot)
    patch_spec(
        bot,
        {"api": {"resources": bot_manifest(bot.name, images)["spec"]["api"]["resources"]}},
    )
    wait_ready(bot)


def test_6_maintenance(guide: GuideRunner, bot: Bot, images: Images) -> None:
    guide.run('kubectl patch tb alpha --type merge -p \'{"spec":{"version":"0.1.1"}}\'')
    guide.run("kubectl get tb alpha -o jsonpath='{.status.upgrade}'")
    eventually(
        lambda: bot.get()["status"].get("version") == images.workload_next_version,
        what="upgraded",
        timeout=ROLL_TIMEOUT,
        interval=2.0,
    )
    wait_ready(bot)
    pre = guide.run("kubectl get tbb -l traderbot.dev/pre-upgrade=true").stdout
    assert "Completed" in pre, pre
    shown = guide.run("kubectl get tb alpha").stdout
    assert images.workload_next_version in shown, shown
    ready = guide.run(
        "kubectl port-forward svc/alpha-api 3000:3000 & sleep 2;"
        " curl -s localhost:3000/health/ready"
    ).stdout
    assert '"status": "ready"' in ready or '"status":"ready"' in ready, ready
    guide.run('kubectl patch tb alpha --type merge -p \'{"spec":{"version":"0.1.0"}}\'')
    eventually(
        lambda: bot.get()["status"].get("version") == images.workload_version,
        what="rolled back by hand",
        timeout=ROLL_TIMEOUT,
        interval=2.0,
    )
    wait_ready(bot)
    history = json.loads(
        guide.run("kubectl get tb alpha -o jsonpath='{.status.versionHistory}'").stdout
    )
    assert [h["version"] for h in history][-2:] == [
        images.workload_next_version,
        images.workload_version,
    ], history

    upgraded = guide.run(
        "helm upgrade traderbot-operator charts/traderbot-operator -n traderbot-system"
        " --reuse-values"
    ).stdout
    assert "has been upgraded" in upgraded
    crds = guide.run("kubectl apply --server-side -f charts/traderbot-operator/crds/").stdout
    assert "serverside-applied" in crds
    wait_ready(bot)

    backend = bot.get()["status"]["maintenance"]["backend"]
    for command in (
        'kubectl exec -it alpha-db-0 -- psql -U trader -d trader -c "SELECT job_id, proc_name,'
        ' schedule_interval, next_start FROM timescaledb_information.jobs"',
        'kubectl exec -it alpha-db-0 -- psql -U trader -d trader -c "CALL run_job(1000)"',
        'kubectl exec -it alpha-db-0 -- psql -U trader -d trader -c "SELECT drop_chunks('
        "'klines', older_than => interval '90 days')\"",
    ):
        result = guide.run(command, ok=backend == "timescaledb")
        if backend != "timescaledb":
            # Plain PostgreSQL: the guide's TimescaleDB commands fail for that reason alone.
            assert result.returncode != 0, result
            assert re.search(r"does not exist", result.stderr), result.stderr


def test_every_command_of_the_guide_ran(ran: dict[str, str]) -> None:
    every = set(guide_commands(GUIDE.read_text()))
    missing = sorted(every - set(ran))
    assert not missing, f"{len(missing)} commands of {GUIDE.name} not run: {missing}"


def test_the_guide_parses_into_commands() -> None:
    """The parser sees the guide's commands (no cluster needed)."""
    commands = guide_commands(GUIDE.read_text())
    assert "kubectl get tb -A" in commands
    assert any(
        c.startswith("kubectl create -f - <<EOF\n") and c.endswith("\nEOF") for c in commands
    )
    assert not any(c.endswith("\\") for c in commands)
    # The plugin's one-liners are the cluster tier's (tests/cluster/operator/test_plugin.py).
    assert "kubectl traderbot status alpha" in GUIDE.read_text()
    assert not any(c.startswith("kubectl traderbot") for c in commands)
