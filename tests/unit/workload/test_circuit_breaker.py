"""The breaker opens on consecutive failures, fails fast while open, and closes after a
successful trial once the reset timeout has passed."""

from __future__ import annotations

import asyncio

import pytest

from trader_api.execution import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    CircuitTransition,
    TransientBrokerError,
    UnknownOrderError,
)


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Calls:
    """Operations for the breaker to run, counting how often they really ran."""

    def __init__(self) -> None:
        self.count = 0

    async def ok(self) -> str:
        self.count += 1
        return "ok"

    async def fail(self) -> str:
        self.count += 1
        raise TransientBrokerError("exchange timed out")


def breaker(clock: FakeClock, transitions: list[CircuitTransition] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        name="paper",
        failure_threshold=3,
        reset_timeout=30.0,
        clock=clock,
        on_state_change=None if transitions is None else transitions.append,
    )


def state_of(circuit: CircuitBreaker) -> CircuitState:
    """Read the state through a call, so mypy does not narrow it across awaits."""
    return circuit.state


async def fail_times(circuit: CircuitBreaker, calls: Calls, times: int) -> None:
    for _ in range(times):
        with pytest.raises(TransientBrokerError):
            await circuit.call(calls.fail)


async def test_it_opens_after_the_threshold_of_consecutive_failures() -> None:
    clock, calls = FakeClock(), Calls()
    circuit = breaker(clock)
    await fail_times(circuit, calls, 2)
    assert await circuit.call(calls.ok) == "ok"  # a success resets the count
    await fail_times(circuit, calls, 2)
    assert state_of(circuit) is CircuitState.CLOSED
    await fail_times(circuit, calls, 1)
    assert state_of(circuit) is CircuitState.OPEN


async def test_while_open_calls_fail_fast_without_running() -> None:
    clock, calls = FakeClock(), Calls()
    circuit = breaker(clock)
    await fail_times(circuit, calls, 3)
    clock.now += 10
    with pytest.raises(CircuitOpenError) as refused:
        await circuit.call(calls.ok)
    assert str(refused.value) == "circuit paper is open; next trial in 20.0s"
    assert refused.value.retry_after == 20.0
    assert calls.count == 3


async def test_a_successful_trial_after_the_timeout_closes_it() -> None:
    clock, calls = FakeClock(), Calls()
    transitions: list[CircuitTransition] = []
    circuit = breaker(clock, transitions)
    await fail_times(circuit, calls, 3)
    clock.now += 29.9
    assert state_of(circuit) is CircuitState.OPEN
    clock.now += 0.1
    assert state_of(circuit) is CircuitState.HALF_OPEN
    assert await circuit.call(calls.ok) == "ok"
    assert state_of(circuit) is CircuitState.CLOSED
    assert [str(t) for t in transitions] == [
        "circuit paper: closed -> open (3 consecutive failures, last: "
        "TransientBrokerError('exchange timed out'))",
        "circuit paper: open -> half_open (30s reset timeout passed)",
        "circuit paper: half_open -> closed (a call succeeded)",
    ]


async def test_a_failed_trial_opens_it_for_another_full_timeout() -> None:
    clock, calls = FakeClock(), Calls()
    circuit = breaker(clock)
    await fail_times(circuit, calls, 3)
    clock.now += 30
    await fail_times(circuit, calls, 1)
    assert state_of(circuit) is CircuitState.OPEN
    clock.now += 29
    assert state_of(circuit) is CircuitState.OPEN
    clock.now += 1
    assert state_of(circuit) is CircuitState.HALF_OPEN


async def test_half_open_lets_one_trial_through_at_a_time() -> None:
    clock = FakeClock()
    circuit = breaker(clock)
    await fail_times(circuit, Calls(), 3)
    clock.now += 30
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_trial() -> str:
        started.set()
        await release.wait()
        return "recovered"

    trial = asyncio.create_task(circuit.call(slow_trial))
    async with asyncio.timeout(5):
        await started.wait()
    with pytest.raises(CircuitOpenError):
        await circuit.call(Calls().ok)
    release.set()
    async with asyncio.timeout(5):
        assert await trial == "recovered"
    assert state_of(circuit) is CircuitState.CLOSED


async def test_a_clear_refusal_is_not_a_failure() -> None:
    circuit = breaker(FakeClock())

    async def refuse() -> None:
        raise UnknownOrderError("no such order")

    for _ in range(5):
        with pytest.raises(UnknownOrderError):
            await circuit.call(refuse)
    assert state_of(circuit) is CircuitState.CLOSED
    assert circuit.consecutive_failures == 0


async def test_unexpected_errors_count_as_failures() -> None:
    circuit = breaker(FakeClock())

    async def explode() -> None:
        raise ConnectionResetError("peer reset")

    for _ in range(3):
        with pytest.raises(ConnectionResetError):
            await circuit.call(explode)
    assert state_of(circuit) is CircuitState.OPEN


def test_state_metric_values_rise_with_trouble() -> None:
    assert [s.metric_value for s in CircuitState] == [0, 2, 1]


@pytest.mark.parametrize(("threshold", "timeout"), [(0, 30.0), (3, 0.0)])
def test_nonsense_settings_are_refused(threshold: int, timeout: float) -> None:
    with pytest.raises(ValueError, match="failure_threshold must be >= 1"):
        CircuitBreaker(failure_threshold=threshold, reset_timeout=timeout)


async def test_a_cancelled_trial_frees_the_slot_for_the_next_one() -> None:
    clock = FakeClock()
    circuit = breaker(clock)
    await fail_times(circuit, Calls(), 3)
    clock.now += 30
    started = asyncio.Event()

    async def hanging_trial() -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    trial = asyncio.create_task(circuit.call(hanging_trial))
    async with asyncio.timeout(5):
        await started.wait()
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert state_of(circuit) is CircuitState.HALF_OPEN
    assert await circuit.call(Calls().ok) == "ok"
    assert state_of(circuit) is CircuitState.CLOSED
