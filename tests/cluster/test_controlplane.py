"""The control plane the operator is tested on behaves like a real cluster.

Each test pins one behaviour the operator's own tests will rely on: if the
local control plane (or kwok's stages) broke it, these fail first.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from lightkube import ApiError, Client
from lightkube.core.dictmixin import DictMixin
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.batch_v1 import CronJob, Job
from lightkube.resources.core_v1 import (
    ConfigMap,
    Namespace,
    PersistentVolume,
    PersistentVolumeClaim,
    Pod,
    Secret,
    ServiceAccount,
)
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.resources.storage_v1 import StorageClass
from lightkube.types import CascadeType

from cluster.local_cli import process_alive, run_cli
from cluster.volumes import has_default_storage_class
from support.kube import ClusterUnderTest, client_for, eventually
from traderbot_devtools import Binaries, ClusterStartError, LocalCluster
from traderbot_devtools.binaries import KUBERNETES_VERSION, VERSION_TAG
from traderbot_devtools.localcluster import HOSTPATH_ROOT, STATE_FILE

REPO = Path(__file__).resolve().parents[2]
FAIL_LABEL = "traderbot.dev/kwok-fail"

R = TypeVar("R", bound=DictMixin)


def _load(kind: type[R], manifest: dict[str, Any]) -> R:
    """Build a typed lightkube object from a manifest written as data."""
    obj = kind.from_dict(manifest)
    assert isinstance(obj, kind)
    return obj


# -- manifests ----------------------------------------------------------------


def _pod_template(app: str, *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app, **(labels or {})}},
        "spec": {
            "containers": [{"name": "main", "image": "registry.invalid/traderbot/noop:1"}],
        },
    }


def _deployment(name: str, *, replicas: int) -> Deployment:
    return _load(
        Deployment,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": _pod_template(name),
            },
        },
    )


def _job_spec(app: str, *, fail: bool) -> dict[str, Any]:
    template = _pod_template(app, labels={FAIL_LABEL: "true"} if fail else None)
    template["spec"]["restartPolicy"] = "Never"
    return {"backoffLimit": 0, "template": template}


def _exists(probe: Any) -> bool:
    try:
        probe()
    except ApiError as error:
        if error.status.code == 404:
            return False
        raise
    return True


def _pod_ready(pod: Pod) -> bool:
    conditions = pod.status.conditions if pod.status and pod.status.conditions else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _job_condition(job: Job) -> str | None:
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.type in {"Complete", "Failed"} and condition.status == "True":
            return condition.type
    return None


def _local(cluster: ClusterUnderTest) -> LocalCluster:
    if cluster.local is None:
        pytest.skip("only meaningful for the local control plane")
    return cluster.local


# -- workloads ------------------------------------------------------------------


def test_deployment_pods_become_ready_on_the_fake_node(kube: Client, namespace: str) -> None:
    kube.create(_deployment("web", replicas=3), namespace=namespace)

    def ready() -> Deployment | None:
        deployment = kube.get(Deployment, "web", namespace=namespace)
        status = deployment.status
        return deployment if status and status.readyReplicas == 3 else None

    eventually(ready, what="Deployment web to have 3 ready replicas")

    replicasets = list(kube.list(ReplicaSet, namespace=namespace))
    assert len(replicasets) == 1
    owners = replicasets[0].metadata.ownerReferences if replicasets[0].metadata else None
    assert owners
    assert (owners[0].kind, owners[0].name) == ("Deployment", "web")

    pods = list(kube.list(Pod, namespace=namespace, labels={"app": "web"}))
    assert len(pods) == 3
    for pod in pods:
        assert pod.spec
        assert pod.spec.nodeName, "the scheduler bound the pod to a node"
        assert pod.status
        assert pod.status.phase == "Running"
        assert _pod_ready(pod)


def test_deleting_an_owner_garbage_collects_its_dependents(kube: Client, namespace: str) -> None:
    owner = kube.create(ConfigMap(metadata=ObjectMeta(name="owner")), namespace=namespace)
    assert owner.metadata
    assert owner.metadata.uid
    reference = OwnerReference(
        apiVersion="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    kube.create(
        Secret(metadata=ObjectMeta(name="dependent", ownerReferences=[reference])),
        namespace=namespace,
    )
    kube.delete(ConfigMap, "owner", namespace=namespace)
    eventually(
        lambda: not _exists(lambda: kube.get(Secret, "dependent", namespace=namespace)),
        what="the garbage collector to delete Secret dependent",
    )


def test_deleting_a_deployment_cascades_to_replicasets_and_pods(
    kube: Client, namespace: str
) -> None:
    kube.create(_deployment("api", replicas=2), namespace=namespace)
    eventually(
        lambda: len([p for p in kube.list(Pod, namespace=namespace) if _pod_ready(p)]) == 2,
        what="2 ready pods",
    )
    kube.delete(Deployment, "api", namespace=namespace, cascade=CascadeType.FOREGROUND)
    eventually(
        lambda: (
            not list(kube.list(ReplicaSet, namespace=namespace))
            and not list(kube.list(Pod, namespace=namespace))
            and not _exists(lambda: kube.get(Deployment, "api", namespace=namespace))
        ),
        what="Deployment api, its ReplicaSet and its Pods to be gone",
    )


def test_deleting_a_namespace_finishes(kube: Client) -> None:
    name = f"t-doomed-{secrets.token_hex(3)}"
    kube.create(Namespace(metadata=ObjectMeta(name=name)))
    eventually(lambda: kube.get(ServiceAccount, "default", namespace=name), what="default SA")
    kube.create(ConfigMap(metadata=ObjectMeta(name="leftover")), namespace=name)
    kube.create(_deployment("busy", replicas=2), namespace=name)
    eventually(
        lambda: len([p for p in kube.list(Pod, namespace=name) if _pod_ready(p)]) == 2,
        what="2 ready pods",
    )
    kube.delete(Namespace, name)
    eventually(
        lambda: not _exists(lambda: kube.get(Namespace, name)),
        what=f"Namespace {name} to finish terminating",
        timeout=120,
    )


def test_cronjob_makes_a_job_whose_pod_succeeds_or_fails_when_labelled(
    kube: Client, namespace: str
) -> None:
    for name, fail in (("tick", False), ("boom", True)):
        cronjob = _load(
            CronJob,
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {"name": name},
                "spec": {
                    "schedule": "* * * * *",
                    "concurrencyPolicy": "Forbid",
                    "jobTemplate": {"spec": _job_spec(name, fail=fail)},
                },
            },
        )
        kube.create(cronjob, namespace=namespace)

    def finished_job(cronjob: str) -> Job | None:
        for job in kube.list(Job, namespace=namespace):
            owners = job.metadata.ownerReferences if job.metadata else None
            if owners and owners[0].kind == "CronJob" and owners[0].name == cronjob:
                return job if _job_condition(job) else None
        return None

    # The schedule fires at the next minute boundary: up to 60 s away.
    tick = eventually(lambda: finished_job("tick"), what="a finished Job of tick", timeout=150)
    boom = eventually(lambda: finished_job("boom"), what="a finished Job of boom", timeout=60)
    assert _job_condition(tick) == "Complete"
    assert _job_condition(boom) == "Failed"
    phases = {
        pod.metadata.labels["app"]: pod.status.phase
        for pod in kube.list(Pod, namespace=namespace)
        if pod.metadata and pod.metadata.labels and pod.status
    }
    assert phases == {"tick": "Succeeded", "boom": "Failed"}
    assert kube.get(CronJob, "tick", namespace=namespace).status is not None


def test_job_pod_labelled_to_fail_fails_the_job(kube: Client, namespace: str) -> None:
    job = _load(
        Job,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "doomed"},
            "spec": _job_spec("doomed", fail=True),
        },
    )
    kube.create(job, namespace=namespace)

    def finished() -> Job | None:
        got = kube.get(Job, "doomed", namespace=namespace)
        return got if _job_condition(got) else None

    failed = eventually(finished, what="Job doomed to finish")
    assert _job_condition(failed) == "Failed"
    assert failed.status
    assert (failed.status.failed, failed.status.succeeded) == (1, None)


# -- API server semantics ---------------------------------------------------------


def test_crd_schema_and_cel_rule_reject_bad_objects_with_the_servers_message(
    kube: Client, namespace: str
) -> None:
    suffix = secrets.token_hex(3)
    group, plural, kind = "test.traderbot.dev", f"widgets{suffix}", f"Widget{suffix}"
    crd = _load(
        CustomResourceDefinition,
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": plural[:-1] + "x", "kind": kind},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "required": ["replicas"],
                                        "properties": {
                                            "replicas": {"type": "integer", "minimum": 0},
                                            "minReplicas": {"type": "integer", "minimum": 0},
                                        },
                                        "x-kubernetes-validations": [
                                            {
                                                "rule": "!has(self.minReplicas)"
                                                " || self.minReplicas <= self.replicas",
                                                "message": "minReplicas must not exceed replicas",
                                            }
                                        ],
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        },
    )
    kube.create(crd)
    try:

        def established() -> bool:
            got = kube.get(CustomResourceDefinition, f"{plural}.{group}")
            conditions = got.status.conditions if got.status and got.status.conditions else []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        eventually(established, what="the CRD to be Established")
        widget = create_namespaced_resource(group, "v1", kind, plural)

        def make(name: str, spec: dict[str, Any]) -> Any:
            return widget(metadata=ObjectMeta(name=name, namespace=namespace), spec=spec)

        eventually(
            lambda: kube.create(make("good", {"replicas": 2, "minReplicas": 1})),
            what="a valid object to be accepted",
        )
        with pytest.raises(ApiError) as cel:
            kube.create(make("bad-rule", {"replicas": 1, "minReplicas": 3}))
        assert cel.value.status.code == 422
        assert "minReplicas must not exceed replicas" in str(cel.value.status.message)

        with pytest.raises(ApiError) as schema:
            kube.create(make("bad-type", {"replicas": "three"}))
        assert schema.value.status.code == 422
        assert "spec.replicas" in str(schema.value.status.message)
        assert "integer" in str(schema.value.status.message)
    finally:
        kube.delete(CustomResourceDefinition, f"{plural}.{group}")


def test_serviceaccount_with_a_namespaced_role_is_refused_outside_its_grant(
    kube: Client, namespace: str, cluster: ClusterUnderTest
) -> None:
    kube.create(ServiceAccount(metadata=ObjectMeta(name="reader")), namespace=namespace)
    kube.create(
        _load(
            Role,
            {
                "metadata": {"name": "configmap-reader"},
                "rules": [
                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
                ],
            },
        ),
        namespace=namespace,
    )
    kube.create(
        _load(
            RoleBinding,
            {
                "metadata": {"name": "reader"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "configmap-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        ),
        namespace=namespace,
    )
    kube.create(ConfigMap(metadata=ObjectMeta(name="visible")), namespace=namespace)
    reader = client_for(cluster.serviceaccount_kubeconfig(kube, namespace, "reader"))

    names = eventually(
        lambda: [
            c.metadata.name for c in reader.list(ConfigMap, namespace=namespace) if c.metadata
        ],
        what="the RoleBinding to take effect",
    )
    assert "visible" in names

    def refused(call: Any) -> int | None:
        with pytest.raises(ApiError) as error:
            call()
        return error.value.status.code

    assert refused(lambda: list(reader.list(Secret, namespace=namespace))) == 403
    assert refused(lambda: list(reader.list(ConfigMap, namespace="kube-system"))) == 403
    assert (
        refused(
            lambda: reader.create(ConfigMap(metadata=ObjectMeta(name="x")), namespace=namespace)
        )
        == 403
    )


def test_a_minted_user_certificate_carries_its_groups_into_rbac(
    kube: Client, namespace: str, cluster: ClusterUnderTest
) -> None:
    local = _local(cluster)
    kube.create(
        _load(
            RoleBinding,
            {
                "metadata": {"name": "devs-view"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "view",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}
                ],
            },
        ),
        namespace=namespace,
    )
    alice = client_for(local.kubeconfig_for_user("alice", groups=["devs"]))
    eventually(
        lambda: list(alice.list(Pod, namespace=namespace)) == [],
        what="the view RoleBinding of group devs to take effect for alice",
    )
    with pytest.raises(ApiError) as error:
        list(alice.list(Pod, namespace="kube-system"))
    assert error.value.status.code == 403
    assert 'User "alice"' in str(error.value.status.message)


def test_version_reports_the_pinned_release(cluster: ClusterUnderTest) -> None:
    local = _local(cluster)
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and local.binaries.kube_apiserver.parent == Path(assets):
        pytest.skip("kube-apiserver comes from KUBEBUILDER_ASSETS, not our pinned build")
    status, body = local.access.api().request("GET", "/version")
    assert status == 200
    assert body["gitVersion"] == KUBERNETES_VERSION
    assert (body["major"], body["minor"]) == ("1", KUBERNETES_VERSION.split(".")[1])


# -- storage -----------------------------------------------------------------------------

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def _claim(name: str) -> PersistentVolumeClaim:
    return _load(
        PersistentVolumeClaim,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )


def _bound_volume(kube: Client, claim: str, namespace: str) -> PersistentVolume | None:
    got = kube.get(PersistentVolumeClaim, claim, namespace=namespace)
    if not (got.status and got.status.phase == "Bound" and got.spec and got.spec.volumeName):
        return None
    return kube.get(PersistentVolume, got.spec.volumeName)


def _host_folder(volume: PersistentVolume) -> Path:
    assert volume.spec is not None
    assert volume.spec.hostPath is not None
    return Path(volume.spec.hostPath.path)


def test_the_test_cluster_gives_claims_without_a_class_the_provisioners_default(
    kube: Client, cluster: ClusterUnderTest
) -> None:
    """Each claim gets a volume made for it alone (cluster/volumes.py says why)."""
    _local(cluster)
    defaults = [
        sc.metadata.name
        for sc in kube.list(StorageClass)
        if sc.metadata and (sc.metadata.annotations or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
    ]
    assert defaults == ["standard"]
    assert has_default_storage_class(kube)


def test_the_storage_provisioner_binds_claims_and_removes_their_folders(
    cluster: ClusterUnderTest,
) -> None:
    _local(cluster)  # starts a second local cluster: meaningless against an existing one
    with LocalCluster(storage_provisioner=True) as local:
        kube = client_for(local.kubeconfig)
        for name in ("kept", "released"):
            kube.create(_claim(name), namespace="default")
        volumes = {
            name: eventually(
                partial(_bound_volume, kube, name, "default"),
                what=f"claim {name} Bound to a provisioned volume",
            )
            for name in ("kept", "released")
        }
        folders = {name: _host_folder(volume) for name, volume in volumes.items()}
        for name, volume in volumes.items():
            assert volume.spec is not None
            assert volume.spec.storageClassName == "standard"
            assert volume.spec.persistentVolumeReclaimPolicy == "Delete"
            assert folders[name].parent == HOSTPATH_ROOT
            assert folders[name].is_dir()

        kube.delete(PersistentVolumeClaim, "released", namespace="default")
        assert volumes["released"].metadata is not None
        released = str(volumes["released"].metadata.name)
        eventually(
            lambda: not _exists(lambda: kube.get(PersistentVolume, released)),
            what="the released claim's volume deleted (reclaim policy Delete)",
        )
        assert not folders["released"].exists()
        assert folders["kept"].is_dir()
    assert not folders["kept"].exists(), "stopping the cluster removes its volumes' folders"


# -- the runner itself ----------------------------------------------------------------


def test_cli_up_shows_a_ready_node_and_down_leaves_no_process(
    cluster: ClusterUnderTest, tmp_path: Path
) -> None:
    _local(cluster)
    binaries = Binaries.find()
    assert binaries.kubectl is not None, "hack/k8s-binaries.sh builds kubectl"
    workdir = tmp_path / "cluster"
    up = run_cli("up", "--dir", str(workdir), cwd=tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        export = up.stdout.strip().splitlines()[-1]
        assert export == f"export KUBECONFIG={workdir / 'kubeconfig'}"
        pids = [p["pid"] for p in json.loads((workdir / STATE_FILE).read_text())["processes"]]
        assert len(pids) == 5
        assert all(process_alive(pid) for pid in pids)

        nodes = subprocess.run(
            [str(binaries.kubectl), "get", "nodes", "--no-headers"],
            env={**os.environ, "KUBECONFIG": str(workdir / "kubeconfig")},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        fields = nodes.stdout.split()
        assert fields[:2] == ["kwok-node-0", "Ready"], nodes.stdout
        classes = subprocess.run(
            [str(binaries.kubectl), "get", "storageclass", "-o", "name"],
            env={**os.environ, "KUBECONFIG": str(workdir / "kubeconfig")},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert classes.stdout.split() == ["storageclass.storage.k8s.io/standard"]

        minted = run_cli(
            "kubeconfig", "--serviceaccount", "default/default", "--dir", str(workdir), cwd=tmp_path
        )
        assert minted.returncode == 0, minted.stderr
        whoami = subprocess.run(
            [str(binaries.kubectl), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
            env={**os.environ, "KUBECONFIG": minted.stdout.strip()},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert whoami.stdout == "system:serviceaccount:default:default"

        status = run_cli("status", "--dir", str(workdir), cwd=tmp_path)
        assert status.returncode == 0
        assert "kube-apiserver" in status.stdout
    finally:
        down = run_cli("down", "--dir", str(workdir), cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids if process_alive(pid)]
    assert not workdir.exists()


def test_a_killed_test_process_leaves_no_orphans(cluster: ClusterUnderTest, tmp_path: Path) -> None:
    _local(cluster)
    script = textwrap.dedent(
        """
        import json, sys, threading
        from traderbot_devtools import LocalCluster
        cluster = LocalCluster()
        cluster.start()
        print(json.dumps(list(cluster.pids().values())), flush=True)
        threading.Event().wait()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # its work folder is left behind
    )
    try:
        assert child.stdout is not None
        pids = json.loads(child.stdout.readline())
        assert len(pids) == 5
        assert all(process_alive(pid) for pid in pids)
    finally:
        child.send_signal(signal.SIGKILL)  # no finalizer, no atexit: only the kernel can help
        child.wait(timeout=30)
    eventually(
        lambda: not [pid for pid in pids if process_alive(pid)],
        what="every component to die with the killed parent",
        timeout=15,
    )


