"""The real node's config files, built as data: the choices that keep it on this machine."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import pytest

from traderbot_devtools import nodeconfig
from traderbot_devtools.nodeconfig import NodeLayout

WORKDIR = Path("/tmp/traderbot-cluster-x")  # noqa: S108 - a path in data, nothing is written


@pytest.fixture
def layout() -> NodeLayout:
    return NodeLayout(
        workdir=WORKDIR,
        service_cidr="10.96.0.0/24",
        kubelet_port=10250,
        kubelet_healthz_port=10248,
        proxy_healthz_port=10256,
        proxy_metrics_port=10249,
        dns_health_port=8080,
        dns_ready_port=8181,
        sandbox_image="traderbot.local/pause:3.10",
    )


def test_toml_round_trips_through_a_real_parser() -> None:
    document = {
        "version": 2,
        "root": 'a "quoted" path',
        "list": ["a", "b"],
        "plugins": {
            "io.containerd.grpc.v1.cri": {"flag": True, "nested": {"n": 1}},
            "empty": {},
        },
    }
    assert tomllib.loads(nodeconfig.to_toml(document)) == document


def test_containerd_keeps_every_path_in_the_work_folder(layout: NodeLayout) -> None:
    config = tomllib.loads(nodeconfig.to_toml(nodeconfig.containerd_config(layout)))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    paths = [
        config["root"],
        config["state"],
        config["grpc"]["address"],
        cri["cni"]["conf_dir"],
        cri["registry"]["config_path"],
        runc["Root"],
        config["plugins"]["io.containerd.internal.v1.opt"]["path"],
    ]
    assert all(Path(p).is_relative_to(WORKDIR) for p in paths), paths
    assert cri["netns_mounts_under_state_dir"] is True


def test_containerd_runs_without_cap_sys_resource(layout: NodeLayout) -> None:
    """The pause container's oom_score_adj -998 is refused without CAP_SYS_RESOURCE."""
    config = nodeconfig.containerd_config(layout)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "traderbot.local/pause:3.10"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"


def test_pods_get_no_masquerade_and_no_default_route(layout: NodeLayout) -> None:
    bridge, portmap = nodeconfig.cni_config(layout)["plugins"]
    assert bridge["bridge"] == "tbr0"
    assert bridge["ipMasq"] is False
    assert bridge["isGateway"] is True
    assert "isDefaultGateway" not in bridge
    assert bridge["ipam"]["routes"] == [{"dst": "10.96.0.0/24"}]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]]
    assert Path(bridge["ipam"]["dataDir"]).is_relative_to(WORKDIR)
    assert portmap["type"] == "portmap"


def test_the_node_ip_is_on_the_bridge_not_loopback(layout: NodeLayout) -> None:
    node_ip = ipaddress.ip_address(layout.node_ip)
    assert not node_ip.is_loopback
    assert node_ip in ipaddress.ip_network(layout.node_cidr)
    assert layout.pod_prefix_length == 16


def test_kubelet_serves_on_the_node_ip_with_webhook_auth_and_no_read_only_port(
    layout: NodeLayout,
) -> None:
    config = nodeconfig.kubelet_config(layout, pki=WORKDIR / "pki")
    assert config["address"] == "10.88.0.1"
    assert config["readOnlyPort"] == 0
    assert config["healthzBindAddress"] == "127.0.0.1"
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authentication"]["webhook"]["enabled"] is True
    assert config["authentication"]["x509"]["clientCAFile"] == str(WORKDIR / "pki" / "ca.crt")
    assert config["authorization"]["mode"] == "Webhook"
    assert config["tlsCertFile"] == str(WORKDIR / "pki" / "kubelet-serving.crt")
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["failSwapOn"] is False
    assert config["failCgroupV1"] is False


def test_kubelet_never_collects_the_imported_images(layout: NodeLayout) -> None:
    config = nodeconfig.kubelet_config(layout, pki=WORKDIR / "pki")
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["imageGCLowThresholdPercent"] < 100
    for signal in ("imagefs.available", "nodefs.available"):
        assert config["evictionHard"][signal] == "1%"


def test_pods_resolve_through_our_coredns_even_with_dns_policy_default(
    layout: NodeLayout,
) -> None:
    config = nodeconfig.kubelet_config(layout, pki=WORKDIR / "pki")
    assert config["clusterDNS"] == ["10.88.0.1"]
    assert config["clusterDomain"] == "cluster.local"
    assert config["resolvConf"] == str(layout.resolv_conf)
    assert nodeconfig.resolv_conf(layout).splitlines()[0] == "nameserver 10.88.0.1"
    assert "search" not in nodeconfig.resolv_conf(layout)


def test_every_kubelet_path_is_in_the_work_folder(layout: NodeLayout) -> None:
    config = nodeconfig.kubelet_config(layout, pki=WORKDIR / "pki")
    for key in ("volumePluginDir", "podLogsDir", "resolvConf", "tlsCertFile"):
        assert Path(config[key]).is_relative_to(WORKDIR), key
    assert config["containerRuntimeEndpoint"] == f"unix://{layout.containerd_socket}"


