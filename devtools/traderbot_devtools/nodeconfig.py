"""Pure builders of the real node's configuration files.

Every file the harness writes for containerd, the CNI plugins, kubelet,
kube-proxy and CoreDNS is built here as data from a ``NodeLayout`` (where
things live, which addresses and ports they use), so the choices that keep the
node inside this machine are visible and unit-tested without starting anything.

NB: nothing here touches the host; ``realnode`` writes these files and
``hostnet`` applies the network rules.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traderbot_devtools.provisioner import PROVISIONER

# The bridge is unmistakably ours: `tbr` = TraderBot bridge. Its address is the
# node IP that kubelet, the API server and CoreDNS serve on.
BRIDGE = "tbr0"
NODE_CIDR = "10.88.0.0/16"
NODE_IP = "10.88.0.1"
CLUSTER_DOMAIN = "cluster.local"
NODE_NAME = "traderbot-node"
CNI_NETWORK = "traderbot"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
VOLUME_PROVISIONER = PROVISIONER
# The node's components' identities: the Node authorizer reads `system:node:<name>`.
NODE_GROUP = "system:nodes"
KUBE_PROXY_USER = "system:kube-proxy"
COREDNS_USER = "traderbot-coredns"
PROVISIONER_USER = "traderbot-volume-provisioner"
KUBELET_CLIENT_USER = "traderbot-apiserver-kubelet-client"

# Chains the harness owns, in the mangle table: FORWARD and POSTROUTING there
# run before the filter table, where kube-proxy and the CNI plugins insert
# their ACCEPT rules, so nothing they add can let a packet past ours.
ISOLATION_CHAIN = "TRADERBOT-ISOLATE"
EGRESS_CHAIN = "TRADERBOT-EGRESS"


# NB: sun_path holds 108 bytes with its NUL; kubelet makes its pod-resources socket
# as <root-dir>/pod-resources/<up to 10 digits> and fails "bind: invalid argument"
# past that, deep inside a start-up that has already changed the host.
UNIX_SOCKET_PATH_MAX = 107
KUBELET_SOCKET_TAIL = "/pod-resources/" + "9" * 10


def socket_path_problem(node_dir: Path) -> str | None:
    """Say why ``node_dir`` is too deep for the node's unix sockets; None when it is not."""
    longest = f"{node_dir / 'kubelet'}{KUBELET_SOCKET_TAIL}"
    if len(longest.encode()) <= UNIX_SOCKET_PATH_MAX:
        return None
    return (
        f"the work folder {node_dir.parent} is too deep for the node's unix sockets: "
        f"kubelet's would be {len(longest.encode())} bytes, the limit is "
        f"{UNIX_SOCKET_PATH_MAX}; use a shorter --dir"
    )


@dataclass(frozen=True)
class NodeLayout:
    """Where the real node's files live and which addresses and ports it uses."""

    workdir: Path
    service_cidr: str
    kubelet_port: int
    kubelet_healthz_port: int
    proxy_healthz_port: int
    proxy_metrics_port: int
    dns_health_port: int
    dns_ready_port: int
    node_name: str = NODE_NAME
    bridge: str = BRIDGE
    node_ip: str = NODE_IP
    node_cidr: str = NODE_CIDR
    sandbox_image: str = ""

    @property
    def node_dir(self) -> Path:
        return self.workdir / "node"

    @property
    def containerd_root(self) -> Path:
        return self.node_dir / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.node_dir / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.node_dir / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.node_dir / "containerd.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.node_dir / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.node_dir / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.node_dir / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.node_dir / "kubelet-config.json"

    @property
    def pod_logs_dir(self) -> Path:
        return self.node_dir / "pod-logs"

    @property
    def resolv_conf(self) -> Path:
        return self.node_dir / "resolv.conf"

    @property
    def kube_proxy_config(self) -> Path:
        return self.node_dir / "kube-proxy-config.json"

    @property
    def corefile(self) -> Path:
        return self.node_dir / "Corefile"

    @property
    def volumes_dir(self) -> Path:
        return self.node_dir / "volumes"

    @property
    def pod_prefix_length(self) -> int:
        return ipaddress.ip_network(self.node_cidr).prefixlen


