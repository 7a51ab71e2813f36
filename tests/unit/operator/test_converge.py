"""A reconcile pass writes only what changed, and leaves no metric behind a bot."""

from __future__ import annotations

import asyncio
from typing import Any

from traderbot_operator import metrics
from traderbot_operator.handlers.converge import Result, converge, run_serialized
from unit.operator.fake_kube import FakeKube


def _body(name: str = "alpha", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "traderbot.dev/v1alpha1",
        "kind": "TraderBot",
        "metadata": {"name": name, "namespace": "trading", "uid": "u-1", "generation": 3},
        "spec": spec,
    }


def _backup_gauge(bot: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "traderbot_operator_backup_healthy", {"namespace": "trading", "bot": bot}
    )


async def test_a_rejected_body_is_failed_and_warned_once_not_every_pass() -> None:
    kube = FakeKube(_body(replicas="many"))
    state = kube.state()
    first = await converge(state, namespace="trading", name="alpha")
    assert first.phase == "Failed"
    assert first.invalid_spec
    assert [reason for _, reason, _ in kube.events] == ["InvalidSpec"]
    status = kube.bots[("trading", "alpha")]["status"]
    assert status["phase"] == "Failed"
    assert status["observedGeneration"] == 3
    reconciled = next(c for c in status["conditions"] if c["type"] == "Reconciled")
    assert (reconciled["status"], reconciled["reason"]) == ("False", "InvalidSpec")
    assert "spec.replicas" in reconciled["message"]

    again = await converge(state, namespace="trading", name="alpha")
    assert again.writes == 0
    assert len(kube.events) == 1
    assert len(kube.status_writes) == 1


async def test_a_deleted_bot_leaves_no_backup_health_series() -> None:
    metrics.set_backup_health(namespace="trading", bot="gone", healthy=False)
    assert _backup_gauge("gone") == 0
    await converge(FakeKube().state(), namespace="trading", name="gone")
    assert _backup_gauge("gone") is None


async def test_turning_backups_off_drops_the_backup_health_series() -> None:
    metrics.set_backup_health(namespace="trading", bot="quiet", healthy=False)
    kube = FakeKube(_body("quiet", paused=True, backup={"enabled": False}))
    await converge(kube.state(), namespace="trading", name="quiet")
    assert _backup_gauge("quiet") is None


class _GatedKube(FakeKube):
    """FakeKube whose TraderBot reads wait for the test to open a gate (a pass in flight)."""

    def __init__(self, *bots: dict[str, Any]) -> None:
        super().__init__(*bots)
        self.gate = asyncio.Event()
        self.reading = asyncio.Event()
        self.reads = 0

    async def get_bot(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads += 1
        self.reading.set()
        await self.gate.wait()
        return await super().get_bot(namespace=namespace, name=name)


async def test_per_bot_locks_live_only_while_a_pass_runs_or_waits() -> None:
    kube = _GatedKube(_body(paused=True))
    state = kube.state()
    first = asyncio.create_task(
        run_serialized(state, namespace="trading", name="alpha", trigger="create")
    )
    second = asyncio.create_task(
        run_serialized(state, namespace="trading", name="alpha", trigger="update")
    )
    await kube.reading.wait()
    assert list(state.locks) == [("trading", "alpha")]
    assert state.locks[("trading", "alpha")].users == 2
    folded = await run_serialized(
        state, namespace="trading", name="alpha", trigger="child", coalesce=True
    )
    assert folded is None, "a child event during a pass is folded into it"
    kube.gate.set()
    await asyncio.gather(first, second)
    assert kube.reads == 3, "the running pass went once more, then the waiting one ran"
    assert state.locks == {}
    assert state.dirty == set()


async def test_a_deleted_bot_leaves_no_lock_phase_or_dirty_mark() -> None:
    kube = FakeKube(_body(paused=True))
    state = kube.state()
    await run_serialized(state, namespace="trading", name="alpha", trigger="create")
    assert state.phases == {("trading", "alpha"): "Paused"}
    del kube.bots[("trading", "alpha")]
    assert await run_serialized(
        state, namespace="trading", name="alpha", trigger="child"
    ) == Result(phase=None)
    assert (state.locks, state.phases, state.dirty) == ({}, {}, set())
