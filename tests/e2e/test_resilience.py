"""Readiness, shutdown, restarts and leadership on real pods.

Each test leaves the session's bot as it found it: Ready, one replica, not paused.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from e2e.stack import (
    Bot,
    Images,
    PortForward,
    Stack,
    container_restarts,
    pod_ready,
    start_load,
)
from support.kube import eventually

RESTART_TIMEOUT = 180.0


def ready_answer(forward: PortForward) -> httpx.Response:
    return httpx.get(f"{forward.url}/health/ready", timeout=10)


def leader_gauge(bot: Bot, pod: str) -> float:
    """The ``leader`` gauge of one pod, read through a port-forward to that pod."""
    with bot.forward(f"pod/{pod}") as forward:
        text = httpx.get(f"{forward.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(("leader ", "leader{")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no leader gauge in {pod}'s /metrics")


def drain(socket: ClientConnection) -> None:
    """Read messages until the socket closes (raises ConnectionClosed) or 60 s pass quietly."""
    while True:
        socket.recv(timeout=60)


def container_pids(container_id: str) -> list[int]:
    """Host PIDs of a container, found by its id in their cgroup paths (the local node only)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroups = (proc / "cgroup").read_text()
        except OSError:
            continue
        if container_id in cgroups:
            found.append(int(proc.name))
    return found


def test_readiness_follows_redis_for_real(bot: Bot) -> None:
    """Redis stopped: the API pods go NotReady (503 naming redis); Redis back: Ready again."""
    bot.kubectl("patch", "tb", bot.name, "--type=merge", "-p", '{"spec":{"paused":true}}')
    bot.wait_phase("Paused")
    api_pod = bot.pods("api")[0]["metadata"]["name"]
    try:
        bot.kubectl("scale", f"sts/{bot.name}-redis", "--replicas=0")
        eventually(lambda: not bot.pods("cache"), what="no Redis pod", timeout=RESTART_TIMEOUT)
        eventually(
            lambda: not pod_ready(bot.kubectl.json("get", "pod", api_pod)),
            what=f"{api_pod} NotReady by its readiness probe",
            timeout=60,
        )
        with bot.forward(f"pod/{api_pod}") as forward:
            answer = ready_answer(forward)
        assert answer.status_code == 503, answer.text
        body = answer.json()
        assert body["status"] == "not_ready"
        assert body["components"]["redis"].startswith("unhealthy"), body
        assert body["components"]["database"] == "healthy", body
    finally:
        bot.kubectl("scale", f"sts/{bot.name}-redis", "--replicas=1")
        eventually(
            lambda: pod_ready(bot.kubectl.json("get", "pod", api_pod)),
            what=f"{api_pod} Ready again",
            timeout=RESTART_TIMEOUT,
        )
        bot.kubectl("patch", "tb", bot.name, "--type=merge", "-p", '{"spec":{"paused":false}}')
        bot.wait_phase("Ready")
    with bot.forward(f"pod/{api_pod}") as forward:
        assert ready_answer(forward).status_code == 200


def test_sigterm_under_load_drains_every_request(bot: Bot, images: Images) -> None:
    """A rolling restart under load: the old pod gets SIGTERM, and no request fails."""
    load = start_load(bot, images.workload(), seconds=45, rate=15, order_every=5)
    before = {pod["metadata"]["name"] for pod in bot.pods("api")}
    bot.kubectl("rollout", "restart", f"deploy/{bot.name}-api")
    bot.kubectl("rollout", "status", f"deploy/{bot.name}-api", "--timeout=180s", timeout=200)
    summary = load.result()
    after = {pod["metadata"]["name"] for pod in bot.pods("api")}
    assert before.isdisjoint(after), (before, after)  # the restart did replace the pod
    assert summary["sent"] >= 600, summary
    assert summary["failures"] == [], summary
    assert set(summary["statuses"]) <= {"200", "201"}, summary
    bot.wait_phase("Ready")


def test_sigterm_closes_websockets_with_1001(bot: Bot) -> None:
    """The seed's shutdown order: open sockets are closed with 1001 (going away)."""
    api_pod = bot.pods("api")[0]["metadata"]["name"]
    with bot.forward(f"pod/{api_pod}") as forward:
        url = forward.url.replace("http://", "ws://") + "/ws?types=order"
        with connect(url, open_timeout=10, close_timeout=10) as socket:
            bot.kubectl("delete", "pod", api_pod, "--wait=false")
            with pytest.raises(ConnectionClosed) as closed:
                drain(socket)
    assert closed.value.rcvd is not None, "the socket was cut, not closed"
    assert closed.value.rcvd.code == 1001, closed.value
    bot.wait_phase("Ready")


def test_a_killed_api_container_comes_back(stack: Stack, bot: Bot) -> None:
    if stack.local is None:
        pytest.skip("SIGKILL of a container needs the node's process table (the local node)")
    pod = bot.pods("api")[0]
    name = pod["metadata"]["name"]
    restarts = container_restarts(pod)
    container_id = pod["status"]["containerStatuses"][0]["containerID"].split("://")[-1]
    pids = container_pids(container_id)
    assert pids, f"no host process of container {container_id}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    eventually(
        lambda: container_restarts(bot.kubectl.json("get", "pod", name)) > restarts,
        what=f"{name} restarted by the kubelet",
        timeout=RESTART_TIMEOUT,
    )
    eventually(
        lambda: pod_ready(bot.kubectl.json("get", "pod", name)),
        what=f"{name} Ready again",
        timeout=RESTART_TIMEOUT,
    )
    bot.wait_phase("Ready")


def test_two_replicas_one_leader_and_the_lease_moves(stack: Stack, bot: Bot) -> None:
    """Both replicas serve; one holds the Redis lease; killing it moves the lease."""
    bot.kubectl("scale", f"tb/{bot.name}", "--replicas=2")
    try:
        eventually(
            lambda: len([p for p in bot.pods("api") if pod_ready(p)]) == 2,
            what="two API pods Ready",
            timeout=RESTART_TIMEOUT,
        )
        pods = [pod["metadata"]["name"] for pod in bot.pods("api")]
        for pod in pods:
            with bot.forward(f"pod/{pod}") as forward:
                assert httpx.get(f"{forward.url}/api/v1/orders", timeout=10).status_code == 200
        leaders = eventually(
            lambda: [p for p in pods if leader_gauge(bot, p) == 1.0] or None,
            what="a leader among the replicas",
            timeout=60,
        )
        assert len(leaders) == 1, leaders
        (leader,) = leaders
        (follower,) = [p for p in pods if p != leader]
        if stack.local is not None:
            # SIGKILL: the lease is not released, it must expire.
            status = bot.kubectl.json("get", "pod", leader)["status"]["containerStatuses"][0]
            for pid in container_pids(status["containerID"].split("://")[-1]):
                os.kill(pid, signal.SIGKILL)
        else:
            bot.kubectl("delete", "pod", leader, "--wait=false")
        eventually(
            lambda: leader_gauge(bot, follower) == 1.0,
            what=f"{follower} takes the lease",
            timeout=90,
        )
    finally:
        bot.kubectl("scale", f"tb/{bot.name}", "--replicas=1")
    eventually(lambda: len(bot.pods("api")) == 1, what="one API pod", timeout=RESTART_TIMEOUT)
    bot.wait_phase("Ready")