# -- TOML (containerd reads nothing else) --------------------------------------


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum()
    return key if bare else json.dumps(key)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def to_toml(document: Mapping[str, Any]) -> str:
    """Render nested dicts of strings, ints, bools and lists as TOML.

    NB: only what containerd's config needs (no dates, no arrays of tables);
    tables come after the plain keys of their parent, as TOML requires.
    """
    lines: list[str] = []

    def table(path: list[str], body: Mapping[str, Any]) -> None:
        plain = {k: v for k, v in body.items() if not isinstance(v, Mapping)}
        nested = {k: v for k, v in body.items() if isinstance(v, Mapping)}
        if path and (plain or not nested):
            lines.append("")
            lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
        lines.extend(f"{_toml_key(key)} = {_toml_value(value)}" for key, value in plain.items())
        for key, value in nested.items():
            table([*path, key], value)

    table([], document)
    return "\n".join(lines).lstrip("\n") + "\n"


# -- containerd ----------------------------------------------------------------

_CRI = "io.containerd.grpc.v1.cri"


def containerd_config(layout: NodeLayout) -> dict[str, Any]:
    """containerd's config: every path in the work folder, CRI for kubelet.

    NB: ``restrict_oom_score_adj``: the sandbox has no CAP_SYS_RESOURCE, so the
    pause container's oom_score_adj of -998 would be refused and runc fail
    ("can't get final child's PID from pipe"); restricted, no container asks
    for less than containerd's own. ``netns_mounts_under_state_dir`` keeps the
    pods' network namespaces in the work folder instead of /var/run/netns. The
    opt plugin would otherwise create /opt/containerd. Left outside the work
    folder: the shims' sockets (``/run/containerd/s``, fixed in containerd 1.6;
    each shim removes its own).
    """
    return {
        "version": 2,
        "root": str(layout.containerd_root),
        "state": str(layout.containerd_state),
        "oom_score": 0,
        # Snapshotters and plugins this node never uses: less start-up noise.
        "disabled_plugins": [
            "io.containerd.snapshotter.v1.aufs",
            "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.snapshotter.v1.devmapper",
            "io.containerd.snapshotter.v1.zfs",
            "io.containerd.tracing.processor.v1.otlp",
            "io.containerd.internal.v1.tracing",
        ],
        "grpc": {"address": str(layout.containerd_socket)},
        "plugins": {
            _CRI: {
                "sandbox_image": layout.sandbox_image,
                "restrict_oom_score_adj": True,
                "netns_mounts_under_state_dir": True,
                "disable_tcp_service": True,
                "stream_server_address": "127.0.0.1",
                "stream_server_port": "0",
                "enable_selinux": False,
                "tolerate_missing_hugetlb_controller": True,
                "disable_hugetlb_controller": True,
                "containerd": {
                    "snapshotter": "overlayfs",
                    "default_runtime_name": "runc",
                    "runtimes": {
                        "runc": {
                            "runtime_type": "io.containerd.runc.v2",
                            # runc's state, else in /run/containerd/runc
                            "options": {
                                "SystemdCgroup": False,
                                "Root": str(layout.containerd_state / "runc"),
                            },
                        }
                    },
                },
                "cni": {
                    "bin_dir": str(CNI_BIN_DIR),
                    "conf_dir": str(layout.cni_conf_dir),
                    "max_conf_num": 1,
                },
                # An empty hosts folder: no mirror, no credentials. Pulls are
                # sent to a dead local proxy (see realnode), never off the machine.
                "registry": {"config_path": str(layout.node_dir / "containerd" / "certs.d")},
            },
            "io.containerd.internal.v1.opt": {"path": str(layout.node_dir / "containerd" / "opt")},
        },
    }


# -- CNI -----------------------------------------------------------------------


