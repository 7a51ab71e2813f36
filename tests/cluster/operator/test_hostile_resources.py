"""Hostile custom resources next to a healthy bot (issue 14: treat every CRD field as hostile).

Every leaf of the TraderBot spec schema gets hostile values of every kind (wrong
types, out-of-range numbers, names that climb out of the namespace, huge and
control-character strings); TraderBotBackups and TraderBotRestores get the same
for their fields. Each one is either refused by the API server with a reason, or
accepted and reported by the operator in its status. Throughout, the healthy bot
beside them keeps the same children (same uids) and the same Secret data, and the
operator stays healthy: it still converges a change of that bot afterwards.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client
from lightkube.resources.core_v1 import Secret

from cluster.operator.runner import OperatorRunner
from cluster.operator.test_operator import (
    _bot,
    _children,
    _create_bot,
    _get,
    _patch_spec,
    _wait_phase,
)
from support.kube import eventually
from traderbot_operator.kube import (
    TraderBotBackupResource,
    TraderBotResource,
    TraderBotRestoreResource,
)

ROOT = Path(__file__).resolve().parents[3]
HEALTHY = "steady"

HOSTILE: dict[str, list[Any]] = {
    "string": [
        "",
        " ",
        "../../kube-system/secrets/x",
        f"{HEALTHY}-db-credentials",
        "A" * 5000,
        "\u0000nul",
        "$(id);rm -rf /",
        "Ωmega",
        7,
        None,
        {"a": 1},
    ],
    "integer": [-1, 0, 2**31, 2**63, 1.5, "1", None, True, []],
    "number": [-1, 0, 1e300, -1e300, "NaN", None, {}],
    "boolean": ["true", 1, None, "yes"],
    "object": ["x", [], 1, None, {"unknown": {"deep": [1, 2, 3]}}],
    "array": [{}, "x", [None], [{"x": 1}] * 300],
}


def _leaves(schema: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        yield path, "object"
        for key, child in schema["properties"].items():
            yield from _leaves(child, (*path, key))
    elif kind is not None:
        yield path, kind


def _spec_schema(file: str) -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / file).read_text())
    spec: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    return spec


def _with(path: tuple[str, ...], value: Any, base: dict[str, Any]) -> dict[str, Any]:
    spec = dict(base)
    node = spec
    for key in path[:-1]:
        node[key] = dict(node.get(key) or {})
        node = node[key]
    node[path[-1]] = value
    return spec


def _cases(file: str, base: dict[str, Any]) -> list[dict[str, Any]]:
    cases = []
    for path, kind in _leaves(_spec_schema(file), ()):
        if not path:
            continue
        for value in HOSTILE.get(kind, []):
            cases.append(_with(path, value, base))
    return cases


def _refusal(kube: Client, resource: Any, namespace: str, body: dict[str, Any]) -> str | None:
    """Create; return the API server's reason when it refused, None when it accepted."""
    try:
        kube.create(resource.from_dict(body), namespace=namespace)
    except ApiError as refused:
        status = refused.status
    else:
        return None
    assert status.code in {400, 422}, status  # a clear refusal, never a server error
    assert status.message, status
    return status.message


def _snapshot(kube: Client, namespace: str) -> tuple[dict[str, str], dict[str, Any]]:
    children = {
        f"{kind}/{obj['metadata']['name']}": obj["metadata"]["uid"]
        for kind, objs in _children(kube, namespace, HEALTHY).items()
        for obj in objs
    }
    secrets = {
        name.split("/", 1)[1]: _get(kube, Secret, name.split("/", 1)[1], namespace).get("data")
        for name in children
        if name.startswith("Secret/")
    }
    return children, secrets


@pytest.mark.timeout(900)
def test_hostile_resources_are_refused_or_reported_and_never_harm_a_healthy_bot(
    kube: Client, namespace: str, operator: OperatorRunner
) -> None:
    _create_bot(kube, namespace, HEALTHY)
    _wait_phase(kube, namespace, HEALTHY, "Ready")
    before = _snapshot(kube, namespace)
    assert any(name.startswith("Secret/") for name in before[0])

    accepted: list[tuple[Any, str]] = []
    refused = 0
    counter = itertools.count()
    kinds = [
        (TraderBotResource, "TraderBot", "traderbot.dev_traderbots.yaml", {}),
        (
            TraderBotBackupResource,
            "TraderBotBackup",
            "traderbot.dev_traderbotbackups.yaml",
            {"botName": "nobody"},
        ),
        (
            TraderBotRestoreResource,
            "TraderBotRestore",
            "traderbot.dev_traderbotrestores.yaml",
            {"botName": "nobody", "backupName": "none"},
        ),
    ]
    for resource, kind, file, base in kinds:
        for spec in _cases(file, base):
            name = f"hostile-{next(counter)}"
            body = {
                "apiVersion": "traderbot.dev/v1alpha1",
                "kind": kind,
                "metadata": {"name": name},
                "spec": spec,
            }
            if _refusal(kube, resource, namespace, body) is not None:
                refused += 1
            else:
                accepted.append((resource, name))
    assert refused > 200, refused  # the schema refuses most of it at the door

    def reported() -> bool:
        for resource, name in accepted:
            status = _get(kube, resource, name, namespace).get("status") or {}
            if not status.get("phase"):
                return False
            if status["phase"] == "Failed":
                assert status.get("message") or status.get("error") or status.get("conditions")
        return True

    eventually(reported, what=f"a phase on each of {len(accepted)} accepted", timeout=300)
    assert _snapshot(kube, namespace) == before

    for resource, name in accepted:
        kube.delete(resource, name, namespace=namespace)
    # Still healthy: a change of the healthy bot converges as before.
    _patch_spec(kube, namespace, HEALTHY, {"api": {"logLevel": "debug"}})

    def converged() -> bool:
        found = _bot(kube, namespace, HEALTHY)
        status = found.get("status") or {}
        return bool(
            status.get("observedGeneration") == found["metadata"]["generation"]
            and status.get("phase") == "Ready"
        )

    eventually(converged, what=f"{HEALTHY} converged after the storm", timeout=120)
    children, secrets = _snapshot(kube, namespace)
    assert secrets == before[1]
    assert set(children) == set(before[0])
