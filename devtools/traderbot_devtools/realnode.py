"""A real node for the local control plane: containerd, kubelet, kube-proxy, CoreDNS.

``LocalCluster(real_node=True)`` composes this with the control plane: real
containers run from images imported into a containerd of the harness's own
(config, root, state and socket in the cluster's work folder, never a system
service), on a pod network that stays inside this machine:

* the bridge ``tbr0`` (10.88.0.1/16) is created by the harness; its address is
  the node IP that kubelet, the API server and CoreDNS serve on, and the pods'
  subnet (CNI bridge + host-local, no masquerade);
* iptables rules of the harness drop anything forwarded between the bridge and
  any other interface and anything still bound for the Service range;
* CoreDNS answers ``cluster.local`` only (no forwarder);
* containerd pulls through a dead loopback proxy: no image can be fetched, so
  nothing is ever requested from a registry;
* a host-path provisioner of the harness (``testing.provisioner``) makes
  volumes pods running as any user can write.

``teardown`` (in-process ``stop`` and detached ``down`` alike) stops the pods'
containers first (through the API, then containerd, then by cgroup), then the
node's processes, then undoes every change to the host (``hostnet``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from traderbot_devtools import hostnet, nodeconfig
from traderbot_devtools.binaries import Binaries, BinariesMissingError
from traderbot_devtools.nodeconfig import NodeLayout

if TYPE_CHECKING:
    from traderbot_devtools.pki import CertificateAuthority

CONTAINERD_NAMESPACE = "k8s.io"
HOST_RECORD = "host.json"
# containerd sends every pull here: nothing listens on the discard port.
DEAD_PROXY = "http://127.0.0.1:9"
# Folders outside the work folder that the node's components use whatever their
# configuration says: kubelet's container log links and device-plugin socket,
# libcni's result cache (containerd 1.6 sets no other), containerd's shim sockets.
POD_LOG_LINKS = Path("/var/log/containers")
KUBELET_FIXED_DIR = Path("/var/lib/kubelet")
CNI_CACHE = Path("/var/lib/cni")
CONTAINERD_FIXED_DIR = Path("/run/containerd")
FIXED_PATHS = (POD_LOG_LINKS, KUBELET_FIXED_DIR, CNI_CACHE, CONTAINERD_FIXED_DIR)
SYSTEM_TOOLS = (
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "ip",
    "iptables",
    "ip6tables",
)
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
DRAIN_SECONDS = 30.0
IMPORT_WORKERS = 3


class Api(Protocol):
    """The few calls the node makes: ``localcluster.ApiClient`` satisfies it."""

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 10.0
    ) -> tuple[int, Any]: ...


class NodeStartError(RuntimeError):
    """Raised when a part of the real node fails to start."""


def missing_system_tools() -> list[str]:
    """Debian's containerd, runc, CNI plugins and iptables the node needs but lacks."""
    missing = [tool for tool in SYSTEM_TOOLS if shutil.which(tool) is None]
    missing += [
        f"{nodeconfig.CNI_BIN_DIR}/{plugin}"
        for plugin in CNI_PLUGINS
        if not (nodeconfig.CNI_BIN_DIR / plugin).is_file()
    ]
    return missing


def require_node_binaries(binaries: Binaries) -> tuple[Path, Path, Path]:
    """kubelet, kube-proxy and coredns, or a message saying what to build or install."""
    found = {"kubelet": binaries.kubelet, "kube-proxy": binaries.kube_proxy}
    found["coredns"] = binaries.coredns
    missing = [name for name, path in found.items() if path is None]
    tools = missing_system_tools()
    if missing or tools:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}: build them with `make k8s-binaries`")
        if tools:
            parts.append(
                f"missing {', '.join(tools)}: install them with `make setup` "
                "(hack/install-system-deps.sh: containerd runc containernetworking-plugins "
                "iptables)"
            )
        raise BinariesMissingError("; ".join(parts))
    paths = [path for path in found.values() if path is not None]
    return paths[0], paths[1], paths[2]


def normalize_image_ref(ref: str) -> str:
    """The name containerd stores an image under.

    ``busybox`` becomes ``docker.io/library/busybox:latest``, as Docker spells it.
    """
    name, _, digest = ref.partition("@")
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