def cni_config(layout: NodeLayout) -> dict[str, Any]:
    """The pod network: our existing bridge, host-local addresses, no masquerade.

    NB: ``ipMasq: false``: a pod's packet never leaves with the node's address.
    Pods get no default route: besides their own subnet (the bridge, with the
    node IP as gateway) they can reach the Service range only, so a packet to
    any other address fails in the pod itself ("network unreachable"); the
    harness's rules drop anything forwarded elsewhere all the same.
    ``hairpinMode`` lets a pod reach itself through its own Service. IPAM state
    stays in the work folder.
    """
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": layout.node_cidr, "gateway": layout.node_ip}]],
                    "routes": [{"dst": layout.service_cidr}],
                    "dataDir": str(layout.cni_ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


# -- kubelet -------------------------------------------------------------------


def kubelet_config(layout: NodeLayout, *, pki: Path) -> dict[str, Any]:
    """The KubeletConfiguration of the real node.

    NB: image garbage collection never runs (thresholds at 100/99 percent, disk
    eviction thresholds at 1%): the imported images cannot be pulled again.
    ``oomScoreAdj: 0`` because lowering it needs CAP_SYS_RESOURCE. Every path is
    in the work folder, and pods resolve names through our CoreDNS on the node
    IP, even with ``dnsPolicy: Default`` (``resolvConf`` is ours).
    """
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.node_ip,
        "port": layout.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": layout.kubelet_healthz_port,
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "30s"},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "30s", "cacheUnauthorizedTTL": "5s"},
        },
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": True,
        "failSwapOn": False,
        "failCgroupV1": False,
        "oomScoreAdj": 0,
        "clusterDNS": [layout.node_ip],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(layout.resolv_conf),
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "imageMinimumGCAge": "87600h",
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
            "imagefs.inodesFree": "1%",
        },
        "volumePluginDir": str(layout.node_dir / "kubelet-plugins"),
        "podLogsDir": str(layout.pod_logs_dir),
        "registerNode": True,
        "nodeStatusUpdateFrequency": "5s",
        "nodeStatusReportFrequency": "1m",
        "syncFrequency": "10s",
        "serializeImagePulls": False,
        "maxPods": 110,
        "protectKernelDefaults": False,
        "shutdownGracePeriod": "0s",
        "logging": {"format": "text"},
    }


def resolv_conf(layout: NodeLayout) -> str:
    """The resolv.conf kubelet gives ``dnsPolicy: Default`` pods: our CoreDNS only.

    NB: never the host's, whose resolver is off this machine.
    """
    return f"nameserver {layout.node_ip}\noptions ndots:1\n"


# -- kube-proxy ----------------------------------------------------------------


def kube_proxy_config(
    layout: NodeLayout, *, kubeconfig: Path, masquerade_all: bool
) -> dict[str, Any]:
    """The KubeProxyConfiguration: iptables mode, every sysctl left alone.

    NB: the conntrack values are 0 so that kube-proxy changes no conntrack
    sysctl; ``localhostNodePorts: false`` so it does not set route_localnet;
    NodePorts answer on the node IP only. ``masquerade_all`` is the fallback when
    bridged traffic does not pass through iptables (no br_netfilter): then the
    reply of a pod reached through a Service would bypass the un-DNAT.
    """
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "hostnameOverride": layout.node_name,
        "bindAddress": layout.node_ip,
        "clusterCIDR": layout.node_cidr,
        "healthzBindAddress": f"127.0.0.1:{layout.proxy_healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{layout.proxy_metrics_port}",
        "nodePortAddresses": [f"{layout.node_ip}/32"],
        "oomScoreAdj": 0,
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {
            "masqueradeAll": masquerade_all,
            "localhostNodePorts": False,
            "syncPeriod": "30s",
            "minSyncPeriod": "0s",
        },
        "detectLocalMode": "ClusterCIDR",
    }


# -- CoreDNS -------------------------------------------------------------------


def _reverse_zones(cidrs: Sequence[str]) -> list[str]:
    """The in-addr.arpa zones that cover each CIDR (on octet boundaries)."""
    zones = []
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr)
        octets = network.network_address.exploded.split(".")[: network.prefixlen // 8]
        zones.append(".".join(reversed(octets)) + ".in-addr.arpa")
    return zones


def corefile(layout: NodeLayout, *, kubeconfig: Path) -> str:
    """CoreDNS's Corefile: cluster.local and the reverse zones, nothing else.

    NB: no ``forward``: a name outside these zones matches no server block and
    gets REFUSED, so no query ever leaves the machine. Health and readiness
    answer on loopback only.
    """
    zones = [CLUSTER_DOMAIN, *_reverse_zones([layout.service_cidr, layout.node_cidr])]
    return "\n".join(
        [
            f"{' '.join(zones)}:53 {{",
            f"    bind {layout.node_ip}",
            "    errors",
            f"    health 127.0.0.1:{layout.dns_health_port}",
            f"    ready 127.0.0.1:{layout.dns_ready_port}",
            f"    kubernetes {' '.join(zones)} {{",
            f"        kubeconfig {kubeconfig} {COREDNS_USER}",
            "        pods disabled",
            "        ttl 5",
            "    }",
            "    cache 5",
            "}",
            "",
        ]
    )


# -- RBAC of the node's own components ------------------------------------------


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"traderbot.dev/local-cluster": "real-node"}},
        "rules": rules,
    }


