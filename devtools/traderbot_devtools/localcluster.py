"""Run a real Kubernetes control plane as local processes, for tests and demos.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run on
free loopback ports from a work folder, the way controller-runtime's envtest
runs its API server, plus kwok so that Pods get scheduled onto a fake Node and
become Ready, and Job Pods finish.

Two ways to run it:

* in-process (pytest): ``with LocalCluster() as cluster: ...``. Every child is
  its own process group and gets SIGKILL from the kernel if this process dies
  (``PR_SET_PDEATHSIG``), so even a crashed test run leaves no orphans.
* detached (``traderbot-cluster up``/``down``): the children outlive the CLI;
  their pids are kept in ``state.json`` in the work folder, and ``down`` stops
  them by pid after checking each pid still runs the binary it started.

NB: nothing here listens on anything but 127.0.0.1, and every address the fake
Node and its Pods report is a loopback address too, so nothing in the cluster
can send traffic off this machine. ``real_node=True`` adds a real kubelet
(``realnode``): then the API server serves on the node IP of the harness's own
bridge, and the harness's iptables rules keep the pods on this machine.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from traderbot_devtools import nodeconfig, realnode
from traderbot_devtools.binaries import Binaries
from traderbot_devtools.pki import CertificateAuthority, KeyPair, service_account_keys

LOOPBACK = "127.0.0.1"
SERVICE_CIDR = "10.96.0.0/24"
SERVICE_IP = "10.96.0.1"
# Pod IPs that kwok hands out: loopback, so an accidental connection stays local.
POD_CIDR = "127.244.0.0/16"
STATE_FILE = "state.json"
DEFAULT_NODES = ("kwok-node-0",)
# kube-controller-manager's host-path provisioner puts every volume here; the
# folder is compiled in (pkg/volume/hostpath), no flag moves it.
HOSTPATH_ROOT = Path("/tmp/hostpath_pv")  # noqa: S108 - fixed by Kubernetes, see above
HOSTPATH_PROVISIONER = "kubernetes.io/host-path"
STORAGE_CLASS = "standard"
# The pause image hack/images.sh builds; pass sandbox_image= for another.
DEFAULT_SANDBOX_IMAGE = "traderbot.local/pause:3.10"
# Importing images and a first kubelet sync take longer than kwok's fake node.
REAL_NODE_START_TIMEOUT = 180.0

# Controllers the operator and its tests rely on; leaving the rest out keeps
# start-up fast and the footprint small on 2-core machines.
CONTROLLERS = (
    "serviceaccount-token-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "node-lifecycle-controller",
    "pod-garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "disruption-controller",
    "resourcequota-controller",
    "endpointslice-controller",
    "persistentvolume-binder-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
)

_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 40


class ClusterStartError(RuntimeError):
    """Raised when a component fails to start; the message carries its log tail."""


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """Return the last lines of a component's log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def free_loopback_ports(count: int) -> list[int]:
    """Reserve distinct free TCP ports on 127.0.0.1.

    NB: the sockets are closed before the servers bind, so another process could
    take a port in between; on a test machine that race is rare enough.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((LOOPBACK, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _pdeathsig_hook() -> Callable[[], None]:
    """Build a preexec hook that has the kernel SIGKILL the child when we die."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: no imports in the child
    parent = os.getpid()

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def _pid_alive(pid: int, executable: str | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, if given, runs ``executable``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in {"Z", "X"}:
        return False
    if executable is None:
        return True
    try:
        return str(Path(f"/proc/{pid}/exe").readlink()) == executable
    except OSError:
        return False


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def terminate_pids(
    records: Sequence[tuple[int, str | None]], *, grace_seconds: float = 15.0
) -> list[int]:
    """SIGTERM each process group, SIGKILL what is left after the grace period.

    Each record is (pid, executable); a pid that no longer runs its executable
    was reused by someone else and is left alone. Returns the pids still alive
    afterwards (empty on success).
    """
    targets = [(pid, exe) for pid, exe in records if _pid_alive(pid, exe)]
    for pid, _ in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(_pid_alive(pid, exe) for pid, exe in targets):
        time.sleep(0.05)
    for pid, exe in targets:
        if _pid_alive(pid, exe):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        # Whatever the leader left in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(_pid_alive(pid, exe) for pid, exe in targets):
        time.sleep(0.05)
    return [pid for pid, exe in targets if _pid_alive(pid, exe)]


@dataclass
class Component:
    """One process of the control plane."""

    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exited(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self.process.poll() if self.process else None

    def tail(self) -> str:
        return log_tail(self.log_path)


class ApiClient:
    """A minimal HTTPS client for the few calls the runner itself makes.

    NB: deliberately not lightkube: the runner must work before any CRD,
    kubeconfig or event loop exists, and must not pull the operator's deps.
    """

    def __init__(self, server: str, *, ca_file: Path, cert_file: Path, key_file: Path) -> None:
        host, port = server.removeprefix("https://").rsplit(":", 1)
        self._host = host
        self._port = int(port)
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 10.0
    ) -> tuple[int, Any]:
        """Send one request; return (status, decoded JSON body or text)."""
        conn = http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=timeout
        )
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read().decode(errors="replace")
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw)
        except json.JSONDecodeError:
            return response.status, raw


