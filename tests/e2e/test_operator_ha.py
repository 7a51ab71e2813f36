"""Two operator replicas on the real node; the kubectl plugin and hibernation on real pods.

Issue 12: the leader's pod dies and the standby takes over; ``kubectl traderbot``
reads real pods' status and logs and bundles them. Each test leaves the session's
bot as it found it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from e2e.stack import Bot, Kubectl, OperatorRelease, place_order, pod_ready
from support.kube import eventually

# The chart's Lease timings (15 s, renewals every 2 s with up to 1.2x jitter), and
# slack for a real node under load.
TAKEOVER_BOUND = 15 + 2 * 2.2 + 10


def _operator_pods(kubectl: Kubectl, release: OperatorRelease) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = kubectl.in_namespace(release.namespace).json(
        "get", "pods", "-l", "app.kubernetes.io/name=traderbot-operator"
    )["items"]
    return [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]


def _holder(kubectl: Kubectl, release: OperatorRelease) -> str:
    lease = kubectl.in_namespace(release.namespace).json("get", "lease", release.deployment)
    return str(lease["spec"].get("holderIdentity") or "")


def _pod_of(holder: str) -> str:
    return holder.rsplit("_", 1)[0]


def test_the_standby_operator_takes_over_when_the_leaders_pod_is_killed(
    kubectl: Kubectl, operator_release: OperatorRelease, bot: Bot
) -> None:
    ops = kubectl.in_namespace(operator_release.namespace)
    leader = _pod_of(_holder(kubectl, operator_release))
    others = {p["metadata"]["name"] for p in _operator_pods(kubectl, operator_release)} - {leader}
    assert len(others) == 1, (leader, others)
    # No grace: the leader gets no chance to finish its work, as on a lost node.
    ops("delete", "pod", leader, "--grace-period=0", "--force", "--wait=false")
    killed = time.monotonic()

    def taken_over() -> str | None:
        # NB: the standby, or the replacement pod if it starts first and the Lease was
        # released: any replica but the killed one is a takeover.
        holder = _pod_of(_holder(kubectl, operator_release))
        return holder if holder and holder != leader else None

    try:
        new_leader = eventually(
            taken_over, what="another replica holds the Lease", timeout=TAKEOVER_BOUND * 2
        )
    except AssertionError as error:
        state = ops("get", "lease,pods", "-o", "wide", check=False).stdout
        logs = operator_release.logs()[-4000:]
        raise AssertionError(f"{error}\n{state}\n{logs}") from error
    took = time.monotonic() - killed
    assert took <= TAKEOVER_BOUND, f"takeover took {took:.1f}s (bound {TAKEOVER_BOUND}s)"
    assert new_leader in {p["metadata"]["name"] for p in _operator_pods(kubectl, operator_release)}

    # The new leader reconciles: a change to the bot rolls out, and a replacement pod
    # for the killed one comes up as the new standby.
    before = {p["metadata"]["name"] for p in bot.pods("api")}
    bot.kubectl(
        "patch", "tb", bot.name, "--type=merge", "-p", '{"spec":{"api":{"logLevel":"debug"}}}'
    )
    try:
        eventually(
            lambda: {p["metadata"]["name"] for p in bot.pods("api")} - before,
            what="the API pods rolled under the new leader",
            timeout=180,
        )
    finally:
        bot.kubectl(
            "patch", "tb", bot.name, "--type=merge", "-p", '{"spec":{"api":{"logLevel":"info"}}}'
        )
    bot.wait_phase("Ready")
    eventually(
        lambda: len([p for p in _operator_pods(kubectl, operator_release) if pod_ready(p)]) == 2,
        what="two Ready operator replicas again",
        timeout=180,
    )


def _plugin(
    kubectl: Kubectl, *args: str, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("kubectl-traderbot")
    return subprocess.run(
        [str(script), "--kubeconfig", str(kubectl.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_plugin_reads_real_pods_logs_and_bundles_them_without_secrets(
    kubectl: Kubectl, operator_release: OperatorRelease, bot: Bot, tmp_path: Path
) -> None:
    status = _plugin(kubectl, "status", bot.name, "-n", bot.namespace, "-o", "json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["phase"] == "Ready", report

    logs = _plugin(kubectl, "logs", bot.name, "-n", bot.namespace, "--component", "api")
    assert logs.returncode == 0, logs.stderr
    assert '"message"' in logs.stdout, logs.stdout[-2000:]  # trader-api's JSON lines

    bundle = tmp_path / "report.tar.gz"
    made = _plugin(
        kubectl,
        "report", bot.name, "-n", bot.namespace, "--to", str(bundle),
        "--operator-namespace", operator_release.namespace,
        timeout=300,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    texts: dict[str, bytes] = {}
    with tarfile.open(bundle) as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is not None:
                texts[member.name] = handle.read()
    logs_in_bundle = [name for name in texts if name.endswith(".log") and texts[name].strip()]
    assert any(f"{bot.name}-api" in name for name in logs_in_bundle), sorted(texts)
    assert any("operator/" in name for name in logs_in_bundle), sorted(texts)
    for secret in (bot.api_key, bot.secret_value(f"{bot.name}-db-credentials", "password")):
        assert all(secret.encode() not in text for text in texts.values())


def test_hibernation_stops_every_pod_and_resume_brings_the_rows_back(
    kubectl: Kubectl, bot: Bot
) -> None:
    """Issue 12.4 on real pods, through the plugin: every pod gone, volumes kept, rows intact."""
    with bot.forward() as forward:
        client_order_id = place_order(forward, bot.api_key)["client_order_id"]
    query = f"SELECT count(*) FROM orders WHERE client_order_id = '{client_order_id}'"  # noqa: S608
    assert bot.psql(query) == "1"
    claims = set(bot.kubectl.out("get", "pvc", "-o", "name").split())

    slept = _plugin(kubectl, "hibernate", bot.name, "-n", bot.namespace)
    assert slept.returncode == 0, slept.stderr
    try:
        bot.wait_phase("Hibernated", timeout=240)
        eventually(
            lambda: not any(bot.pods(component) for component in ("api", "database", "cache")),
            what="no API, database or Redis pod",
            timeout=180,
        )
        assert set(bot.kubectl.out("get", "pvc", "-o", "name").split()) == claims
    finally:
        woke = _plugin(kubectl, "resume", bot.name, "-n", bot.namespace)
        assert woke.returncode == 0, woke.stderr
    bot.wait_phase("Ready", timeout=300)
    assert bot.psql(query) == "1"
