"""A real node beside the local control plane: real pods, Services, DNS, volumes, isolation.

One cluster with a real node for the module (``LocalCluster(real_node=True)``),
running a static busybox image built by ``testing.images``. Its teardown is
checked too: after ``stop`` the host must be as it was before ``start``.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cluster.hoststate import HostState, ip_forward
from cluster.realnode_support import (
    PAUSE_REF,
    Kubectl,
    busybox_pod,
    drop_counters,
    http_get,
    requires_real_node,
    write_test_images,
)
from support.kube import eventually
from traderbot_devtools import (
    Binaries,
    BinariesMissingError,
    LocalCluster,
    hostnet,
    nodeconfig,
)

pytestmark = [requires_real_node]


@dataclass(frozen=True)
class RealCluster:
    local: LocalCluster
    kubectl: Kubectl

    def namespace(self, stem: str) -> str:
        name = f"rn-{stem}-{secrets.token_hex(3)}"
        self.kubectl.run("create", "namespace", name)
        eventually(
            lambda: (
                self.kubectl.run(
                    "get", "serviceaccount", "default", "-n", name, check=False
                ).returncode
                == 0
            ),
            what=f"ServiceAccount {name}/default",
        )
        return name


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """A cluster with a real node; after it stops the host must be as before it started."""
    try:
        binaries = Binaries.find()
    except BinariesMissingError as error:
        pytest.fail(f"{error} (make k8s-binaries)")
    assert binaries.kubectl is not None
    folder = tmp_path_factory.mktemp("realnode")
    archives = write_test_images(folder)
    workdir = folder / "cluster"
    before = HostState.take(workdir)
    local = LocalCluster(
        binaries=binaries,
        workdir=workdir,
        real_node=True,
        images=archives,
        sandbox_image=PAUSE_REF,
        storage_provisioner=True,
    )
    try:
        local.start()
        yield RealCluster(local=local, kubectl=Kubectl(binaries.kubectl, local.kubeconfig))
    finally:
        local.stop()
    after = HostState.take(workdir)
    assert before.differences(after) == {}, "the real node's stop left the host changed"


def test_the_node_is_ready_and_kwok_does_not_manage_it(real: RealCluster) -> None:
    node = real.kubectl.get("node", nodeconfig.NODE_NAME)
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == nodeconfig.NODE_IP
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert real.local.ready_seconds is not None


def test_the_kubernetes_service_points_at_the_node_ip(real: RealCluster) -> None:
    slices = real.kubectl.run(
        "get",
        "endpointslices",
        "-n",
        "default",
        "-l",
        "kubernetes.io/service-name=kubernetes",
        "-o",
        "jsonpath={.items[*].endpoints[*].addresses[*]}",
    ).stdout.split()
    assert slices == [nodeconfig.NODE_IP]


@pytest.fixture(scope="module")
def web(real: RealCluster) -> Iterator[str]:
    """A namespace with a web pod behind Service `web` and a client pod, both Ready."""
    namespace = real.namespace("web")
    real.kubectl.apply(
        busybox_pod(
            "web",
            command=[
                "sh",
                "-c",
                "echo hello-from-$(hostname) > /www/index.html"
                " && echo serving && exec httpd -f -v -p 8080 -h /www",
            ],
            ports=[{"containerPort": 8080}],
            volumeMounts=[{"name": "www", "mountPath": "/www"}],
            volumes=[{"name": "www", "emptyDir": {}}],
            readinessProbe={"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        busybox_pod("client", command=["sleep", "3600"]),
        namespace=namespace,
    )
    real.kubectl.run(
        "wait", "-n", namespace, "--for=condition=Ready", "pod/web", "pod/client", "--timeout=90s"
    )
    yield namespace
    real.kubectl.run("delete", "namespace", namespace, "--wait=false")


def test_a_pod_turns_ready_through_its_real_readiness_probe(real: RealCluster, web: str) -> None:
    pod = real.kubectl.get("pod", "web", namespace=web)
    assert pod["status"]["podIP"].startswith("10.88.")
    assert pod["spec"]["nodeName"] == nodeconfig.NODE_NAME
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert ip_forward() == "1", "the bridge plugin turned forwarding on (stop turns it back)"
    probes = real.kubectl.run("logs", "-n", web, "web").stdout
    assert re.search(r"response:200", probes), "kubelet's probe shows in httpd's log"


@pytest.mark.parametrize("name", ["web", "web.{ns}", "web.{ns}.svc.cluster.local"])
def test_a_pod_reaches_another_through_its_service_by_dns_name(
    real: RealCluster, web: str, name: str
) -> None:
    answer = http_get(
        real.kubectl, "client", url=f"{name.format(ns=web)}/index.html", namespace=web
    )
    assert "hello-from-web" in answer


def test_a_pod_reaches_itself_through_its_own_service(real: RealCluster, web: str) -> None:
    """Hairpin: the bridge's hairpin mode and kube-proxy's masquerade to the node IP.

    NB: the full name: in its own pod, ``web`` is the pod's host name (/etc/hosts).
    """
    service = f"web.{web}.svc.cluster.local"
    assert "hello-from-web" in http_get(
        real.kubectl, "web", url=f"{service}/index.html", namespace=web
    )


def test_names_outside_the_cluster_are_refused_not_forwarded(real: RealCluster, web: str) -> None:
    result = real.kubectl.exec("client", "nslookup", "example.com", namespace=web)
    assert "REFUSED" in result.stdout + result.stderr
    assert "Address" not in result.stdout.split("example.com")[-1]


def test_pods_reach_the_api_server_through_the_kubernetes_service(
    real: RealCluster, web: str
) -> None:
    result = real.kubectl.exec(
        "client",
        "sh",
        "-c",
        "echo | nc -w 3 kubernetes.default.svc.cluster.local 443 && echo connected",
        namespace=web,
    )
    assert "connected" in result.stdout, result.stderr


def test_the_host_reaches_a_cluster_ip(real: RealCluster, web: str) -> None:
    cluster_ip = real.kubectl.get("service", "web", namespace=web)["spec"]["clusterIP"]
    with urllib.request.urlopen(f"http://{cluster_ip}/index.html", timeout=5) as response:
        assert response.read().decode().startswith("hello-from-web")


def test_kubectl_logs_exec_and_port_forward_work(real: RealCluster, web: str) -> None:
    assert "serving" in real.kubectl.run("logs", "-n", web, "web").stdout
    assert real.kubectl.exec("web", "cat", "/www/index.html", namespace=web).stdout == (
        "hello-from-web\n"
    )
    forward = subprocess.Popen(
        [
            *real.kubectl.command(),
            "port-forward",
            "-n",
            web,
            "pod/web",
            ":8080",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+) -> 8080", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}/index.html"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read() == b"hello-from-web\n"
    finally:
        forward.terminate()
        forward.wait(timeout=10)


@contextlib.contextmanager
def _scratch_bridge(name: str, address: str) -> Iterator[None]:
    """A bridge of the test's own with no port: where a leaked packet would go (nowhere)."""
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", address, "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        yield
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def _free_service_ip(real: RealCluster) -> str:
    taken = set(
        real.kubectl.run(
            "get", "services", "-A", "-o", "jsonpath={.items[*].spec.clusterIP}"
        ).stdout.split()
    )
    return next(f"10.96.0.{n}" for n in range(250, 200, -1) if f"10.96.0.{n}" not in taken)