def test_start_up_failure_names_the_component_and_shows_its_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken-etcd"
    broken.write_text("#!/bin/sh\necho 'etcd: cannot open the data folder' >&2\nexit 3\n")
    waiter = tmp_path / "waiter"
    waiter.write_text("#!/bin/sh\nexec sleep 300\n")
    for script in (broken, waiter):
        script.chmod(0o755)
    binaries = Binaries(
        etcd=broken,
        kube_apiserver=waiter,
        kube_controller_manager=waiter,
        kube_scheduler=waiter,
        kwok=waiter,
        kubectl=None,
        helm=None,
    )
    cluster = LocalCluster(binaries=binaries, start_timeout=30)
    with pytest.raises(ClusterStartError) as error:
        cluster.start()
    message = str(error.value)
    assert "etcd exited with code 3" in message
    assert "etcd: cannot open the data folder" in message
    apiserver = cluster.components["kube-apiserver"].process
    assert apiserver is not None
    assert apiserver.poll() is not None, "the rest was stopped"
    assert not cluster.workdir.exists()


def test_binary_cache_folder_matches_the_build_script() -> None:
    printed = subprocess.run(
        ["bash", str(REPO / "hack" / "k8s-binaries.sh"), "--print-dir"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "TRADERBOT_K8S_BIN_DIR"},
    ).stdout.strip()
    assert printed.endswith(f"/traderbot/k8s/{VERSION_TAG}/bin")
