"""Measure the local control plane: cold build time, warm start-to-ready, memory.

    .venv/bin/python bench/controlplane.py [--runs 3] [--pods 20]

Targets (issue 2): start-to-ready under 15 s, resident memory of the whole
control plane under 1.5 GB. The cold build time is read from the build log that
hack/k8s-binaries.sh keeps next to the binaries (one line per binary built).
These are absolute figures on this machine, not ratios: there is no baseline
to compare a control plane with, only the targets.
"""

from __future__ import annotations

import argparse
import statistics
import time

from lightkube import Client, KubeConfig
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment

from traderbot_devtools import Binaries, LocalCluster, default_bin_dir

START_TARGET_S = 15.0
RSS_TARGET_BYTES = 1.5e9


def cold_build_seconds() -> dict[str, int]:
    times = default_bin_dir() / "build-times.txt"
    if not times.exists():
        return {}
    built: dict[str, int] = {}
    for line in times.read_text().splitlines():
        name, took, *_ = line.split()
        built[name] = int(took.rstrip("s"))
    return built


def run_pods(cluster: LocalCluster, count: int) -> float:
    """Create a Deployment of ``count`` pods; return seconds until all are Ready."""
    client = Client(config=KubeConfig.from_file(str(cluster.kubeconfig)))
    labels = {"app": "bench"}
    started = time.monotonic()
    client.create(
        Deployment(
            metadata=ObjectMeta(name="bench"),
            spec=DeploymentSpec(
                replicas=count,
                selector=LabelSelector(matchLabels=labels),
                template=PodTemplateSpec(
                    metadata=ObjectMeta(labels=labels),
                    spec=PodSpec(containers=[Container(name="main", image="bench:1")]),
                ),
            ),
        ),
        namespace="default",
    )
    deadline = started + 120
    while time.monotonic() < deadline:
        status = client.get(Deployment, "bench", namespace="default").status
        if status and status.readyReplicas == count:
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"{count} pods not ready in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pods", type=int, default=20)
    args = parser.parse_args()

    binaries = Binaries.find()
    build = cold_build_seconds()
    if build:
        print("cold build (s), from build-times.txt:")
        for name, took in build.items():
            print(f"  {name:<26} {took:>5}")
        print(f"  {'total':<26} {sum(build.values()):>5}")

    ready: list[float] = []
    rss_idle: list[int] = []
    rss_busy: list[int] = []
    pods_ready: list[float] = []
    per_component: dict[str, int] = {}
    for run in range(args.runs):
        with LocalCluster(binaries=binaries) as cluster:
            ready.append(cluster.ready_seconds or 0.0)
            rss_idle.append(sum(cluster.rss_bytes().values()))
            pods_ready.append(run_pods(cluster, args.pods))
            per_component = cluster.rss_bytes()
            rss_busy.append(sum(per_component.values()))
        print(
            f"run {run + 1}: ready in {ready[-1]:.1f}s, RSS {rss_idle[-1] / 1e6:.0f} MB idle, "
            f"{rss_busy[-1] / 1e6:.0f} MB with {args.pods} pods "
            f"(ready in {pods_ready[-1]:.1f}s)"
        )
    print("RSS per component after the last run's pods (MB):")
    for name, rss in per_component.items():
        print(f"  {name:<26} {rss / 1e6:>6.0f}")
    median_ready = statistics.median(ready)
    worst_rss = max(rss_busy)
    print(
        f"start-to-ready median {median_ready:.1f}s (target < {START_TARGET_S:.0f}s): "
        f"{'OK' if median_ready < START_TARGET_S else 'MISSED'}"
    )
    print(
        f"RSS max {worst_rss / 1e6:.0f} MB (target < {RSS_TARGET_BYTES / 1e6:.0f} MB): "
        f"{'OK' if worst_rss < RSS_TARGET_BYTES else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