def _binding(name: str, *, role: str, user: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"traderbot.dev/local-cluster": "real-node"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def node_rbac() -> list[dict[str, Any]]:
    """ClusterRoles and bindings of kube-proxy, CoreDNS, the provisioner, the API server.

    NB: least privilege: CoreDNS reads Services, EndpointSlices and Namespaces;
    the provisioner manages PersistentVolumes and reads claims and classes;
    kube-proxy and the API server's kubelet client get the built-in roles made
    for them (system:node-proxier, system:kubelet-api-admin). kubelet needs no
    binding: the Node authorizer serves ``system:node:<name>``.
    """
    read = ["get", "list", "watch"]
    return [
        _cluster_role(
            "traderbot:coredns",
            [
                {
                    "apiGroups": [""],
                    "resources": ["services", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        ),
        _binding("traderbot:coredns", role="traderbot:coredns", user=COREDNS_USER),
        _cluster_role(
            "traderbot:volume-provisioner",
            [
                {
                    "apiGroups": [""],
                    "resources": ["persistentvolumes"],
                    "verbs": [*read, "create", "delete"],
                },
                {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": read},
                {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": read},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            ],
        ),
        _binding(
            "traderbot:volume-provisioner",
            role="traderbot:volume-provisioner",
            user=PROVISIONER_USER,
        ),
        _binding("traderbot:kube-proxy", role="system:node-proxier", user=KUBE_PROXY_USER),
        _binding(
            "traderbot:apiserver-kubelet-client",
            role="system:kubelet-api-admin",
            user=KUBELET_CLIENT_USER,
        ),
    ]


# -- the network rule ------------------------------------------------------------


def isolation_rules(layout: NodeLayout) -> dict[str, list[list[str]]]:
    """iptables rules (table -> rules as argument lists) that keep pods on the machine.

    In the mangle table, which runs before kube-proxy's and the CNI plugins'
    filter rules:

    * FORWARD: a packet from the bridge to any other interface, or from any
      other interface to the bridge, is dropped; so is a forwarded packet still
      bound for the Service range (no Service matched it: kube-proxy's DNAT
      would have rewritten it to a pod);
    * POSTROUTING: a packet that was addressed to a Service IP and leaves by
      neither the bridge nor loopback is dropped (a Service whose endpoints
      are off the machine stays unreachable from the host too).
    """
    bridge = layout.bridge
    return {
        "mangle": [
            ["-N", ISOLATION_CHAIN],
            ["-A", ISOLATION_CHAIN, "-i", bridge, "!", "-o", bridge, "-j", "DROP"],
            ["-A", ISOLATION_CHAIN, "!", "-i", bridge, "-o", bridge, "-j", "DROP"],
            ["-A", ISOLATION_CHAIN, "-d", layout.service_cidr, "-j", "DROP"],
            ["-I", "FORWARD", "1", "-j", ISOLATION_CHAIN],
            ["-N", EGRESS_CHAIN],
            ["-A", EGRESS_CHAIN, "-o", bridge, "-j", "RETURN"],
            ["-A", EGRESS_CHAIN, "-o", "lo", "-j", "RETURN"],
            [
                "-A",
                EGRESS_CHAIN,
                "-m",
                "conntrack",
                "--ctorigdst",
                layout.service_cidr,
                "-j",
                "DROP",
            ],
            ["-I", "POSTROUTING", "1", "-j", EGRESS_CHAIN],
        ]
    }


def isolation_rules_v6(layout: NodeLayout) -> dict[str, list[list[str]]]:
    """ip6tables rules: nothing IPv6 is ever forwarded to or from the bridge.

    NB: the pod network is IPv4 only; this is defence in depth should anything
    turn IPv6 forwarding on while the node runs.
    """
    bridge = layout.bridge
    return {
        "mangle": [
            ["-N", ISOLATION_CHAIN],
            ["-A", ISOLATION_CHAIN, "-i", bridge, "-j", "DROP"],
            ["-A", ISOLATION_CHAIN, "-o", bridge, "-j", "DROP"],
            ["-I", "FORWARD", "1", "-j", ISOLATION_CHAIN],
        ]
    }
