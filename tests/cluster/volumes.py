"""PersistentVolumes for the bots of cluster tests (the session cluster has no provisioner)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.resources.core_v1 import PersistentVolume

from support.kube import delete_if_present

# Larger than any claim a bot makes, so each volume can bind any of them.
PV_SIZE = "100Gi"
# A bot claims three (database, Redis, backups); one to spare.
PVS_PER_BOT = 4


@contextmanager
def host_path_volumes(
    kube: Client, names: Sequence[str], *, labels: Mapping[str, str] | None = None
) -> Iterator[list[str]]:
    """Create unclassed ReadWriteOnce volumes named ``names``; delete them on exit.

    NB: kwok never mounts anything, so the hostPath is never touched.
    """
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
