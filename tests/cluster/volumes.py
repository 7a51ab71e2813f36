"""PersistentVolumes for the bots of cluster tests.

The local session cluster runs kube-controller-manager's host-path provisioner
with a default StorageClass, so every claim gets a volume of its own, made for
it and bound to it alone. A cluster given with ``--use-existing-cluster`` usually
has one too (kind's ``standard``); only a cluster without a default class gets a
pool of hand-made unclassed volumes.

NB: a pool is shared by every namespace: any pending unclassed claim, of any
namespace, may bind any of its volumes. A test that leaves pending claims behind
(hostile bots whose claims never bind) then takes the volumes of the next test
while its namespace is being deleted, and that test's database waits forever;
a provisioner binds each volume to one claim and cannot be robbed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import PersistentVolume
from lightkube.resources.storage_v1 import StorageClass

from support.kube import delete_if_present

# Larger than any claim a bot makes, so each volume can bind any of them.
PV_SIZE = "100Gi"
# A bot claims three (database, Redis, backups); one to spare.
PVS_PER_BOT = 4
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def has_default_storage_class(kube: Client) -> bool:
    """Whether claims without a class get one (and so a provisioner's volume)."""
    for storage_class in kube.list(StorageClass):
        annotations = (storage_class.metadata and storage_class.metadata.annotations) or {}
        if annotations.get(DEFAULT_CLASS_ANNOTATION) == "true":
            return True
    return False


@contextmanager
def host_path_volumes(
    kube: Client, names: Sequence[str], *, labels: Mapping[str, str] | None = None
) -> Iterator[list[str]]:
    """Make sure claims can bind: yield the volumes made for them, deleted on exit.

    With a default StorageClass nothing is made (its provisioner serves each
    claim) and the list is empty; without one, unclassed ReadWriteOnce volumes
    named ``names`` are made (see the module's note on what a pool risks).
    NB: kwok never mounts anything, so a hostPath is never touched.
    """
    if has_default_storage_class(kube):
        yield []
        return
    for name in names:
        kube.create(
            from_dict(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {"name": name, "labels": dict(labels or {})},
                    "spec": {
                        "capacity": {"storage": PV_SIZE},
                        "accessModes": ["ReadWriteOnce"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "hostPath": {"path": f"/nonexistent/{name}"},
                    },
                }
            )
        )
    try:
        yield list(names)
    finally:
        for name in names:
            delete_if_present(kube, PersistentVolume, name)
