"""Scale benchmark of the operator: N TraderBots applied at once converge to Ready.

    .venv/bin/python bench/operator_scale.py [--bots 100] [--steady-seconds 300]
    .venv/bin/python bench/operator_scale.py --kubeconfig ~/.kube/config   # existing cluster

Runs the real ``traderbot-operator`` as a child process against the local control
plane (kwok fake nodes) and reports, as one JSON line and a short table:

* wall time until every bot is Ready, and its ratio to one bot converging alone
  in the same run (the baseline);
* API requests per bot (from the operator's own request counter), and the ratio
  to the baseline bot's;
* the operator's peak resident memory (VmHWM);
* writes during the steady-state window after convergence (target: 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from lightkube import ApiError, Client, KubeConfig
from lightkube.codecs import from_dict
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

from traderbot_devtools import LocalCluster, localcluster
from traderbot_devtools.localcluster import free_loopback_ports
from traderbot_operator.kube import TraderBotResource

ROOT = Path(__file__).resolve().parents[1]
CRD = ROOT / "crds" / "traderbot.dev_traderbots.yaml"
NAMESPACE = "bench-operator"
VOLUMES_PER_BOT = 3  # database, Redis, backups
# NB: each bot has 3 ClusterIP Services (API, database, Redis); the local control
# plane's default /24 service range holds 254, so the benchmark widens it.
BENCH_SERVICE_CIDR = "10.96.0.0/20"
# Each bot requests 0.4 CPU and runs 3 pods; a fake node offers 32 CPUs and 250 pods.
BOTS_PER_NODE = 50
SAMPLE = re.compile(r'^traderbot_operator_api_requests_total\{kind="[^"]*",verb="([^"]*)"\} (\S+)$')


def _wait(what: str, check: Any, *, timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


READ_VERBS = frozenset({"get", "list"})


def _requests(port: int) -> dict[str, float]:
    """Return the operator's API request counts by verb, read from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0.0) + float(match.group(2))
    return counts


def _writes(counts: dict[str, float]) -> float:
    return sum(n for verb, n in counts.items() if verb not in READ_VERBS)


def _reads(counts: dict[str, float]) -> float:
    return sum(n for verb, n in counts.items() if verb in READ_VERBS)


def _peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _established(client: Client) -> bool:
    crd = client.get(CustomResourceDefinition, "traderbots.traderbot.dev")
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def _setup(client: Client, *, volumes: int) -> None:
    client.apply(from_dict(yaml.safe_load(CRD.read_text())), field_manager="bench", force=True)
    _wait("the CRD", lambda: _established(client), timeout=30)
    with contextlib.suppress(ApiError):
        client.create(
            from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        )
    for index in range(volumes):
        with contextlib.suppress(ApiError):
            client.create(
                from_dict(
                    {
                        "apiVersion": "v1",
                        "kind": "PersistentVolume",
                        "metadata": {"name": f"bench-pv-{index}", "labels": {"bench": "operator"}},
                        "spec": {
                            "capacity": {"storage": "100Gi"},
                            "accessModes": ["ReadWriteOnce"],
                            "persistentVolumeReclaimPolicy": "Delete",
                            "hostPath": {"path": f"/nonexistent/bench-{index}"},
                        },
                    }
                )
            )


def _ready(client: Client, names: list[str]) -> bool:
    resource: Any = TraderBotResource  # generic resources are untyped in lightkube
    bodies: list[dict[str, Any]] = [
        bot.to_dict() for bot in client.list(resource, namespace=NAMESPACE)
    ]
    phases = {body["metadata"]["name"]: (body.get("status") or {}).get("phase") for body in bodies}
    return all(phases.get(name) == "Ready" for name in names)


def _create(client: Client, names: list[str]) -> None:
    for name in names:
        client.create(
            TraderBotResource.from_dict(
                {
                    "apiVersion": "traderbot.dev/v1alpha1",
                    "kind": "TraderBot",
                    "metadata": {"name": name},
                    "spec": {},
                }
            ),
            namespace=NAMESPACE,
        )


