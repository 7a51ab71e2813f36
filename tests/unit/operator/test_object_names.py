"""Every spec field that names a Kubernetes object is refused unless it is a DNS-1123 name.

One rule for a class of hostile input (issue 14, class 8): such a name goes into a
URL path, and ``../../kube-system/secrets/x`` would otherwise leave the namespace.
The CRDs refuse it at admission, the models refuse it when a body predates the
pattern, and the client layer refuses it whatever the caller.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from lightkube import AsyncClient
from pydantic import BaseModel, ValidationError

from traderbot_operator.handlers.backups import converge_backup
from traderbot_operator.handlers.restores import converge_restore
from traderbot_operator.kube import InvalidNameError, Kube
from traderbot_operator.models import (
    API_VERSION,
    BACKUP_KIND,
    KIND,
    OBJECT_NAME_MAX_LENGTH,
    OBJECT_NAME_PATTERN,
    RESTORE_KIND,
    BackupRunSpec,
    RestoreRunSpec,
    TraderBotSpec,
)
from traderbot_operator.reconcile import ObjectKey
from unit.operator.fake_kube import FakeKube

ROOT = Path(__file__).resolve().parents[3]
CRDS = sorted((ROOT / "crds").glob("*.yaml"))

HOSTILE = [
    "../../kube-system/secrets/x",
    "..",
    "a/b",
    "a%2Fb",
    "A",
    "a b",
    "a?watch=true",
    "a#b",
    "-a",
    "a-",
    ".a",
    "a..b",
    "a\nb",
    "x" * (OBJECT_NAME_MAX_LENGTH + 1),
    "",
]
GOOD = ["a", "alpha-api-key", "db.credentials", "x" * 40]


def _names(schema: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    """Every string property that names an object: ``*Name``, or ``name`` inside a ``*Ref``."""
    found = []
    for key, child in (schema.get("properties") or {}).items():
        here = f"{path}.{key}"
        if child.get("type") == "string" and (
            key.endswith("Name") or (key == "name" and path.endswith("Ref"))
        ):
            found.append((here, child))
        found += _names(child, here)
    if "items" in schema:
        found += _names(schema["items"], f"{path}[]")
    return found


def _spec_name_fields() -> list[tuple[str, dict[str, Any]]]:
    fields = []
    for path in CRDS:
        crd = yaml.safe_load(path.read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        fields += _names(schema["properties"]["spec"], f"{crd['spec']['names']['kind']}.spec")
    return fields


def test_the_crds_have_the_name_fields_this_test_knows() -> None:
    assert sorted(path for path, _ in _spec_name_fields()) == [
        "TraderBot.spec.api.apiKeySecretRef.name",
        "TraderBot.spec.api.pod.priorityClassName",
        "TraderBot.spec.backup.pod.priorityClassName",
        "TraderBot.spec.backup.storage.storageClassName",
        "TraderBot.spec.database.pod.priorityClassName",
        "TraderBot.spec.database.storage.storageClassName",
        "TraderBot.spec.engine.exchange.credentialsSecretRef.name",
        "TraderBot.spec.redis.pod.priorityClassName",
        "TraderBot.spec.redis.storage.storageClassName",
        "TraderBotBackup.spec.botName",
        "TraderBotRestore.spec.backupName",
        "TraderBotRestore.spec.botName",
    ]


@pytest.mark.parametrize(("path", "field"), _spec_name_fields(), ids=lambda v: str(v)[:60])
def test_every_name_field_of_the_crds_has_the_object_name_pattern(
    path: str, field: dict[str, Any]
) -> None:
    assert field.get("pattern") == OBJECT_NAME_PATTERN, path
    assert field.get("minLength", 0) >= 1
    assert field.get("maxLength", 10**6) <= OBJECT_NAME_MAX_LENGTH, path


@pytest.mark.parametrize("name", HOSTILE)
def test_the_pattern_refuses_hostile_names(name: str) -> None:
    matched = re.fullmatch(OBJECT_NAME_PATTERN.strip("^$"), name)
    assert matched is None or len(name) > OBJECT_NAME_MAX_LENGTH


def _specs_naming(name: str) -> list[tuple[type[BaseModel], dict[str, Any]]]:
    return [
        (TraderBotSpec, {"api": {"apiKeySecretRef": {"name": name}}}),
        (TraderBotSpec, {"engine": {"exchange": {"credentialsSecretRef": {"name": name}}}}),
        (TraderBotSpec, {"database": {"storage": {"size": "1Gi", "storageClassName": name}}}),
        (BackupRunSpec, {"botName": name}),
        (RestoreRunSpec, {"botName": name, "backupName": "b"}),
        (RestoreRunSpec, {"botName": "a", "backupName": name}),
    ]


@pytest.mark.parametrize("name", HOSTILE)
def test_the_models_refuse_a_hostile_name_in_every_name_field(name: str) -> None:
    for model, spec in _specs_naming(name):
        with pytest.raises(ValidationError):
            model.model_validate(spec)


@pytest.mark.parametrize("name", GOOD)
def test_the_models_accept_object_names(name: str) -> None:
    for model, spec in _specs_naming(name):
        model.model_validate(spec)


class _Recorder:
    """A lightkube AsyncClient stand-in that records what would have been requested."""

    def __init__(self) -> None:
        self.requested: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        self.requested.append(("get", args, kwargs))
        raise AssertionError("a refused name must never be requested")

    async def patch(self, *args: Any, **kwargs: Any) -> Any:
        self.requested.append(("patch", args, kwargs))
        raise AssertionError("a refused name must never be requested")


@pytest.mark.parametrize("name", [n for n in HOSTILE if n])
async def test_the_client_refuses_a_hostile_name_before_any_request(name: str) -> None:
    recorder = _Recorder()
    kube = Kube(cast("AsyncClient", recorder))
    with pytest.raises(InvalidNameError, match="not a Kubernetes object name"):
        await kube.get(namespace="trading", key=("v1", "Secret", name))
    with pytest.raises(InvalidNameError):
        await kube.get(namespace=name, key=("v1", "Secret", "fine"))
    with pytest.raises(InvalidNameError):
        await kube.patch_status(namespace="trading", name=name, status={"phase": "Failed"})
    assert recorder.requested == []


class _OneRecord(FakeKube):
    """FakeKube holding one TraderBotBackup or TraderBotRestore body."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__()
        self.record = record
        self.reads: list[ObjectKey] = []

    async def get(self, *, namespace: str, key: ObjectKey) -> dict[str, Any] | None:
        self.reads.append(key)
        return copy.deepcopy(self.record) if key[2] == self.record["metadata"]["name"] else None

    async def get_bot(self, *, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append((API_VERSION, KIND, name))
        return None

    async def patch_status(
        self, *, namespace: str, name: str, status: Mapping[str, Any], **_: Any
    ) -> None:
        self.status_writes.append(dict(status))
        self.record["status"] = {**(self.record.get("status") or {}), **status}


def _record(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {
            "name": "hostile",
            "namespace": "trading",
            "uid": "u-1",
            "resourceVersion": "7",
        },
        "spec": spec,
    }


@pytest.mark.parametrize(
    ("kind", "spec", "field"),
    [
        (RESTORE_KIND, {"botName": "alpha", "backupName": "../../etc"}, "message"),
        (RESTORE_KIND, {"botName": "../kube-system/x", "backupName": "b"}, "message"),
        (BACKUP_KIND, {"botName": "../../other/traderbots/x"}, "error"),
    ],
)
async def test_a_record_that_names_outside_its_namespace_fails_with_a_reason_and_an_event(
    kind: str, spec: dict[str, Any], field: str
) -> None:
    """A body stored before the CRD had its pattern: Failed, said why, read nothing else."""
    fake = _OneRecord(_record(kind, spec))
    converge = converge_restore if kind == RESTORE_KIND else converge_backup
    phase = await converge(fake.state(), namespace="trading", name="hostile")
    assert phase == "Failed"
    assert fake.reads == [(API_VERSION, kind, "hostile")]  # the record itself, nothing more
    assert fake.record["status"]["phase"] == "Failed"
    assert "invalid spec" in fake.record["status"][field]
    assert "spec." in fake.record["status"][field]
    assert [(t, r) for t, r, _ in fake.events] == [("Warning", "InvalidSpec")]
    # The next pass (a retry, the timer) writes nothing and posts nothing again.
    again = await converge(fake.state(), namespace="trading", name="hostile")
    assert again == "Failed"
    assert len(fake.status_writes) == 1
    assert len(fake.events) == 1
