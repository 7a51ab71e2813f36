"""An Event the API will not take never fails the reconcile it describes."""

from __future__ import annotations

import socket

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.config.models import Cluster, User

from traderbot_operator.kube import Kube


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_event_the_api_cannot_take_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = KubeConfig.from_one(
        cluster=Cluster(server=f"http://127.0.0.1:{_closed_port()}"),
        user=User(),  # no credentials: nothing listens on that port
        namespace="default",
    )
    kube = Kube(AsyncClient(config=config))
    body = {"metadata": {"name": "alpha", "namespace": "default", "uid": "u-1"}}
    try:
        await kube.event(bot=body, type_="Warning", reason="BackupFailed", message="disk full")
    finally:
        await kube.close()
    assert kube.calls["create_event"] == 1
    assert "could not record Event BackupFailed for alpha" in caplog.text
