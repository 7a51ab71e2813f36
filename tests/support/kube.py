"""Helpers for tests against a real Kubernetes API server (tests/cluster).

Waiting is polling with a deadline: every wait names what it waits for and,
on timeout, says what it saw last, so a red test explains itself.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from lightkube import ApiError, Client, KubeConfig
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ServiceAccount

from traderbot_devtools import LocalCluster

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0


def eventually(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.2,
) -> T:
    """Call ``probe`` until it returns something truthy; return that.

    Exceptions from the probe count as "not yet" until the deadline, then the
    last one is reported.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as error:  # noqa: BLE001 - reported below if it persists
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"
            )
        time.sleep(interval)


def delete_if_present(
    kube: Client, kind: type[Any], name: str, *, namespace: str | None = None
) -> None:
    """Delete an object for a test's cleanup; one that is already gone is fine."""
    try:
        kube.delete(kind, name, namespace=namespace)
    except ApiError as error:
        if error.status.code != 404:
            raise


def client_for(kubeconfig: Path, *, field_manager: str = "traderbot-tests") -> Client:
    """A synchronous lightkube client (tests only; the operator is async)."""
    return Client(config=KubeConfig.from_file(str(kubeconfig)), field_manager=field_manager)


def serviceaccount_kubeconfig(
    admin: Client,
    *,
    admin_kubeconfig: Path,
    namespace: str,
    name: str,
    path: Path,
    expiration_seconds: int = 3600,
) -> Path:
    """Write a kubeconfig that authenticates as ServiceAccount ``namespace/name``.

    Works on any cluster: the token comes from the TokenRequest API and the
    cluster entry (server, CA) is copied from the admin kubeconfig.
    """
    token = admin.create(
        ServiceAccount.Token(
            metadata=ObjectMeta(name=name),
            spec=TokenRequestSpec(audiences=[], expirationSeconds=expiration_seconds),
        ),
        name=name,
        namespace=namespace,
    )
    assert token.status is not None
    config: dict[str, Any] = yaml.safe_load(admin_kubeconfig.read_text())
    current = config.get("current-context")
    context = next(c for c in config["contexts"] if c["name"] == current)["context"]
    cluster = dict(
        next(c for c in config["clusters"] if c["name"] == context["cluster"])["cluster"]
    )
    ca_file = cluster.pop("certificate-authority", None)
    if ca_file:  # a relative path would break once the file moves
        ca_path = (admin_kubeconfig.parent / ca_file).resolve()
        cluster["certificate-authority-data"] = base64.b64encode(ca_path.read_bytes()).decode()
    user = f"system:serviceaccount:{namespace}:{name}"
    minted = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token.status.token}}],
        "contexts": [{"name": user, "context": {"cluster": "cluster", "user": user}}],
        "current-context": user,
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(minted))
    return path


@dataclass
class ClusterUnderTest:
    """The cluster the tier runs against; ``local`` is None for an existing one."""

    kubeconfig: Path
    local: LocalCluster | None
    workdir: Path

    def serviceaccount_kubeconfig(self, admin: Client, namespace: str, name: str) -> Path:
        path = self.workdir / f"sa-{namespace}-{name}-{secrets.token_hex(3)}.kubeconfig"
        return serviceaccount_kubeconfig(
            admin, admin_kubeconfig=self.kubeconfig, namespace=namespace, name=name, path=path
        )