def free_port(host: str) -> int:
    """A free TCP port on ``host`` (released before use, as free_loopback_ports)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _http_ok(url_host: str, port: int, path: str) -> bool:
    conn = http.client.HTTPConnection(url_host, port, timeout=2.0)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == http.HTTPStatus.OK
    finally:
        conn.close()


def _ctr(socket_path: Path, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - containerd's own client, no shell
        ["ctr", "--address", str(socket_path), *args],  # noqa: S607 - Debian's containerd
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


Launch = Callable[[str, list[str], Mapping[str, str]], object]
Wait = Callable[[str, Callable[[], bool], str], None]


class RealNode:
    """The node's processes, files and host changes, started by ``LocalCluster``.

    NB: the cluster owns the processes (``launch`` makes them its components,
    so its start-up checks and its state file cover them); this class decides
    what runs, with which files, in which order.
    """

    def __init__(
        self,
        *,
        workdir: Path,
        binaries: Binaries,
        images: Sequence[Path],
        sandbox_image: str,
        service_cidr: str,
        node_name: str = nodeconfig.NODE_NAME,
    ) -> None:
        self.kubelet, self.kube_proxy, self.coredns = require_node_binaries(binaries)
        self.workdir = workdir
        self.images = [Path(p) for p in images]
        self.sandbox_image = normalize_image_ref(sandbox_image)
        self.service_cidr = service_cidr
        self.node_name = node_name
        self.record: hostnet.HostRecord | None = None
        self._layout: NodeLayout | None = None

    @property
    def node_ip(self) -> str:
        return nodeconfig.NODE_IP

    @property
    def layout(self) -> NodeLayout:
        if self._layout is None:
            raise RuntimeError("the node's layout is set by prepare_host()")
        return self._layout

    # -- before the API server -------------------------------------------------------

    def prepare_host(self) -> None:
        """Record the host, then make the bridge, the rules and the sysctl the node needs.

        NB: runs before the API server, which binds the node IP. The record is
        written first, so a start that fails half-way is still undone.
        """
        if os.geteuid() != 0:
            raise NodeStartError(
                "a real node needs root: it makes a bridge, iptables rules, mounts and cgroups"
            )
        for archive in self.images:
            if not archive.is_file():
                raise NodeStartError(f"image archive {archive} does not exist")
        node_dir = self.workdir / "node"
        too_deep = nodeconfig.socket_path_problem(node_dir)
        if too_deep is not None:
            raise NodeStartError(too_deep)
        node_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.record = hostnet.HostRecord.take(bridge=nodeconfig.BRIDGE, watched_paths=FIXED_PATHS)
        self._save_record()
        hostnet.create_bridge(
            name=nodeconfig.BRIDGE,
            address=nodeconfig.NODE_IP,
            prefix_length=int(nodeconfig.NODE_CIDR.split("/")[1]),
            routes=[self.service_cidr],
        )
        self.record.bridge_created = True
        self._save_record()
        self._layout = NodeLayout(
            workdir=self.workdir,
            service_cidr=self.service_cidr,
            kubelet_port=free_port(nodeconfig.NODE_IP),
            kubelet_healthz_port=free_port("127.0.0.1"),
            proxy_healthz_port=free_port("127.0.0.1"),
            proxy_metrics_port=free_port("127.0.0.1"),
            dns_health_port=free_port("127.0.0.1"),
            dns_ready_port=free_port("127.0.0.1"),
            node_name=self.node_name,
            sandbox_image=self.sandbox_image,
        )
        hostnet.install_rules("ipv4", nodeconfig.isolation_rules(self._layout))
        hostnet.install_rules("ipv6", nodeconfig.isolation_rules_v6(self._layout))
        if hostnet.read_sysctl(hostnet.BRIDGE_NETFILTER) not in {None, "1"}:
            hostnet.write_sysctl(hostnet.BRIDGE_NETFILTER, "1")

    def _save_record(self) -> None:
        assert self.record is not None  # noqa: S101 - set by prepare_host
        path = self.workdir / "node" / HOST_RECORD
        path.write_text(json.dumps(self.record.to_json(), indent=2))

    @property
    def masquerade_all(self) -> bool:
        """Without br_netfilter, replies between pods on the bridge skip the un-DNAT."""
        return hostnet.read_sysctl(hostnet.BRIDGE_NETFILTER) != "1"

    def apiserver_args(self) -> list[str]:
        """What the API server needs to serve pods and reach kubelet."""
        pki = self.workdir / "pki"
        return [
            f"--bind-address={nodeconfig.NODE_IP}",
            f"--advertise-address={nodeconfig.NODE_IP}",
            # The `kubernetes` Service's endpoint: the node IP, which pods reach.
            "--endpoint-reconciler-type=lease",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def issue_credentials(
        self,
        *,
        ca: CertificateAuthority,
        write_kubeconfig: Callable[[Path, str, tuple[str, ...]], None],
    ) -> None:
        """Certificates and kubeconfigs of the node's components, each its own identity."""
        pki = self.workdir / "pki"
        layout = self.layout
        ca.issue(nodeconfig.KUBELET_CLIENT_USER, client=True).write(
            cert_path=pki / "apiserver-kubelet-client.crt",
            key_path=pki / "apiserver-kubelet-client.key",
        )
        ca.issue(
            f"system:node:{self.node_name}",
            organizations=(nodeconfig.NODE_GROUP,),
            dns_names=(self.node_name,),
            ip_addresses=(layout.node_ip,),
            server=True,
        ).write(cert_path=pki / "kubelet-serving.crt", key_path=pki / "kubelet-serving.key")
        node_dir = layout.node_dir
        write_kubeconfig(
            node_dir / "kubelet.kubeconfig",
            f"system:node:{self.node_name}",
            (nodeconfig.NODE_GROUP,),
        )
        write_kubeconfig(node_dir / "kube-proxy.kubeconfig", nodeconfig.KUBE_PROXY_USER, ())
        write_kubeconfig(node_dir / "coredns.kubeconfig", nodeconfig.COREDNS_USER, ())
        write_kubeconfig(node_dir / "provisioner.kubeconfig", nodeconfig.PROVISIONER_USER, ())

    def write_files(self) -> None:
        """Every config file, from the pure builders in ``nodeconfig``."""
        layout = self.layout
        node_dir = layout.node_dir
        for folder in (
            layout.containerd_root,
            layout.containerd_state,
            layout.cni_conf_dir,
            layout.cni_ipam_dir,
            layout.kubelet_root,
            layout.pod_logs_dir,
            layout.volumes_dir,
            node_dir / "containerd" / "certs.d",
        ):
            folder.mkdir(parents=True, exist_ok=True)
        layout.containerd_config.write_text(
            nodeconfig.to_toml(nodeconfig.containerd_config(layout))
        )
        (layout.cni_conf_dir / "10-traderbot.conflist").write_text(
            json.dumps(nodeconfig.cni_config(layout), indent=2)
        )
        layout.kubelet_config.write_text(
            json.dumps(nodeconfig.kubelet_config(layout, pki=self.workdir / "pki"), indent=2)
        )
        layout.resolv_conf.write_text(nodeconfig.resolv_conf(layout))
        layout.kube_proxy_config.write_text(
            json.dumps(
                nodeconfig.kube_proxy_config(
                    layout,
                    kubeconfig=node_dir / "kube-proxy.kubeconfig",
                    masquerade_all=self.masquerade_all,
                ),
                indent=2,
            )
        )
        layout.corefile.write_text(
            nodeconfig.corefile(layout, kubeconfig=node_dir / "coredns.kubeconfig")
        )

    # -- after the API server ----------------------------------------------------------------

    def start_runtime(self, *, launch: Launch, wait: Wait) -> None:
        """containerd and the images: no API server needed, so it runs while that one boots.

        NB: the proxy variables point every pull at a dead loopback port, so no
        request for an image can ever leave the machine.
        """
        layout = self.layout
        launch(
            "containerd",
            [shutil.which("containerd") or "containerd", "--config", str(layout.containerd_config)],
            {"HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "NO_PROXY": ""},
        )
        wait("containerd's socket", self._containerd_ready, "containerd")
        self.import_images()

    def start(self, *, api: Api, launch: Launch, wait: Wait) -> None:
        """RBAC, then kubelet until Ready, kube-proxy, CoreDNS, volumes (after start_runtime)."""
        layout = self.layout
        for manifest in nodeconfig.node_rbac():
            kind = manifest["kind"].lower() + "s"
            status, body = api.request(
                "POST", f"/apis/rbac.authorization.k8s.io/v1/{kind}", manifest
            )
            if status not in {http.HTTPStatus.CREATED, http.HTTPStatus.CONFLICT}:
                raise NodeStartError(f"creating {manifest['kind']} failed ({status}): {body}")
        launch(
            "kubelet",
            [
                str(self.kubelet),
                f"--config={layout.kubelet_config}",
                f"--kubeconfig={layout.node_dir / 'kubelet.kubeconfig'}",
                f"--root-dir={layout.kubelet_root}",
                f"--cert-dir={layout.kubelet_root / 'pki'}",
                f"--hostname-override={self.node_name}",
                f"--node-ip={layout.node_ip}",
                "--node-labels=traderbot.dev/node=real",
                "--v=1",
            ],
            {},
        )
        launch("kube-proxy", [str(self.kube_proxy), f"--config={layout.kube_proxy_config}"], {})
        launch("coredns", [str(self.coredns), "-conf", str(layout.corefile)], {})
        launch(
            "volume-provisioner",
            [
                sys.executable,
                "-m",
                "traderbot_devtools.provisioner",
                f"--kubeconfig={layout.node_dir / 'provisioner.kubeconfig'}",
                f"--root={layout.volumes_dir}",
                f"--node={self.node_name}",
            ],
            {},
        )
        wait(f"Node {self.node_name} Ready", lambda: node_ready(api, self.node_name), "kubelet")
        wait(
            "kube-proxy /healthz",
            lambda: _http_ok("127.0.0.1", layout.proxy_healthz_port, "/healthz"),
            "kube-proxy",
        )
        wait(
            "CoreDNS /ready",
            lambda: _http_ok("127.0.0.1", layout.dns_ready_port, "/ready"),
            "coredns",
        )

    def _containerd_ready(self) -> bool:
        socket_path = self.layout.containerd_socket
        return socket_path.exists() and _ctr(socket_path, "version", timeout=5).returncode == 0

    def import_images(self) -> None:
        """Load each archive into containerd's k8s.io namespace; check the sandbox image.

        NB: the node can never pull: a pod whose image was not imported stays
        in ErrImagePull (use ``imagePullPolicy: Never`` or ``IfNotPresent``).
        """
        socket_path = self.layout.containerd_socket
        # One ctr per archive, all at once: unpacking is CPU-bound, two cores halve it.
        with concurrent.futures.ThreadPoolExecutor(max_workers=IMPORT_WORKERS) as pool:
            results = pool.map(
                lambda archive: _ctr(
                    socket_path,
                    "-n",
                    CONTAINERD_NAMESPACE,
                    "images",
                    "import",
                    str(archive),
                    timeout=600,
                ),
                self.images,
            )
            for archive, result in zip(self.images, results, strict=True):
                if result.returncode != 0:
                    raise NodeStartError(f"importing {archive} failed: {result.stderr.strip()}")
        names = self.image_names()
        if self.sandbox_image not in names:
            raise NodeStartError(
                f"the sandbox (pause) image {self.sandbox_image} is not among the imported "
                f"images ({', '.join(sorted(names)) or 'none'}): pass an archive that has it"
            )

    def image_names(self) -> set[str]:
        result = _ctr(
            self.layout.containerd_socket, "-n", CONTAINERD_NAMESPACE, "images", "ls", "-q"
        )
        return set(result.stdout.split())

    def teardown_record(self) -> dict[str, Any]:
        """What ``teardown`` needs, for the cluster's state file."""
        return {
            "node_name": self.node_name,
            "node_dir": str(self.workdir / "node"),
            "containerd_socket": str(self.workdir / "node" / "containerd.sock"),
        }


def node_ready(api: Api, name: str) -> bool:
    status, node = api.request("GET", f"/api/v1/nodes/{name}", timeout=2.0)
    if status != http.HTTPStatus.OK:
        return False
    conditions = node.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


# -- teardown ----------------------------------------------------------------------------------


def _pods_on(api: Api, node: str) -> list[dict[str, Any]]:
    status, body = api.request(
        "GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}", timeout=5.0
    )
    if status != http.HTTPStatus.OK:
        raise RuntimeError(f"listing pods failed ({status})")
    items: list[dict[str, Any]] = body.get("items", [])
    return items


def drain(api: Api, node: str, *, timeout: float = DRAIN_SECONDS) -> bool:
    """Delete every pod of the node (1 s grace) and wait until kubelet removed them all.

    NB: kubelet, not us, stops each pod properly: containers killed, the
    sandbox's network torn down by CNI DEL (veth, IPAM, portmap rules),
    volumes unmounted. Needs kubelet running and the controllers stopped (so
    nothing is re-created). Returns whether the node emptied in time.
    """
    try:
        for pod in _pods_on(api, node):
            meta = pod["metadata"]
            api.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 1},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pods_on(api, node):
                return True
            time.sleep(0.2)
    except (OSError, RuntimeError, http.client.HTTPException):
        return False
    return False