def test_nothing_is_forwarded_off_the_bridge(real: RealCluster, web: str) -> None:
    """A Service whose endpoint is not a pod, and an unassigned Service IP, stay unreachable.

    NB: the endpoint lives on a bridge this test makes (10.89.0.0/24, no port),
    so even a packet that got past the rules would never leave the machine.
    """
    with _scratch_bridge("tbrtest0", "10.89.0.1/24"):
        real.kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "elsewhere"},
                "spec": {"ports": [{"port": 80, "targetPort": 80}]},
            },
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": "elsewhere-1",
                    "labels": {"kubernetes.io/service-name": "elsewhere"},
                },
                "addressType": "IPv4",
                "ports": [{"port": 80, "protocol": "TCP", "name": ""}],
                "endpoints": [{"addresses": ["10.89.0.2"]}],
            },
            namespace=web,
        )
        cluster_ip = real.kubectl.get("service", "elsewhere", namespace=web)["spec"]["clusterIP"]
        eventually(
            lambda: (
                cluster_ip
                in subprocess.run(
                    ["iptables-save", "-t", "nat"], capture_output=True, text=True, check=True
                ).stdout
            ),
            what=f"kube-proxy's rules for {cluster_ip}",
        )
        before = drop_counters()

        through_service = http_get(real.kubectl, "client", url="elsewhere/", namespace=web)
        unassigned = http_get(
            real.kubectl, "client", url=f"{_free_service_ip(real)}/", namespace=web
        )
        direct = http_get(real.kubectl, "client", url="10.89.0.2/", namespace=web)
        with socket.socket() as host_socket:
            host_socket.settimeout(2)
            host_result = host_socket.connect_ex((cluster_ip, 80))

        after = drop_counters()
    assert "HTTP/1" not in through_service + unassigned
    assert "Network is unreachable" in direct, "pods have no route off their subnet"
    assert host_result != 0
    dropped = {rule: after[rule] - before[rule] for rule in before}
    assert dropped["TRADERBOT-ISOLATE:1"] > 0, "pod -> elsewhere: bridge to another interface"
    assert dropped["TRADERBOT-ISOLATE:3"] > 0, "pod -> unassigned Service IP"
    assert dropped["TRADERBOT-EGRESS:3"] > 0, "host -> elsewhere's cluster IP"