def _kubeconfig(*, server: str, ca_pem: bytes, user: dict[str, str], name: str) -> dict[str, Any]:
    import base64

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "traderbot-local",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": "traderbot-local", "user": name}}],
        "current-context": name,
        "preferences": {},
    }


def _cert_user(pair: KeyPair) -> dict[str, str]:
    import base64

    return {
        "client-certificate-data": base64.b64encode(pair.cert_pem).decode(),
        "client-key-data": base64.b64encode(pair.key_pem).decode(),
    }


def _write_private(path: Path, content: str) -> Path:
    path.touch(mode=0o600)
    path.write_text(content)
    return path


@dataclass(frozen=True)
class ClusterAccess:
    """What is needed to talk to a running local cluster and mint credentials.

    Rebuilt from the work folder alone, so ``traderbot-cluster kubeconfig`` works
    against a cluster started by another process.
    """

    workdir: Path
    server: str

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (group system:masters)."""
        return self.workdir / "kubeconfig"

    def api(self) -> ApiClient:
        return ApiClient(
            self.server,
            ca_file=self.pki / "ca.crt",
            cert_file=self.pki / "admin.crt",
            key_file=self.pki / "admin.key",
        )

    @classmethod
    def load(cls, workdir: Path) -> ClusterAccess:
        state = json.loads((workdir / STATE_FILE).read_text())
        return cls(workdir=workdir, server=str(state["server"]))

    def _credentials_dir(self) -> Path:
        folder = self.workdir / "credentials"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder

    def kubeconfig_for_user(
        self, name: str, *, groups: Sequence[str] = (), path: Path | None = None
    ) -> Path:
        """Write a kubeconfig with a client certificate for ``name`` in ``groups``."""
        ca = CertificateAuthority.load(cert_path=self.pki / "ca.crt", key_path=self.pki / "ca.key")
        pair = ca.issue(name, organizations=groups, client=True)
        target = path or self._credentials_dir() / f"user-{name.replace(':', '_')}.kubeconfig"
        config = _kubeconfig(
            server=self.server, ca_pem=ca.cert_pem, user=_cert_user(pair), name=name
        )
        return _write_private(target, json.dumps(config, indent=2))

    def kubeconfig_for_service_account(
        self,
        namespace: str,
        name: str,
        *,
        expiration_seconds: int = 3600,
        path: Path | None = None,
    ) -> Path:
        """Write a kubeconfig with a bound token for ServiceAccount ``namespace/name``."""
        status, body = self.api().request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        if status != http.HTTPStatus.CREATED:
            raise RuntimeError(f"TokenRequest for {namespace}/{name} failed ({status}): {body}")
        token = str(body["status"]["token"])
        target = path or self._credentials_dir() / f"sa-{namespace}-{name}.kubeconfig"
        config = _kubeconfig(
            server=self.server,
            ca_pem=(self.pki / "ca.crt").read_bytes(),
            user={"token": token},
            name=f"system:serviceaccount:{namespace}:{name}",
        )
        return _write_private(target, json.dumps(config, indent=2))


class LocalCluster:
    """A local control plane: start it, use ``kubeconfig``, stop it.

    ``die_with_parent`` (the default, for tests) ties the children's lives to
    this process; ``traderbot-cluster up`` turns it off so they outlive the CLI.

    ``storage_provisioner`` turns on kube-controller-manager's host-path
    provisioner and a default StorageClass ``standard`` (binding Immediate,
    reclaim Delete), so PersistentVolumeClaims bind with no hand-made volume.
    NB: off by default, for clusters whose users make their own unclassed
    PersistentVolumes (the cluster tests turn it on). The volumes are folders under
    ``/tmp/hostpath_pv`` (fixed by Kubernetes); ``stop`` removes this cluster's.

    ``real_node`` adds a real node (``realnode``: containerd, kubelet,
    kube-proxy, CoreDNS) named ``node_name``, running the images of the
    ``images`` archives (docker or OCI ``.tar``), with ``sandbox_image`` among
    them; kwok nodes then come only if ``nodes`` names some. With
    ``storage_provisioner`` the StorageClass ``standard`` is served by the
    harness's own provisioner, whose folders any pod user can write.
    """

    def __init__(
        self,
        *,
        binaries: Binaries | None = None,
        workdir: Path | None = None,
        nodes: Sequence[str] | None = None,
        die_with_parent: bool = True,
        start_timeout: float | None = None,
        keep_workdir: bool = False,
        storage_provisioner: bool = False,
        real_node: bool = False,
        images: Sequence[Path] = (),
        sandbox_image: str = DEFAULT_SANDBOX_IMAGE,
        node_name: str = nodeconfig.NODE_NAME,
    ) -> None:
        self.binaries = binaries or Binaries.find()
        self._owns_workdir = workdir is None and not keep_workdir
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="traderbot-cluster-")) if workdir is None else workdir
        )
        # A real node comes alone unless kwok nodes are asked for too.
        self.nodes = tuple(nodes if nodes is not None else (() if real_node else DEFAULT_NODES))
        self.die_with_parent = die_with_parent
        self.start_timeout = start_timeout or (REAL_NODE_START_TIMEOUT if real_node else 90.0)
        self.storage_provisioner = storage_provisioner
        self.node: realnode.RealNode | None = (
            realnode.RealNode(
                workdir=self.workdir,
                binaries=self.binaries,
                images=images,
                sandbox_image=sandbox_image,
                service_cidr=SERVICE_CIDR,
                node_name=node_name,
            )
            if real_node
            else None
        )
        self.components: dict[str, Component] = {}
        self.ports: dict[str, int] = {}
        self.started_at: float | None = None
        self.ready_seconds: float | None = None
        self._access: ClusterAccess | None = None
        self._stopped = False

    # -- public surface -------------------------------------------------------

    @property
    def access(self) -> ClusterAccess:
        if self._access is None:
            raise RuntimeError("the cluster has not been started")
        return self._access

    @property
    def kubeconfig(self) -> Path:
        return self.access.kubeconfig

    @property
    def server(self) -> str:
        return self.access.server

    @property
    def host(self) -> str:
        """The address the API server serves on: the node IP with a real node."""
        return self.node.node_ip if self.node is not None else LOOPBACK

    @property
    def node_names(self) -> tuple[str, ...]:
        """Every node: the kwok ones, then the real one."""
        return self.nodes + ((self.node.node_name,) if self.node is not None else ())

    def kubeconfig_for_user(self, name: str, *, groups: Sequence[str] = ()) -> Path:
        return self.access.kubeconfig_for_user(name, groups=groups)

    def kubeconfig_for_service_account(self, namespace: str, name: str) -> Path:
        return self.access.kubeconfig_for_service_account(namespace, name)

    def pids(self) -> dict[str, int]:
        return {name: c.pid for name, c in self.components.items() if c.pid is not None}

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each running component, in bytes."""
        return {name: _rss_bytes(pid) for name, pid in self.pids().items()}

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- start ----------------------------------------------------------------

    def start(self) -> None:
        """Start every component and return once a Pod could run on a Ready Node.

        On any failure everything started so far is stopped before raising.
        """
        self.started_at = time.monotonic()
        deadline = self.started_at + self.start_timeout
        if self.die_with_parent:
            atexit.register(self.stop)
        try:
            self._prepare()
            if self.node is not None:
                self._write_state()  # a failed start's `down` undoes the host changes too
            self._launch("etcd", self._etcd_args())
            self._launch("kube-apiserver", self._apiserver_args())
            if self.node is not None:
                self.node.start_runtime(
                    launch=self._launch,
                    wait=lambda what, check, blame: self._wait(
                        what, check, deadline=deadline, blame=blame
                    ),
                )
            self._wait(
                "kube-apiserver /readyz",
                self._apiserver_ready,
                deadline=deadline,
                blame="kube-apiserver",
            )
            self._launch("kube-controller-manager", self._controller_manager_args())
            self._launch("kube-scheduler", self._scheduler_args())
            if self.nodes:
                self._launch("kwok", self._kwok_args())
                self._create_nodes()
            if self.node is not None:
                self.node.start(
                    api=self.access.api(),
                    launch=self._launch,
                    wait=lambda what, check, blame: self._wait(
                        what, check, deadline=deadline, blame=blame
                    ),
                )
            self._wait(
                "nodes Ready and schedulable",
                self._nodes_ready,
                deadline=deadline,
                blame="kwok" if self.nodes else "kubelet",
            )
            self._wait(
                "ServiceAccount default/default (controller-manager at work)",
                self._default_service_account,
                deadline=deadline,
                blame="kube-controller-manager",
            )
            self._wait(
                "kube-scheduler /healthz",
                lambda: self._component_healthy("kube-scheduler"),
                deadline=deadline,
                blame="kube-scheduler",
            )
            if self.storage_provisioner:
                create_default_storage_class(
                    self.access.api(),
                    provisioner=(
                        nodeconfig.VOLUME_PROVISIONER
                        if self.node is not None
                        else HOSTPATH_PROVISIONER
                    ),
                )
            self._write_state()
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - self.started_at

    def _prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("pki", "logs", "etcd", "kcm", "scheduler"):
            (self.workdir / sub).mkdir(mode=0o700, exist_ok=True)
        names = ("etcd-client", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok")
        self.ports = dict(zip(names, free_loopback_ports(len(names)), strict=True))
        if self.node is not None:
            self.node.prepare_host()
        server = f"https://{self.host}:{self.ports['apiserver']}"
        self._access = ClusterAccess(workdir=self.workdir, server=server)
        pki = self.workdir / "pki"

        ca = CertificateAuthority.create("traderbot-local-ca")
        ca.pair.write(cert_path=pki / "ca.crt", key_path=pki / "ca.key")
        ca.issue(
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=(LOOPBACK, SERVICE_IP, *((self.host,) if self.node is not None else ())),
            server=True,
        ).write(cert_path=pki / "apiserver.crt", key_path=pki / "apiserver.key")
        # The aggregation layer's own CA: API servers behind the aggregator (and the
        # delegated authentication of the controller-manager and scheduler) trust
        # requests the front proxy signs with it.
        front_proxy = CertificateAuthority.create("traderbot-front-proxy-ca")
        (pki / "front-proxy-ca.crt").write_bytes(front_proxy.cert_pem)
        front_proxy.issue("front-proxy-client", client=True).write(
            cert_path=pki / "front-proxy-client.crt", key_path=pki / "front-proxy-client.key"
        )
        private, public = service_account_keys()
        (pki / "sa.key").touch(mode=0o600)
        (pki / "sa.key").write_bytes(private)
        (pki / "sa.pub").write_bytes(public)

        identities = {
            "admin": ("traderbot-admin", ("system:masters",)),
            "kube-controller-manager": ("system:kube-controller-manager", ()),
            "kube-scheduler": ("system:kube-scheduler", ()),
            # kwok plays every kubelet at once; the Node authorizer only knows
            # one node per identity, so it gets admin rights instead.
            "kwok": ("traderbot-kwok", ("system:masters",)),
        }
        for file_name, (user, groups) in identities.items():
            pair = ca.issue(user, organizations=groups, client=True)
            if file_name == "admin":
                pair.write(cert_path=pki / "admin.crt", key_path=pki / "admin.key")
                target = self.workdir / "kubeconfig"
            else:
                target = self.workdir / f"{file_name}.kubeconfig"
            config = _kubeconfig(
                server=server, ca_pem=ca.cert_pem, user=_cert_user(pair), name=user
            )
            _write_private(target, json.dumps(config, indent=2))

        if self.node is not None:

            def write_kubeconfig(target: Path, user: str, groups: tuple[str, ...]) -> None:
                pair = ca.issue(user, organizations=groups, client=True)
                config = _kubeconfig(
                    server=server, ca_pem=ca.cert_pem, user=_cert_user(pair), name=user
                )
                _write_private(target, json.dumps(config, indent=2))

            self.node.issue_credentials(ca=ca, write_kubeconfig=write_kubeconfig)
            self.node.write_files()

        stages = resources.files("traderbot_devtools").joinpath("kwok/stages.yaml")
        (self.workdir / "kwok-stages.yaml").write_text(stages.read_text())

    def _etcd_args(self) -> list[str]:
        client = f"http://{LOOPBACK}:{self.ports['etcd-client']}"
        peer = f"http://{LOOPBACK}:{self.ports['etcd-peer']}"
        return [
            str(self.binaries.etcd),
            "--name=traderbot",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=traderbot={peer}",
            "--initial-cluster-state=new",
            # A test cluster needs no durability; fsync dominates its latency.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        args = self._loopback_apiserver_args()
        if self.node is None:
            return args
        # Served on the node IP, reachable by pods, with the `kubernetes` Service's
        # endpoints kept by the lease reconciler.
        replaced = {"--bind-address", "--advertise-address", "--endpoint-reconciler-type"}
        kept = [a for a in args if a.split("=", 1)[0] not in replaced]
        return kept + self.node.apiserver_args()

    def _loopback_apiserver_args(self) -> list[str]:
        pki = self.workdir / "pki"
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers=http://{LOOPBACK}:{self.ports['etcd-client']}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            "--allow-privileged=true",
            # The `kubernetes` Service would point at 127.0.0.1, which Endpoints reject.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ]

    def _controller_manager_args(self) -> list[str]:
        pki = self.workdir / "pki"
        kubeconfig = self.workdir / "kube-controller-manager.kubeconfig"
        # With a real node the harness's own provisioner serves volumes.
        in_tree_provisioner = self.storage_provisioner and self.node is None
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={self.ports['kcm']}",
            f"--cert-dir={self.workdir / 'kcm'}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--controllers={','.join(CONTROLLERS)}",
            "--cluster-name=traderbot-local",
            "--profiling=false",
            f"--enable-hostpath-provisioner={str(in_tree_provisioner).lower()}",
        ]

    def _scheduler_args(self) -> list[str]:
        kubeconfig = self.workdir / "kube-scheduler.kubeconfig"
        return [
            str(self.binaries.kube_scheduler),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={self.ports['scheduler']}",
            f"--cert-dir={self.workdir / 'scheduler'}",
            "--leader-elect=false",
            "--profiling=false",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            str(self.binaries.kwok),
            f"--kubeconfig={self.workdir / 'kwok.kubeconfig'}",
            f"--config={self.workdir / 'kwok-stages.yaml'}",
            *(
                # Beside a real node kwok must leave kubelet's Node alone.
                [
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                ]
                if self.node is not None
                else ["--manage-all-nodes=true"]
            ),
            f"--server-address={LOOPBACK}:{self.ports['kwok']}",
            f"--node-ip={LOOPBACK}",
            f"--node-port={self.ports['kwok']}",
            f"--cidr={POD_CIDR}",
            "--node-lease-duration-seconds=40",
        ]

    def _launch(
        self, name: str, args: list[str], extra_env: Mapping[str, str] | None = None
    ) -> Component:
        log_path = self.workdir / "logs" / f"{name}.log"
        log = log_path.open("ab")
        component = Component(name=name, args=args, log_path=log_path, _log=log)
        env = dict(os.environ)
        env["HOME"] = str(self.workdir)  # kwok reads ~/.kwok; keep it ours
        env.update(extra_env or {})
        component.process = subprocess.Popen(  # noqa: S603 - our own binaries, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
            start_new_session=True,
            preexec_fn=_pdeathsig_hook() if self.die_with_parent else None,  # noqa: PLW1509
        )
        self.components[name] = component
        return component

    def _wait(self, what: str, check: Callable[[], bool], *, deadline: float, blame: str) -> None:
        """Poll ``check`` until it holds; fail fast if any component exits."""
        while True:
            for component in self.components.values():
                code = component.exited()
                if code is not None:
                    raise ClusterStartError(
                        f"{component.name} exited with code {code} while waiting for {what}; "
                        f"last lines of {component.log_path}:\n{component.tail()}"
                    )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if check():
                    return
            if time.monotonic() > deadline:
                culprit = self.components.get(blame)
                tail = culprit.tail() if culprit else "(not started)"
                where = culprit.log_path if culprit else blame
                raise ClusterStartError(
                    f"timed out after {self.start_timeout:.0f}s waiting for {what}; "
                    f"last lines of {where}:\n{tail}"
                )
            time.sleep(0.1)

    def _apiserver_ready(self) -> bool:
        status, _ = self.access.api().request("GET", "/readyz", timeout=2.0)
        return status == http.HTTPStatus.OK

    def _create_nodes(self) -> None:
        api = self.access.api()
        for name in self.nodes:
            status, body = api.request(
                "POST",
                "/api/v1/nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                        },
                        "annotations": {
                            "kwok.x-k8s.io/node": "fake",
                            "node.alpha.kubernetes.io/ttl": "0",
                        },
                    },
                },
            )
            if status not in {http.HTTPStatus.CREATED, http.HTTPStatus.CONFLICT}:
                raise ClusterStartError(f"creating Node {name} failed ({status}): {body}")

    def _nodes_ready(self) -> bool:
        api = self.access.api()
        for name in self.node_names:
            status, node = api.request("GET", f"/api/v1/nodes/{name}", timeout=2.0)
            if status != http.HTTPStatus.OK:
                return False
            conditions = node.get("status", {}).get("conditions", [])
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            taints = node.get("spec", {}).get("taints", [])
            if not ready or any(t["key"] == "node.kubernetes.io/not-ready" for t in taints):
                return False
        return True

    def _default_service_account(self) -> bool:
        status, _ = self.access.api().request(
            "GET", "/api/v1/namespaces/default/serviceaccounts/default", timeout=2.0
        )
        return status == http.HTTPStatus.OK

    def _component_healthy(self, name: str) -> bool:
        port = self.ports["scheduler" if name == "kube-scheduler" else "kcm"]
        # NB: their serving certificates are self-signed; this is a liveness probe
        # of our own child on loopback, not a trust decision.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(LOOPBACK, port, context=context, timeout=2.0)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == http.HTTPStatus.OK
        finally:
            conn.close()

    def _write_state(self) -> None:
        state = {
            "server": self.access.server,
            "kubeconfig": str(self.kubeconfig),
            "ports": self.ports,
            "nodes": list(self.nodes),
            "storage_provisioner": self.storage_provisioner,
            "real_node": self.node.teardown_record() if self.node is not None else None,
            "processes": [
                {"name": c.name, "pid": c.pid, "executable": _executable(c.args[0])}
                for c in self.components.values()
            ],
        }
        (self.workdir / STATE_FILE).write_text(json.dumps(state, indent=2))

    # -- stop -----------------------------------------------------------------

    def stop(self) -> None:
        """Stop every process this object started; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        records = {
            name: (c.process.pid, None)
            for name, c in self.components.items()
            if c.process is not None
        }
        needs_api = self.storage_provisioner or self.node is not None
        api = self._access.api() if self._access is not None and needs_api else None
        _stop_in_order(
            records,
            api=api,
            real_node=self.node.teardown_record() if self.node is not None else None,
        )
        for component in self.components.values():
            if component.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    component.process.wait(timeout=5)
            if component._log is not None:
                component._log.close()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def create_default_storage_class(
    api: ApiClient, *, provisioner: str = HOSTPATH_PROVISIONER
) -> None:
    """Create the default StorageClass served by the host-path provisioner.

    With a real node, ``provisioner`` is the harness's own (``testing.provisioner``).
    """
    status, body = api.request(
        "POST",
        "/apis/storage.k8s.io/v1/storageclasses",
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": provisioner,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        },
    )
    if status not in {http.HTTPStatus.CREATED, http.HTTPStatus.CONFLICT}:
        raise ClusterStartError(f"creating StorageClass {STORAGE_CLASS} failed ({status}): {body}")


def provisioned_volume_paths(api: ApiClient) -> list[Path]:
    """Return the folders the host-path provisioner made for this cluster's volumes.

    NB: only paths under ``HOSTPATH_ROOT`` of volumes the provisioner itself
    annotated count, so a hand-made hostPath volume is never touched.
    """
    status, body = api.request("GET", "/api/v1/persistentvolumes", timeout=5.0)
    if status != http.HTTPStatus.OK:
        raise RuntimeError(f"listing PersistentVolumes failed ({status}): {body}")
    paths = []
    for volume in body.get("items", []):
        annotations = volume["metadata"].get("annotations") or {}
        host_path = (volume["spec"].get("hostPath") or {}).get("path")
        if annotations.get("pv.kubernetes.io/provisioned-by") != HOSTPATH_PROVISIONER:
            continue
        if host_path and Path(host_path).parent == HOSTPATH_ROOT:
            paths.append(Path(host_path))
    return paths


def _remove_volume_folders(paths: Sequence[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):  # still holds another cluster's volumes
        HOSTPATH_ROOT.rmdir()


def _executable(arg: str) -> str:
    """The real path of a command, found on PATH when it has no folder."""
    found = shutil.which(arg) if os.sep not in arg else arg
    return os.path.realpath(found or arg)


def _stop_in_order(
    records: Mapping[str, tuple[int, str | None]],
    *,
    api: ApiClient | None,
    addons: Sequence[tuple[int, str | None]] = (),
    real_node: Mapping[str, Any] | None = None,
) -> list[int]:
    """Stop add-ons (the demo's operator), then the cluster, and remove its volumes.

    NB: the controller-manager stops first so that it provisions nothing after
    the volumes are listed; the API server is still up to list them. With a
    real node it stops with the scheduler before the node is drained (nothing
    is re-created), and the pods' containers stop before kubelet and
    containerd: a container outlives both.
    """
    survivors = terminate_pids(addons)
    paths: list[Path] = []
    rest = dict(records)

    def stop(*names: str) -> list[int]:
        return terminate_pids([rest.pop(name) for name in names if name in rest])

    if real_node is not None:
        survivors += stop("kube-controller-manager", "kube-scheduler", "kwok")
        node_alive = "kubelet" in rest and _pid_alive(*rest["kubelet"])
        if api is not None and node_alive:
            realnode.drain(api, str(real_node["node_name"]))
        survivors += stop("volume-provisioner", "coredns", "kube-proxy", "kubelet")
        socket_path = Path(real_node["containerd_socket"])
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            realnode.kill_containers(socket_path)
        survivors += stop("containerd")
        realnode.kill_leftovers(socket_path, node_dir=Path(real_node["node_dir"]))
        # The lease reconciler removes the API server's endpoint on the way out:
        # with etcd gone it would wait out its whole grace period.
        survivors += stop("kube-apiserver")
    elif api is not None:
        survivors += stop("kube-controller-manager")
        try:
            paths = provisioned_volume_paths(api)
        except (OSError, RuntimeError, http.client.HTTPException):
            paths = []  # the API server is gone: nothing to learn the paths from
    survivors += terminate_pids(list(rest.values()))
    _remove_volume_folders(paths)
    if real_node is not None:
        problems = realnode.clean_host(Path(real_node["node_dir"]))
        if problems:
            warnings.warn(f"real node teardown left: {'; '.join(problems)}", stacklevel=2)
    return survivors


def _load_state(workdir: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((workdir / STATE_FILE).read_text())
    return state


def stop_detached(workdir: Path, *, remove: bool = True) -> list[int]:
    """Stop a cluster started by ``traderbot-cluster up`` from its state file.

    Add-ons recorded with ``record_addon`` (the demo's operator) stop first.
    Returns the pids that survived (empty on success).
    """
    state_path = workdir / STATE_FILE
    if not state_path.exists():
        return []
    state = _load_state(workdir)
    records: dict[str, tuple[int, str | None]] = {
        str(p["name"]): (int(p["pid"]), str(p["executable"])) for p in state["processes"]
    }
    addons = [(int(p["pid"]), str(p["executable"])) for p in state.get("addons", [])]
    real_node = state.get("real_node")
    needs_api = state.get("storage_provisioner") or real_node is not None
    api = ClusterAccess.load(workdir).api() if needs_api else None
    survivors = _stop_in_order(records, api=api, addons=addons, real_node=real_node)
    if remove and not survivors:
        shutil.rmtree(workdir, ignore_errors=True)
    return survivors


def record_addon(
    workdir: Path, *, name: str, pid: int, endpoints: Mapping[str, str] | None = None
) -> None:
    """Record a process started against a detached cluster so ``down`` stops it too.

    ``endpoints`` (name -> URL) says where it serves, for ``status`` and for a
    later run that finds it still running. The record replaces an earlier one
    of the same name.
    """
    state = _load_state(workdir)
    entry = {
        "name": name,
        "pid": pid,
        "executable": str(Path(f"/proc/{pid}/exe").readlink()),
        "endpoints": dict(endpoints or {}),
    }
    state["addons"] = [a for a in state.get("addons", []) if a["name"] != name] + [entry]
    tmp = workdir / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(workdir / STATE_FILE)


def addon_endpoints(workdir: Path, name: str) -> dict[str, str]:
    """Return the endpoints recorded for an add-on (empty when none or no such add-on)."""
    for proc in _load_state(workdir).get("addons", []):
        if proc["name"] == name:
            return {str(key): str(url) for key, url in proc.get("endpoints", {}).items()}
    return {}


def detached_status(workdir: Path) -> Iterator[tuple[str, int, bool]]:
    """Yield (component, pid, alive) for each control-plane process of a detached cluster."""
    for proc in _load_state(workdir)["processes"]:
        pid = int(proc["pid"])
        yield str(proc["name"]), pid, _pid_alive(pid, str(proc["executable"]))


def addon_status(workdir: Path) -> Iterator[tuple[str, int, bool]]:
    """Yield (name, pid, alive) for each add-on recorded with ``record_addon``."""
    for proc in _load_state(workdir).get("addons", []):
        pid = int(proc["pid"])
        yield str(proc["name"]), pid, _pid_alive(pid, str(proc["executable"]))


def detached_running(workdir: Path) -> bool:
    """Whether a detached cluster runs from ``workdir`` (every control-plane process alive)."""
    if not (workdir / STATE_FILE).exists():
        return False
    return all(alive for _, _, alive in detached_status(workdir))


def detached_has_real_node(workdir: Path) -> bool:
    """Whether the detached cluster in ``workdir`` runs a real node."""
    return _load_state(workdir).get("real_node") is not None


def detached_has_storage(workdir: Path) -> bool:
    """Whether the detached cluster in ``workdir`` was started with the storage provisioner."""
    return bool(_load_state(workdir).get("storage_provisioner"))


def ensure_detached(
    workdir: Path,
    *,
    binaries: Binaries,
    nodes: Sequence[str] | None = None,
    storage_provisioner: bool = True,
    real_node: bool = False,
    images: Sequence[Path] = (),
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE,
) -> LocalCluster | None:
    """Start a detached cluster in ``workdir`` unless one already runs there.

    Returns the new cluster, or None when a running one was found (it is reused
    as it is). Leftovers of a cluster that died are stopped and removed first.
    Raises ClusterStartError with the failing component's log tail.
    """
    if detached_running(workdir):
        return None
    if workdir.exists():
        stop_detached(workdir, remove=False)
        shutil.rmtree(workdir)
    cluster = LocalCluster(
        binaries=binaries,
        workdir=workdir,
        nodes=nodes,
        die_with_parent=False,
        keep_workdir=True,
        storage_provisioner=storage_provisioner,
        real_node=real_node,
        images=images,
        sandbox_image=sandbox_image,
    )
    cluster.start()
    return cluster