def kill_containers(socket_path: Path) -> None:
    """SIGKILL and delete every task and container containerd still has.

    NB: runs while containerd is up: a task deleted through it has its root
    file system unmounted and its shim ended; what this misses, the cgroup
    sweep of ``clean_host`` kills.
    """
    if not socket_path.exists():
        return
    namespaces = _ctr(socket_path, "namespaces", "ls", "-q", timeout=10).stdout.split()
    for namespace in namespaces:
        tasks = _ctr(socket_path, "-n", namespace, "tasks", "ls", "-q", timeout=10).stdout.split()
        for task in tasks:
            _ctr(
                socket_path,
                "-n",
                namespace,
                "tasks",
                "kill",
                "-a",
                "-s",
                "SIGKILL",
                task,
                timeout=10,
            )
        for task in tasks:
            _ctr(socket_path, "-n", namespace, "tasks", "delete", "-f", task, timeout=15)
        containers = _ctr(socket_path, "-n", namespace, "containers", "ls", "-q", timeout=10)
        for container in containers.stdout.split():
            _ctr(socket_path, "-n", namespace, "containers", "delete", container, timeout=15)


def _host_record(node_dir: Path) -> hostnet.HostRecord | None:
    path = node_dir / HOST_RECORD
    if not path.exists():
        return None
    return hostnet.HostRecord.from_json(json.loads(path.read_text()))