def test_a_second_real_node_is_refused_and_leaves_the_first_alone(
    real: RealCluster, web: str, tmp_path: Path
) -> None:
    """The bridge is the lock: the refused cluster's teardown touches nothing of ours."""
    second = LocalCluster(
        binaries=real.local.binaries,
        workdir=tmp_path / "second",
        real_node=True,
        images=real.local.node.images if real.local.node else [],
        sandbox_image=PAUSE_REF,
    )
    with pytest.raises(hostnet.HostSetupError, match="interface tbr0 already exists"):
        second.start()
    assert (
        nodeconfig.ISOLATION_CHAIN
        in subprocess.run(
            ["iptables-save", "-t", "mangle"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert "hello-from-web" in http_get(real.kubectl, "client", url="web/", namespace=web)
    assert not (tmp_path / "second" / "node").exists()


def _statefulset(name: str, *, user: int) -> dict[str, Any]:
    pod = busybox_pod(
        name,
        user=user,
        command=["sh", "-c", "echo written-by-$(id -u) > /data/hello && exec sleep 3600"],
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
        readinessProbe={"exec": {"command": ["cat", "/data/hello"]}, "periodSeconds": 1},
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": pod["metadata"], "spec": pod["spec"]},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "64Mi"}},
                    },
                }
            ],
        },
    }


def _volume_folder(real: RealCluster, namespace: str, claim: str) -> Path:
    bound = eventually(
        lambda: (
            real.kubectl.get("pvc", claim, namespace=namespace)["status"].get("phase") == "Bound"
        ),
        what=f"claim {namespace}/{claim} Bound",
    )
    assert bound
    volume = real.kubectl.get("pvc", claim, namespace=namespace)["spec"]["volumeName"]
    return Path(real.kubectl.get("pv", volume)["spec"]["hostPath"]["path"])


def test_a_statefulset_claim_binds_and_a_non_root_pod_writes_its_volume(
    real: RealCluster, web: str
) -> None:
    """PostgreSQL's UID 70 writes the volume; deleting the claim (Delete) removes the folder.

    Its pod has the per-pod DNS name of its headless Service, as a database's does.
    """
    namespace = real.namespace("volumes")
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]},
    }
    real.kubectl.apply(headless, _statefulset("db", user=70), namespace=namespace)
    folder = _volume_folder(real, namespace, "data-db-0")
    real.kubectl.run("rollout", "status", "-n", namespace, "statefulset/db", "--timeout=90s")
    pod_ip = real.kubectl.get("pod", "db-0", namespace=namespace)["status"]["podIP"]
    answer = real.kubectl.exec(
        "client", "nslookup", f"db-0.db.{namespace}.svc.cluster.local", namespace=web
    )
    assert f"Address: {pod_ip}" in answer.stdout, answer.stdout + answer.stderr

    assert folder.is_relative_to(real.local.workdir / "node" / "volumes")
    written = folder / "hello"
    assert written.read_text() == "written-by-70\n"
    assert written.stat().st_uid == 70

    real.kubectl.run("delete", "-n", namespace, "statefulset/db", "--wait=true")
    real.kubectl.run("delete", "-n", namespace, "pvc/data-db-0", "--wait=true")
    eventually(lambda: not folder.exists(), what=f"{folder} removed (reclaim Delete)")
    real.kubectl.run("delete", "namespace", namespace, "--wait=false")


def test_a_retained_volume_keeps_its_folder(real: RealCluster) -> None:
    namespace = real.namespace("retain")
    real.kubectl.apply(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "keep"},
            "provisioner": nodeconfig.VOLUME_PROVISIONER,
            "reclaimPolicy": "Retain",
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "kept"},
            "spec": {
                "storageClassName": "keep",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "64Mi"}},
            },
        },
        namespace=namespace,
    )
    folder = _volume_folder(real, namespace, "kept")
    volume = real.kubectl.get("pvc", "kept", namespace=namespace)["spec"]["volumeName"]
    (folder / "keep-me").write_text("x")

    real.kubectl.run("delete", "-n", namespace, "pvc/kept", "--wait=true")
    eventually(
        lambda: real.kubectl.get("pv", volume)["status"]["phase"] == "Released",
        what=f"{volume} Released",
    )
    time.sleep(2)  # a few passes of the provisioner
    assert (folder / "keep-me").read_text() == "x"
    real.kubectl.run("delete", "pv", volume)
    real.kubectl.run("delete", "storageclass", "keep")
    real.kubectl.run("delete", "namespace", namespace, "--wait=false")
