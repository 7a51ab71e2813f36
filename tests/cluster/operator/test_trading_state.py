"""The trading state on a real API server: a bot whose API cannot be read still converges.

kwok's API pods are fake (Ready, serving nothing), and the operator runs on the
host, where ``<bot>-api.<ns>.svc`` does not resolve: every read fails, which is
what these tests need. The reads against a real trader-api are in
tests/integration/api/test_operator_risk_read.py.
"""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Secret

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_operator import (
    _bot,
    _conditions,
    _create_bot,
    _get,
    _patch_spec,
    _wait_phase,
    kubectl_get_tb,
)
from support.kube import ClusterUnderTest, eventually
from traderbot_operator import bot_api, metrics
from traderbot_operator.kube import TraderBotResource
from traderbot_operator.trading import ReadTarget, TradingRead

HANG_SECONDS = 60.0


def _trading_condition(kube: Client, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = _conditions(_bot(kube, namespace, name)).get("TradingHalted") or {}
    return found


def test_a_bot_whose_api_cannot_be_read_is_ready_with_trading_halted_unknown(
    kube: Client, namespace: str, operator: OperatorRunner, cluster: ClusterUnderTest
) -> None:
    _create_bot(kube, namespace, "unread")
    _wait_phase(kube, namespace, "unread", "Ready")
    condition = eventually(
        lambda: (
            (c := _trading_condition(kube, namespace, "unread")).get("reason") == "ReadFailed" and c
        ),
        what="TradingHalted ReadFailed",
        timeout=30,
    )
    assert condition["status"] == "Unknown"
    # The message says what was read and why it failed, for an SRE to act on.
    assert f"unread-api.{namespace}.svc:3000/api/v1/risk" in condition["message"]
    bot = _bot(kube, namespace, "unread")
    assert bot["status"]["phase"] == "Ready"
    assert _conditions(bot)["Ready"]["status"] == "True"
    assert bot["status"]["trading"]["error"] in condition["message"]
    assert kubectl_get_tb(cluster, namespace, "unread")[:2] == ["unread", "Ready"]

    # The read-only key: generated, handed to the pods, and what the operator reads with.
    secret = _get(kube, Secret, "unread-api-read-key", namespace)
    key = base64.b64decode(secret["data"]["read-api-key"]).decode()
    [container] = _get(kube, Deployment, "unread-api", namespace)["spec"]["template"]["spec"][
        "containers"
    ]
    [env] = [e for e in container["env"] if e["name"] == "READ_API_KEY"]
    assert env["valueFrom"]["secretKeyRef"] == {
        "name": "unread-api-read-key",
        "key": "read-api-key",
    }
    assert operator.state.trading.where((namespace, "unread")) == ReadTarget(
        url=f"http://unread-api.{namespace}.svc:3000", key=key
    )
    labels = {"namespace": namespace, "bot": "unread"}
    assert metrics.REGISTRY.get_sample_value("traderbot_operator_trading_read_ok", labels) == 0

    # Gone with the bot: no series is left behind.
    kube.delete(TraderBotResource, "unread", namespace=namespace)
    eventually(
        lambda: (
            metrics.REGISTRY.get_sample_value("traderbot_operator_trading_read_ok", labels) is None
        ),
        what="the bot's trading series dropped",
        timeout=30,
    )


def test_a_read_that_hangs_delays_no_reconcile(
    kube: Client, namespace: str, operator: OperatorRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bot's API that accepts and never answers holds up its read, and nothing else."""
    started: list[str] = []
    finished: list[str] = []

    async def hanging_read(
        http: httpx.AsyncClient, *, target: ReadTarget, within: float
    ) -> TradingRead:
        started.append(target.url)
        await asyncio.sleep(HANG_SECONDS)  # far past any timeout: a fake of a stuck API
        finished.append(target.url)
        return TradingRead(at=datetime.now(UTC), error="hung")

    monkeypatch.setattr(bot_api, "read_risk", hanging_read)
    _create_bot(kube, namespace, "stuck")
    _wait_phase(kube, namespace, "stuck", "Ready")
    eventually(lambda: started, what="a read of the bot started", timeout=30)

    # While the read hangs, a spec change is applied and reported as fast as ever.
    changed = time.monotonic()
    _patch_spec(kube, namespace, "stuck", {"replicas": 2})
    eventually(
        lambda: _get(kube, Deployment, "stuck-api", namespace)["spec"]["replicas"] == 2,
        what="the API Deployment scaled to 2",
        timeout=15,
    )
    bot = eventually(
        lambda: (b := _bot(kube, namespace, "stuck"))["status"].get("ready") == "2/2" and b,
        what="status ready 2/2",
        timeout=30,
    )
    assert time.monotonic() - changed < HANG_SECONDS / 2
    assert not finished, "the read was expected to still hang"
    assert bot["status"]["phase"] == "Ready"
    condition = _conditions(bot)["TradingHalted"]
    assert (condition["status"], condition["reason"]) == ("Unknown", "NotReadYet")
    # One read at a time per bot: the hanging one is not joined by another.
    assert started == [f"http://stuck-api.{namespace}.svc:3000"]
