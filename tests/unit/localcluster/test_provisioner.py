"""The harness's volume provisioner decides from claims, volumes and classes alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traderbot_devtools.provisioner import (
    PROVISIONED_BY,
    PROVISIONER,
    SELECTED_NODE,
    Provision,
    Reclaim,
    plan,
)

ROOT = Path("/work/.cluster/node/volumes")
NODE = "traderbot-node"


def storage_class(
    name: str = "standard",
    *,
    provisioner: str = PROVISIONER,
    reclaim: str = "Delete",
    binding: str = "Immediate",
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "provisioner": provisioner,
        "reclaimPolicy": reclaim,
        "volumeBindingMode": binding,
    }


def claim(
    name: str = "data-db-0",
    *,
    uid: str = "1234",
    storage_class_name: str | None = "standard",
    phase: str = "Pending",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "trading",
            "uid": uid,
            "annotations": annotations or {},
        },
        "spec": {
            "storageClassName": storage_class_name,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            **spec,
        },
        "status": {"phase": phase},
    }


def volume(
    name: str, *, phase: str, reclaim: str = "Delete", ours: bool = True, path: Path | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "annotations": {PROVISIONED_BY: PROVISIONER if ours else "someone.else/hostpath"},
        },
        "spec": {
            "persistentVolumeReclaimPolicy": reclaim,
            "hostPath": {"path": str(path or ROOT / name)},
        },
        "status": {"phase": phase},
    }


def test_a_pending_claim_of_our_class_gets_a_bound_volume_pinned_to_the_node() -> None:
    actions = plan(claims=[claim()], volumes=[], classes=[storage_class()], root=ROOT, node=NODE)
    assert len(actions) == 1
    action = actions[0]
    assert isinstance(action, Provision)
    assert action.folder == ROOT / "pvc-1234"
    spec = action.volume["spec"]
    assert action.volume["metadata"]["name"] == "pvc-1234"
    assert action.volume["metadata"]["annotations"] == {PROVISIONED_BY: PROVISIONER}
    assert spec["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": "trading",
        "name": "data-db-0",
        "uid": "1234",
    }
    assert spec["capacity"] == {"storage": "1Gi"}
    assert spec["hostPath"] == {"path": str(ROOT / "pvc-1234"), "type": "Directory"}
    assert spec["storageClassName"] == "standard"
    assert spec["persistentVolumeReclaimPolicy"] == "Delete"
    terms = spec["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == [NODE]


def test_the_volume_takes_the_class_reclaim_policy() -> None:
    actions = plan(
        claims=[claim()],
        volumes=[],
        classes=[storage_class(reclaim="Retain")],
        root=ROOT,
        node=NODE,
    )
    assert isinstance(actions[0], Provision)
    assert actions[0].volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_claims_of_other_classes_bound_or_being_deleted_are_left_alone() -> None:
    claims = [
        claim("other", uid="1", storage_class_name="fast"),
        claim("unclassed", uid="2", storage_class_name=None),
        claim("bound", uid="3", phase="Bound"),
        claim("named", uid="4", volumeName="pv-by-hand"),
        claim("selected", uid="5", selector={"matchLabels": {"a": "b"}}),
    ]
    classes = [storage_class(), storage_class("fast", provisioner="kubernetes.io/host-path")]
    assert plan(claims=claims, volumes=[], classes=classes, root=ROOT, node=NODE) == []


def test_an_existing_volume_for_the_claim_is_not_made_twice() -> None:
    existing = [volume("pvc-1234", phase="Available")]
    assert (
        plan(claims=[claim()], volumes=existing, classes=[storage_class()], root=ROOT, node=NODE)
        == []
    )


def test_wait_for_first_consumer_provisions_once_the_scheduler_picked_our_node() -> None:
    classes = [storage_class(binding="WaitForFirstConsumer")]
    waiting = plan(claims=[claim()], volumes=[], classes=classes, root=ROOT, node=NODE)
    picked = plan(
        claims=[claim(annotations={SELECTED_NODE: NODE})],
        volumes=[],
        classes=classes,
        root=ROOT,
        node=NODE,
    )
    assert waiting == []
    assert len(picked) == 1


def test_released_delete_volumes_lose_their_folder_retain_ones_keep_it() -> None:
    volumes = [
        volume("pvc-a", phase="Released"),
        volume("pvc-b", phase="Released", reclaim="Retain"),
        volume("pvc-c", phase="Bound"),
        volume("pvc-d", phase="Released", ours=False),
    ]
    actions = plan(claims=[], volumes=volumes, classes=[], root=ROOT, node=NODE)
    assert actions == [Reclaim(folder=ROOT / "pvc-a", name="pvc-a")]


def test_a_volume_whose_path_is_outside_the_root_keeps_its_folder() -> None:
    volumes = [volume("pvc-a", phase="Released", path=Path("/var/lib/data"))]
    actions = plan(claims=[], volumes=volumes, classes=[], root=ROOT, node=NODE)
    assert actions == [Reclaim(folder=None, name="pvc-a")]
