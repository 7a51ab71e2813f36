"""An unexpected exception in a pass becomes a status and one Event, never a silent loop.

Issue 14, class 12: an OverflowError in the restore handler left no status and no
Event and was retried for ever. The one guard every handler runs its pass in
reports such a failure on the object and retries slowly.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kopf
import pytest

from traderbot_operator.handlers.traderbot import (
    CONFLICT_RETRY_SECONDS,
    KOPF_MESSAGE_LENGTH,
    OPERATOR_ERROR_RETRY_SECONDS,
    brief,
    pass_guard,
)
from traderbot_operator.kube import ConflictError, InvalidNameError, KubeError
from traderbot_operator.models import API_VERSION, KIND, RESTORE_KIND
from traderbot_operator.reconcile import ObjectKey
from unit.operator.fake_kube import FakeKube


class _Objects(FakeKube):
    """FakeKube whose ``get`` finds any object it holds, whatever the kind."""

    def __init__(self, *bodies: dict[str, Any]) -> None:
        super().__init__()
        self.objects = {(b["kind"], b["metadata"]["name"]): b for b in bodies}

    async def get(self, *, namespace: str, key: ObjectKey) -> dict[str, Any] | None:
        found = self.objects.get((key[1], key[2]))
        return None if found is None else copy.deepcopy(found)

    async def patch_status(
        self, *, namespace: str, name: str, status: Mapping[str, Any], kind: str = KIND, **_: Any
    ) -> None:
        self.status_writes.append(dict(status))
        self.objects[(kind, name)]["status"] = copy.deepcopy(dict(status))


def _body(kind: str, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": "alpha", "namespace": "trading", "generation": 4, "uid": "u"},
        "status": status,
    }


async def _fail_in_a_pass(fake: _Objects, kind: str, error: Exception) -> kopf.TemporaryError:
    with pytest.raises(kopf.TemporaryError) as retried:
        async with pass_guard(fake.state(), kind=kind, namespace="trading", name="alpha"):
            raise error
    return retried.value


async def test_a_bots_unexpected_error_is_reported_once_and_retried_slowly() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "AllReady", "message": "ok"}
    fake = _Objects(_body(KIND, {"phase": "Ready", "conditions": [ready]}))
    error = OverflowError("date value out of range")
    retried = await _fail_in_a_pass(fake, KIND, error)
    assert retried.delay == OPERATOR_ERROR_RETRY_SECONDS
    status = fake.objects[(KIND, "alpha")]["status"]
    assert status["phase"] == "Ready"  # the pods may be fine: the phase stays
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"] == ready
    reconciled = conditions["Reconciled"]
    assert (reconciled["status"], reconciled["reason"]) == ("False", "OperatorError")
    assert "OverflowError: date value out of range" in reconciled["message"]
    assert reconciled["observedGeneration"] == 4
    assert [(t, r) for t, r, _ in fake.events] == [("Warning", "OperatorError")]
    # The retry fails the same way: nothing new is written or posted.
    await _fail_in_a_pass(fake, KIND, OverflowError("date value out of range"))
    assert len(fake.status_writes) == 1
    assert len(fake.events) == 1


async def test_a_restores_unexpected_error_keeps_its_phase_and_says_why() -> None:
    fake = _Objects(_body(RESTORE_KIND, {"phase": "Pending"}))
    await _fail_in_a_pass(fake, RESTORE_KIND, OverflowError("days=1000000000"))
    status = fake.objects[(RESTORE_KIND, "alpha")]["status"]
    assert status["phase"] == "Pending"
    assert "OverflowError: days=1000000000" in status["message"]
    assert [(t, r) for t, r, _ in fake.events] == [("Warning", "OperatorError")]


async def test_api_failures_keep_their_own_retries() -> None:
    fake = _Objects(_body(KIND, {}))
    retried = await _fail_in_a_pass(fake, KIND, ConflictError("409"))
    assert retried.delay == CONFLICT_RETRY_SECONDS
    with pytest.raises(kopf.PermanentError):
        async with pass_guard(fake.state(), kind=KIND, namespace="trading", name="alpha"):
            raise InvalidNameError("name '../x' is not a Kubernetes object name")
    assert fake.status_writes == []
    assert fake.events == []


async def test_what_kopf_keeps_of_a_failure_is_short() -> None:
    """kopf stores a retried handler's message in an annotation: never an error's whole text."""
    fake = _Objects(_body(KIND, {}))
    retried = await _fail_in_a_pass(fake, KIND, KubeError("x" * 100_000))
    assert len(str(retried)) <= KOPF_MESSAGE_LENGTH
    assert brief("short") == "short"