def owns_host(node_dir: Path) -> bool:
    """Whether this node made the bridge, and so owns the machine's node-wide state.

    NB: the bridge is the lock: a second real node fails to make it, and its
    teardown must then leave the kubepods cgroups, the chains and the sysctls
    alone: they are the first node's.
    """
    record = _host_record(node_dir)
    return record is not None and record.bridge_created


def kill_leftovers(socket_path: Path, *, node_dir: Path) -> None:
    """End containerd's shims of this node and any process left in a kubepods cgroup."""
    hostnet.kill_pids(hostnet.processes_mentioning(str(socket_path)))
    if owns_host(node_dir):
        hostnet.kill_kubepods()


def clean_host(node_dir: Path) -> list[str]:
    """Undo every host change the record lists; return what could not be undone.

    Runs after every process of the node has stopped. A node that never made
    its bridge (another one held it) only removes its own folder.
    """
    problems: list[str] = []
    record = _host_record(node_dir)
    sandboxes = _sandbox_ids(node_dir)
    if record is not None and record.bridge_created:
        hostnet.kill_kubepods()
    left = hostnet.unmount_all_under(node_dir)
    problems += [f"mount {p}" for p in left]
    if record is not None and record.bridge_created:
        problems += [f"cgroup {p}" for p in hostnet.remove_kubepods_cgroups()]
        hostnet.delete_bridge(record.bridge)
        for family in hostnet.FAMILIES:
            try:
                hostnet.sweep_chains(family, keep=record.chains.get(family, {}))
            except hostnet.HostSetupError as error:
                problems.append(str(error))
        hostnet.drop_new_empty_tables(record.nft_tables)
        problems += [f"sysctl {k}" for k in hostnet.restore_sysctls(record.sysctls)]
        _remove_fixed_paths(node_dir, sandboxes=sandboxes, absent=set(record.absent_paths))
    if not left:
        shutil.rmtree(node_dir, ignore_errors=True)
    return problems


