"""A reconcile pass writes only what changed, and leaves no metric behind a bot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
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


def _phase_series(bot: str) -> dict[str, float]:
    """Return the phase series the operator exports for ``bot``: phase -> value."""
    return {
        sample.labels["phase"]: sample.value
        for family in metrics.BOT_PHASE.collect()
        for sample in family.samples
        if sample.labels["bot"] == bot
    }


async def test_each_bot_exports_one_phase_series_that_follows_its_phase() -> None:
    kube = FakeKube(_body("phased", paused=True))
    state = kube.state()
    await converge(state, namespace="trading", name="phased")
    assert _phase_series("phased") == {"Paused": 1}

    kube.bots[("trading", "phased")]["spec"] = {"replicas": "many"}
    await converge(state, namespace="trading", name="phased")
    assert _phase_series("phased") == {"Failed": 1}

    del kube.bots[("trading", "phased")]
    await converge(state, namespace="trading", name="phased")
    assert _phase_series("phased") == {}


def test_a_phase_map_replaces_only_the_series_that_changed() -> None:
    metrics.set_phases({("trading", "a"): "Ready", ("trading", "b"): "Degraded"})
    metrics.set_phases({("trading", "a"): "Ready", ("trading", "b"): "Ready"})
    assert _phase_series("a") == {"Ready": 1}
    assert _phase_series("b") == {"Ready": 1}
    assert metrics.REGISTRY.get_sample_value("traderbot_operator_bots", {"phase": "Ready"}) == 2
    metrics.set_phases({})
    assert _phase_series("a") == _phase_series("b") == {}


def _verified_gauge(bot: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "traderbot_operator_backup_verified", {"namespace": "trading", "bot": bot}
    )


async def test_a_deleted_bot_leaves_no_verification_or_last_backup_series() -> None:
    metrics.set_backup_verified(namespace="trading", bot="gone", verified=False)
    metrics.set_last_backup(namespace="trading", bot="gone", time=datetime.now(UTC))
    assert _verified_gauge("gone") == 0
    await converge(FakeKube().state(), namespace="trading", name="gone")
    assert _verified_gauge("gone") is None
    assert (
        metrics.REGISTRY.get_sample_value(
            "traderbot_operator_backup_last_success_timestamp_seconds",
            {"namespace": "trading", "bot": "gone"},
        )
        is None
    )


async def test_the_last_backup_time_is_exported_while_backups_are_on() -> None:
    body = _body("kept", paused=True)
    body["status"] = {"lastBackup": {"time": "2026-03-01T03:00:12Z"}}
    kube = FakeKube(body)
    await converge(kube.state(), namespace="trading", name="kept")
    labels = {"namespace": "trading", "bot": "kept"}
    name = "traderbot_operator_backup_last_success_timestamp_seconds"
    assert (
        metrics.REGISTRY.get_sample_value(name, labels)
        == datetime(2026, 3, 1, 3, 0, 12, tzinfo=UTC).timestamp()
    )

    kube.bots[("trading", "kept")]["spec"]["backup"] = {"enabled": False}
    await converge(kube.state(), namespace="trading", name="kept")
    assert metrics.REGISTRY.get_sample_value(name, labels) is None
