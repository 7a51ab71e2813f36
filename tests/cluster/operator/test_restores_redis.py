"""A Redis restore on a real API server: API and Redis stopped first, Redis back before the API.

The order is read from one watch of the namespace's Pods: a single stream delivers
events in resourceVersion order, so "before" here cannot tie the way two 1 s
timestamps can.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_backups import wait_event
from cluster.operator.test_operator import _get, _wait_phase
from cluster.operator.test_restores import (
    HOLD,
    LOCATION,
    _create_restore,
    _ready_bot_with_a_backup,
    _restore_phase,
)
from support.kube import eventually
from traderbot_operator.kube import TraderBotResource

RESTORE_LABEL = "traderbot.dev/restore"


@dataclass(frozen=True)
class PodEvent:
    """One watch event of a Pod, as much as the order checks need."""

    type: str
    name: str
    role: str  # "api", "redis", "restore" or "other"
    resource_version: int
    ready: bool
    succeeded: bool


@dataclass
class PodJournal:
    """Every Pod event of a namespace from a resourceVersion on, in the server's order."""

    events: list[PodEvent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[PodEvent]:
        with self.lock:
            return list(self.events)


def _role(pod: dict[str, Any]) -> str:
    labels = pod["metadata"].get("labels") or {}
    if RESTORE_LABEL in labels:
        return "restore"
    return {"api": "api", "cache": "redis"}.get(
        labels.get("app.kubernetes.io/component", ""), "other"
    )


def _event(type_: str, pod: dict[str, Any]) -> PodEvent:
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return PodEvent(
        type=type_,
        name=pod["metadata"]["name"],
        role=_role(pod),
        resource_version=int(pod["metadata"]["resourceVersion"]),
        ready=ready,
        succeeded=status.get("phase") == "Succeeded",
    )


@pytest.fixture
def pod_journal(kube: Client, namespace: str) -> Iterator[PodJournal]:
    """Watch the namespace's Pods in a thread for the test's duration.

    NB: a daemon thread: the sync watch has no way to be interrupted; it ends with
    the namespace's deletion (the next events) or the process.
    """
    journal = PodJournal()
    done = threading.Event()
    # NB: a list's resourceVersion is where the watch starts: no event is missed.
    start = kube.list(Pod, namespace=namespace)
    for pod in start:
        journal.events.append(_event("EXISTING", pod.to_dict()))
    since = start.resourceVersion

    def follow() -> None:
        try:
            for type_, pod in kube.watch(Pod, namespace=namespace, resource_version=since):
                if done.is_set():
                    return
                with journal.lock:
                    journal.events.append(_event(type_, pod.to_dict()))
        except Exception:
            if not done.is_set():
                raise  # NB: after the test, the control plane stopping ends the watch

    threading.Thread(target=follow, daemon=True, name="pod-journal").start()
    yield journal
    done.set()


def _settled(journal: PodJournal) -> list[PodEvent] | None:
    """Return the journal once the restore pod succeeded and an API pod is Ready after it."""
    events = journal.snapshot()
    done = next((i for i, e in enumerate(events) if e.role == "restore" and e.succeeded), None)
    if done is None or not any(e.role == "api" and e.ready for e in events[done:]):
        return None
    return events


def _alive_at(events: list[PodEvent], index: int, role: str) -> set[str]:
    """Return the pods of ``role`` that exist just before ``events[index]``."""
    alive: set[str] = set()
    for event in events[:index]:
        if event.role != role:
            continue
        if event.type == "DELETED":
            alive.discard(event.name)
        else:
            alive.add(event.name)
    return alive


def test_a_redis_restore_stops_api_and_redis_first_and_starts_redis_before_the_api(
    kube: Client, namespace: str, operator: OperatorRunner, pod_journal: PodJournal
) -> None:
    _ready_bot_with_a_backup(kube, namespace)
    eventually(
        lambda: {e.role for e in pod_journal.snapshot()} >= {"api", "redis"},
        what="the journal to see the API and Redis pods",
    )
    _create_restore(kube, namespace, "undo", what="both")

    done = _restore_phase(kube, namespace, "undo", "Completed")
    _wait_phase(kube, namespace, "alpha", "Ready")
    events = eventually(
        partial(_settled, pod_journal), what="the API pod Ready again after the restore"
    )

    job = _get(kube, Job, "undo", namespace)
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["restore", LOCATION, "--what", "both"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["REDIS_DATA_DIR"], env["REDIS_APPENDONLY"]) == ("/redis-data", "true")
    assert {"name": "redis-data", "persistentVolumeClaim": {"claimName": "data-alpha-redis-0"}} in (
        pod["volumes"]
    )

    job_pod = next(i for i, e in enumerate(events) if e.role == "restore")
    # Nothing of the bot that writes its data runs when the restore pod is created.
    assert _alive_at(events, job_pod, "api") == set()
    assert _alive_at(events, job_pod, "redis") == set()
    redis_gone = max(
        e.resource_version for e in events[:job_pod] if e.role == "redis" and e.type == "DELETED"
    )
    assert redis_gone < events[job_pod].resource_version
    # Then: the restore pod succeeds, Redis comes back and is Ready, and only then the API.
    job_done = next(i for i, e in enumerate(events) if e.role == "restore" and e.succeeded)
    redis_back = next(
        i for i, e in enumerate(events) if i > job_done and e.role == "redis" and e.type == "ADDED"
    )
    redis_ready = next(
        i for i, e in enumerate(events) if i > redis_back and e.role == "redis" and e.ready
    )
    api_back = next(
        i for i, e in enumerate(events) if i > job_done and e.role == "api" and e.type == "ADDED"
    )
    assert job_done < redis_back < redis_ready < api_back

    assert done["status"]["restoredAt"]
    assert _get(kube, StatefulSet, "alpha-redis", namespace)["spec"]["replicas"] == 1
    assert HOLD not in (
        _get(kube, TraderBotResource, "alpha", namespace)["metadata"].get("annotations") or {}
    )
    wait_event(kube, namespace, "undo", reason="RestoreCompleted", type_="Normal")


def test_a_redis_restore_of_a_bot_without_redis_persistence_is_refused_untouched(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _ready_bot_with_a_backup(kube, namespace, {"redis": {"persistence": False}})
    before = _get(kube, StatefulSet, "alpha-redis", namespace)["metadata"]["generation"]
    _create_restore(kube, namespace, "undo", what="redis")
    refused = _restore_phase(kube, namespace, "undo", "Failed")
    assert "spec.redis.persistence false" in refused["status"]["message"]
    wait_event(kube, namespace, "undo", reason="RestoreRefused", type_="Warning")
    redis = _get(kube, StatefulSet, "alpha-redis", namespace)
    assert (redis["spec"]["replicas"], redis["metadata"]["generation"]) == (1, before)
    assert HOLD not in (
        _get(kube, TraderBotResource, "alpha", namespace)["metadata"].get("annotations") or {}
    )
