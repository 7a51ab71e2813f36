"""The traderbot-operator command line and the credentials both API clients share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from traderbot_operator.__main__ import parse_args, run
from traderbot_operator.kube import load_credentials


def test_watches_every_namespace_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADERBOT_NAMESPACES", raising=False)
    args = parse_args([])
    assert args.namespace == []
    assert (args.metrics_port, args.liveness_port, args.log_format) == (9090, 8080, "json")


def test_namespaces_come_from_flags_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADERBOT_NAMESPACES", raising=False)
    assert parse_args(["-n", "trading", "-n", "paper"]).namespace == ["trading", "paper"]
    monkeypatch.setenv("TRADERBOT_NAMESPACES", "a,b")
    assert parse_args([]).namespace == ["a", "b"]


def test_one_namespace_and_all_namespaces_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        parse_args(["-n", "trading", "--all-namespaces"])


def test_credentials_are_read_from_a_kubeconfig_with_paths_made_absolute(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not checked here")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"},
            }
        ],
        "users": [{"name": "u", "user": {"token": "test-token-not-a-secret"}}],
        "contexts": [
            {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "trading"}}
        ],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    found = load_credentials(kubeconfig=str(path))
    assert found.server == "https://127.0.0.1:6443"
    assert found.ca_path == str(tmp_path / "ca.crt")
    assert found.token == "test-token-not-a-secret"
    assert found.namespace == "trading"


async def test_metrics_and_liveness_listen_on_the_listen_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    async def fake_operator(**kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(kopf, "operator", fake_operator)
    await run(parse_args(["--listen-address", "127.0.0.1", "--liveness-port", "18080"]))
    assert seen["liveness_endpoint"] == "http://127.0.0.1:18080/healthz"
    assert seen["memo"].metrics_address == "127.0.0.1"
    assert seen["memo"].metrics_port == 9090
