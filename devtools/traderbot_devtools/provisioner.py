"""A host-path volume provisioner for the real node: the test harness's stand-in for a CSI driver.

kube-controller-manager's in-tree host-path provisioner makes every folder
mode 0750 owned by root, and kubelet never applies ``fsGroup`` to hostPath
volumes, so a database pod running as a non-root user (PostgreSQL's UID 70)
could not write its own volume. This one, run by the harness as a process of
its own, provisions for the StorageClass whose provisioner is
``traderbot.dev/hostpath``:

* a claim of that class gets a folder ``<root>/<pv-name>`` made mode 0777 (as
  rancher's local-path-provisioner does) and a hostPath PersistentVolume bound
  to it through ``claimRef``, pinned to the real node;
* a released volume whose reclaim policy is Delete loses its folder, then its
  PersistentVolume; Retain keeps both (the folder goes with the cluster).

It polls the API once a second: the same list-compare-act shape as an
external provisioner, without informers (a test cluster holds a few claims).

    python -m traderbot_devtools.provisioner --kubeconfig K --root DIR --node NAME
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http
import http.client
import json
import shutil
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

PROVISIONER = "traderbot.dev/hostpath"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
FOLDER_MODE = 0o777


@dataclass(frozen=True)
class Provision:
    """Make ``folder`` and create ``volume`` (bound to its claim by claimRef)."""

    folder: Path
    volume: dict[str, Any]


@dataclass(frozen=True)
class Reclaim:
    """Remove ``folder``, then delete PersistentVolume ``name``."""

    folder: Path | None
    name: str


Action = Provision | Reclaim


def _ours(classes: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {name: sc for name, sc in classes.items() if sc.get("provisioner") == PROVISIONER}


def volume_name(claim: Mapping[str, Any]) -> str:
    """``pvc-<claim uid>``: deterministic, so a retried pass never makes two."""
    return f"pvc-{claim['metadata']['uid']}"


def build_volume(
    claim: Mapping[str, Any], storage_class: Mapping[str, Any], *, root: Path, node: str
) -> dict[str, Any]:
    """The PersistentVolume for ``claim``: its size, modes and class, pinned to ``node``."""
    meta = claim["metadata"]
    spec = claim["spec"]
    name = volume_name(claim)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy", "Delete"),
            "storageClassName": storage_class["metadata"]["name"],
            "hostPath": {"path": str(root / name), "type": "Directory"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [node],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def _wants_volume(claim: Mapping[str, Any], storage_class: Mapping[str, Any], *, node: str) -> bool:
    meta = claim["metadata"]
    spec = claim["spec"]
    if meta.get("deletionTimestamp") or spec.get("volumeName") or spec.get("selector"):
        return False
    if claim.get("status", {}).get("phase", "Pending") != "Pending":
        return False
    if storage_class.get("volumeBindingMode") == "WaitForFirstConsumer":
        return (meta.get("annotations") or {}).get(SELECTED_NODE) == node
    return True


def plan(
    *,
    claims: Sequence[Mapping[str, Any]],
    volumes: Sequence[Mapping[str, Any]],
    classes: Sequence[Mapping[str, Any]],
    root: Path,
    node: str,
) -> list[Action]:
    """Decide what to provision and what to reclaim (pure).

    NB: only volumes this provisioner annotated are ever reclaimed, and only
    folders directly under ``root``; a hand-made hostPath volume is never touched.
    """
    ours = _ours({sc["metadata"]["name"]: sc for sc in classes})
    existing = {v["metadata"]["name"] for v in volumes}
    actions: list[Action] = []
    for claim in claims:
        storage_class = ours.get(claim["spec"].get("storageClassName") or "")
        if storage_class is None or volume_name(claim) in existing:
            continue
        if _wants_volume(claim, storage_class, node=node):
            manifest = build_volume(claim, storage_class, root=root, node=node)
            actions.append(Provision(folder=root / volume_name(claim), volume=manifest))
    for volume in volumes:
        meta = volume["metadata"]
        if (meta.get("annotations") or {}).get(PROVISIONED_BY) != PROVISIONER:
            continue
        if meta.get("deletionTimestamp"):
            continue
        released = volume.get("status", {}).get("phase") in {"Released", "Failed"}
        if not released or volume["spec"].get("persistentVolumeReclaimPolicy") != "Delete":
            continue
        path = Path(volume["spec"].get("hostPath", {}).get("path", ""))
        folder = path if path.parent == root else None
        actions.append(Reclaim(folder=folder, name=meta["name"]))
    return actions


# -- the process ------------------------------------------------------------------


class _Api:
    """Just enough HTTPS to list, create and delete with a client certificate."""

    def __init__(self, kubeconfig: Path) -> None:
        config = json.loads(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        host, port = cluster["server"].removeprefix("https://").rsplit(":", 1)
        self._host, self._port = host, int(port)
        self._context = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
        with tempfile.TemporaryDirectory() as folder:
            cert, key = Path(folder) / "c", Path(folder) / "k"
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            self._context.load_cert_chain(certfile=str(cert), keyfile=str(key))

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=10
        )
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Accept": "application/json", "Content-Type": "application/json"}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        return response.status, json.loads(raw) if raw else None

    def items(self, path: str) -> list[dict[str, Any]]:
        status, body = self.call("GET", path)
        if status != http.HTTPStatus.OK:
            raise RuntimeError(f"GET {path}: {status} {body}")
        items: list[dict[str, Any]] = body["items"]
        return items


def _say(message: str) -> None:
    print(message, flush=True)  # noqa: T201 - the harness logs our stdout


def apply(api: _Api, action: Action) -> None:
    """Carry out one action; a conflict means another pass did it already."""
    if isinstance(action, Provision):
        action.folder.mkdir(parents=True, exist_ok=True)
        action.folder.chmod(FOLDER_MODE)  # NB: mkdir's mode is cut by the umask
        status, body = api.call("POST", "/api/v1/persistentvolumes", action.volume)
        claim = action.volume["spec"]["claimRef"]
        if status not in {http.HTTPStatus.CREATED, http.HTTPStatus.CONFLICT}:
            _say(f"creating {action.volume['metadata']['name']} failed: {status} {body}")
            return
        _say(
            f"provisioned {action.volume['metadata']['name']} for "
            f"{claim['namespace']}/{claim['name']} in {action.folder}"
        )
    else:
        if action.folder is not None:
            shutil.rmtree(action.folder, ignore_errors=True)
        status, body = api.call("DELETE", f"/api/v1/persistentvolumes/{action.name}")
        if status not in {http.HTTPStatus.OK, http.HTTPStatus.ACCEPTED, http.HTTPStatus.NOT_FOUND}:
            _say(f"deleting {action.name} failed: {status} {body}")
            return
        _say(f"reclaimed {action.name} (folder {action.folder} removed)")


def run(*, kubeconfig: Path, root: Path, node: str, interval: float = 1.0) -> int:
    """Poll and act until SIGTERM."""
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    root.mkdir(parents=True, exist_ok=True)
    api = _Api(kubeconfig)
    _say(f"provisioning {PROVISIONER} volumes under {root} for node {node}")
    while not stopping:
        with contextlib.suppress(OSError, http.client.HTTPException, RuntimeError):
            actions = plan(
                claims=api.items("/api/v1/persistentvolumeclaims"),
                volumes=api.items("/api/v1/persistentvolumes"),
                classes=api.items("/apis/storage.k8s.io/v1/storageclasses"),
                root=root,
                node=node,
            )
            for action in actions:
                apply(api, action)
        time.sleep(interval)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True, help="folder of the volumes")
    parser.add_argument("--node", required=True, help="the node the volumes live on")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    return run(kubeconfig=args.kubeconfig, root=args.root, node=args.node, interval=args.interval)


if __name__ == "__main__":
    sys.exit(main())