@contextlib.contextmanager
def _operator(
    kubeconfig: Path, *, metrics_port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    command = [
        str(Path(sys.executable).with_name("traderbot-operator")),
        "--namespace", NAMESPACE,
        "--metrics-port", str(metrics_port),
        "--liveness-port", "0",
        "--listen-address", "127.0.0.1",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def measure(
    kubeconfig: Path, *, bots: int, steady_seconds: float, timeout: float
) -> dict[str, Any]:
    """Run the benchmark against ``kubeconfig``; return the figures."""
    client = Client(config=KubeConfig.from_file(str(kubeconfig)), field_manager="bench")
    _setup(client, volumes=(bots + 1) * VOLUMES_PER_BOT)
    [port] = free_loopback_ports(1)
    log = Path(tempfile.mkdtemp(prefix="bench-operator-")) / "operator.log"
    with _operator(kubeconfig, metrics_port=port, log=log) as process:
        _wait("operator /metrics", lambda: _safe_requests(port) is not None, timeout=60)
        started = time.monotonic()
        _create(client, ["baseline"])
        _wait("the baseline bot Ready", lambda: _ready(client, ["baseline"]), timeout=timeout)
        baseline_seconds = time.monotonic() - started
        after_baseline = _requests(port)

        names = [f"bot-{i:03d}" for i in range(bots)]
        started = time.monotonic()
        _create(client, names)
        _wait(f"{bots} bots Ready", lambda: _ready(client, names), timeout=timeout, interval=1)
        wall_seconds = time.monotonic() - started
        converged = _requests(port)

        time.sleep(min(steady_seconds, 10))  # late status refreshes of the last bots land first
        steady_start = _requests(port)
        time.sleep(steady_seconds)
        steady_end = _requests(port)
        peak_rss = _peak_rss_bytes(process.pid)

    baseline_requests = sum(after_baseline.values())
    bulk_requests = sum(converged.values()) - baseline_requests
    per_bot = bulk_requests / bots
    return {
        "bots": bots,
        "baseline_seconds": round(baseline_seconds, 2),
        "wall_seconds": round(wall_seconds, 2),
        "wall_ratio_to_one_bot": round(wall_seconds / baseline_seconds, 2),
        "seconds_per_bot": round(wall_seconds / bots, 3),
        "requests_per_bot": round(per_bot, 1),
        "requests_ratio_to_one_bot": round(per_bot / baseline_requests, 2),
        "writes_per_bot": round((_writes(converged) - _writes(after_baseline)) / bots, 1),
        "peak_rss_mib": round(peak_rss / 2**20, 1),
        "steady_seconds": steady_seconds,
        "steady_writes": _writes(steady_end) - _writes(steady_start),
        "steady_reads": _reads(steady_end) - _reads(steady_start),
        "operator_log": str(log),
    }


def _safe_requests(port: int) -> dict[str, float] | None:
    try:
        return _requests(port)
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bots", type=int, default=100)
    parser.add_argument("--steady-seconds", type=float, default=300.0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--kubeconfig", type=Path, default=None, help="use an existing cluster")
    args = parser.parse_args()
    if args.kubeconfig is not None:
        figures = measure(
            args.kubeconfig,
            bots=args.bots,
            steady_seconds=args.steady_seconds,
            timeout=args.timeout,
        )
    else:
        localcluster.SERVICE_CIDR = BENCH_SERVICE_CIDR
        nodes = tuple(f"kwok-node-{i}" for i in range(math.ceil((args.bots + 1) / BOTS_PER_NODE)))
        with LocalCluster(nodes=nodes) as cluster:
            figures = measure(
                cluster.kubeconfig,
                bots=args.bots,
                steady_seconds=args.steady_seconds,
                timeout=args.timeout,
            )
    print(json.dumps(figures))
    for key, value in figures.items():
        print(f"  {key:28} {value}")


if __name__ == "__main__":
    main()