def _sandbox_ids(node_dir: Path) -> set[str]:
    """The ids of every pod sandbox containerd made (its CRI metadata folders)."""
    folder = node_dir / "containerd" / "root" / "io.containerd.grpc.v1.cri" / "sandboxes"
    return {entry.name for entry in folder.iterdir()} if folder.is_dir() else set()


def _remove_fixed_paths(node_dir: Path, *, sandboxes: set[str], absent: set[str]) -> None:
    """Remove what the node left in the fixed folders; the folders too if they were new.

    NB: kubelet links each container's log into /var/log/containers, and libcni
    caches each attachment's result in /var/lib/cni: a pod stopped by kubelet
    takes both away, a container killed at teardown does not. /run/containerd
    may hold other containerds' shim sockets: only empty folders go.
    """
    if POD_LOG_LINKS.is_dir():
        for link in POD_LOG_LINKS.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and str(link.readlink()).startswith(str(node_dir)):
                    link.unlink()
    results = CNI_CACHE / "results"
    if results.is_dir():
        for entry in results.iterdir():
            parts = entry.name.split("-")
            if any(part in sandboxes for part in parts):
                with contextlib.suppress(OSError):
                    entry.unlink()
    device_socket = KUBELET_FIXED_DIR / "device-plugins" / "kubelet.sock"
    if device_socket.is_socket():  # our kubelet's, stale now that it stopped
        device_socket.unlink()
    for path in (POD_LOG_LINKS, KUBELET_FIXED_DIR, CNI_CACHE):
        if str(path) in absent:
            shutil.rmtree(path, ignore_errors=True)
    if str(CONTAINERD_FIXED_DIR) in absent and CONTAINERD_FIXED_DIR.is_dir():
        for folder in sorted(CONTAINERD_FIXED_DIR.rglob("*"), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            CONTAINERD_FIXED_DIR.rmdir()