def test_kube_proxy_leaves_sysctls_alone_and_serves_node_ports_on_the_node_ip(
    layout: NodeLayout,
) -> None:
    config = nodeconfig.kube_proxy_config(
        layout, kubeconfig=WORKDIR / "kp.kubeconfig", masquerade_all=False
    )
    assert config["mode"] == "iptables"
    assert config["conntrack"]["maxPerCore"] == 0
    assert config["conntrack"]["min"] == 0
    assert config["conntrack"]["tcpEstablishedTimeout"] == "0s"
    assert config["iptables"]["localhostNodePorts"] is False
    assert config["nodePortAddresses"] == ["10.88.0.1/32"]
    assert config["clusterCIDR"] == "10.88.0.0/16"
    assert config["healthzBindAddress"].startswith("127.0.0.1:")
    assert config["hostnameOverride"] == layout.node_name


def test_kube_proxy_masquerades_everything_only_without_bridge_netfilter(
    layout: NodeLayout,
) -> None:
    with_fallback = nodeconfig.kube_proxy_config(
        layout, kubeconfig=WORKDIR / "kp", masquerade_all=True
    )
    assert with_fallback["iptables"]["masqueradeAll"] is True


def test_corefile_serves_cluster_local_and_reverse_zones_and_forwards_nothing(
    layout: NodeLayout,
) -> None:
    corefile = nodeconfig.corefile(layout, kubeconfig=WORKDIR / "coredns.kubeconfig")
    first = corefile.splitlines()[0]
    assert first == "cluster.local 0.96.10.in-addr.arpa 88.10.in-addr.arpa:53 {"
    assert "    bind 10.88.0.1" in corefile
    assert f"kubeconfig {WORKDIR / 'coredns.kubeconfig'} traderbot-coredns" in corefile
    assert "forward" not in corefile
    assert "health 127.0.0.1:8080" in corefile
    assert "ready 127.0.0.1:8181" in corefile


def test_coredns_may_only_read_services_endpointslices_and_namespaces() -> None:
    role = next(
        obj
        for obj in nodeconfig.node_rbac()
        if obj["kind"] == "ClusterRole" and obj["metadata"]["name"] == "traderbot:coredns"
    )
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("", "services", "list"),
        ("", "services", "watch"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
        ("discovery.k8s.io", "endpointslices", "list"),
        ("discovery.k8s.io", "endpointslices", "watch"),
    }


def test_each_node_identity_is_bound_to_its_own_role() -> None:
    bindings = {
        obj["subjects"][0]["name"]: obj["roleRef"]["name"]
        for obj in nodeconfig.node_rbac()
        if obj["kind"] == "ClusterRoleBinding"
    }
    assert bindings == {
        "traderbot-coredns": "traderbot:coredns",
        "traderbot-volume-provisioner": "traderbot:volume-provisioner",
        "system:kube-proxy": "system:node-proxier",
        "traderbot-apiserver-kubelet-client": "system:kubelet-api-admin",
    }


def test_isolation_drops_forwarding_off_the_bridge_before_any_accept(
    layout: NodeLayout,
) -> None:
    rules = nodeconfig.isolation_rules(layout)
    assert list(rules) == ["mangle"], "mangle runs before kube-proxy's filter rules"
    mangle = rules["mangle"]
    assert ["-I", "FORWARD", "1", "-j", "TRADERBOT-ISOLATE"] in mangle
    assert ["-A", "TRADERBOT-ISOLATE", "-i", "tbr0", "!", "-o", "tbr0", "-j", "DROP"] in mangle
    assert ["-A", "TRADERBOT-ISOLATE", "!", "-i", "tbr0", "-o", "tbr0", "-j", "DROP"] in mangle
    assert ["-A", "TRADERBOT-ISOLATE", "-d", "10.96.0.0/24", "-j", "DROP"] in mangle
    assert ["-I", "POSTROUTING", "1", "-j", "TRADERBOT-EGRESS"] in mangle
    egress = [rule for rule in mangle if rule[:2] == ["-A", "TRADERBOT-EGRESS"]]
    assert egress[-1][-2:] == ["-j", "DROP"]
    assert "--ctorigdst" in egress[-1]


def test_isolation_v6_forwards_nothing_to_or_from_the_bridge(layout: NodeLayout) -> None:
    mangle = nodeconfig.isolation_rules_v6(layout)["mangle"]
    assert ["-A", "TRADERBOT-ISOLATE", "-i", "tbr0", "-j", "DROP"] in mangle
    assert ["-A", "TRADERBOT-ISOLATE", "-o", "tbr0", "-j", "DROP"] in mangle


def test_a_work_folder_too_deep_for_the_nodes_sockets_is_refused_before_anything_starts() -> None:
    shallow = Path("/srv/tbn-abc/cluster/node")
    assert nodeconfig.socket_path_problem(shallow) is None
    deep = Path("/srv/pytest-of-root/pytest-219/test_down_restores_the_host_af0/cluster/node")
    problem = nodeconfig.socket_path_problem(deep)
    assert problem is not None
    assert "108 bytes, the limit is 107" in problem
    assert "shorter --dir" in problem
