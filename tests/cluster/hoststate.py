"""A snapshot of what a real node may change on the machine, to compare before and after.

Links, routes, network namespaces, iptables (both families) and nftables tables,
sysctls, mounts, cgroups, processes and the fixed folders kubelet, libcni and
containerd use. A few things other programs change all the time are left out
or narrowed to what could be the node's (see each field), so the comparison
holds on a machine where other work runs too.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

from traderbot_devtools import hostnet, realnode

# sysctls that move by themselves (counters, random values).
VOLATILE_SYSCTLS = re.compile(
    r"^(fs\.(dentry-state|file-nr|inode-nr|inode-state|quota\.\S+)|kernel\.(ns_last_pid|pty\.nr"
    r"|random\.\S+)|net\.netfilter\.nf_conntrack_count)\b"
)


def _lines(*args: str) -> tuple[str, ...]:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    return tuple(result.stdout.splitlines())


def _iptables(save: str) -> tuple[str, ...]:
    """Rules and chains, without the comment lines and packet counters."""
    return tuple(
        re.sub(r"\[\d+:\d+\]", "", line)
        for line in _lines(save)
        if line and not line.startswith("#")
    )


def _sysctls() -> tuple[str, ...]:
    return tuple(line for line in _lines("sysctl", "-a") if not VOLATILE_SYSCTLS.match(line))


def _node_processes(workdir: Path) -> tuple[str, ...]:
    """Processes that belong to a node: in a kubepods cgroup, or naming its files.

    NB: containerd's shims name the node's socket; another engine's shims do not.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroup = (entry / "cgroup").read_text()
        except OSError:
            continue
        if "kubepods" in cgroup or str(workdir) in cmdline:
            found.append(f"{entry.name} {cmdline.strip()}")
    return tuple(sorted(found))


def _mounts(workdir: Path) -> tuple[str, ...]:
    prefixes = (str(workdir), "/run/netns", "/var/run/netns", "/var/lib/kubelet", "/run/containerd")
    points = hostnet.mount_points(Path("/proc/self/mountinfo").read_text())
    return tuple(sorted(p for p in points if p.startswith(prefixes)))


def _kubepods_cgroups() -> tuple[str, ...]:
    return tuple(sorted(str(p) for p in hostnet.kubepods_cgroups()))


# Every containerd's shims keep their sockets here, whoever started it: a shim
# of the node's that outlived it shows among the processes instead.
SHARED_SHIM_SOCKETS = realnode.CONTAINERD_FIXED_DIR / "s"


def _fixed_paths() -> tuple[str, ...]:
    """The fixed folders' entries (kubelet's, libcni's, containerd's), or their absence."""
    out = []
    for path in realnode.FIXED_PATHS:
        if path.exists():
            entries = [p for p in sorted(path.rglob("*")) if p.parent != SHARED_SHIM_SOCKETS]
            out += [str(p) for p in entries] or [f"{path} (empty)"]
    return tuple(out)


@dataclass(frozen=True)
class HostState:
    links: tuple[str, ...]
    routes: tuple[str, ...]
    routes6: tuple[str, ...]
    netns: tuple[str, ...]
    iptables: tuple[str, ...]
    ip6tables: tuple[str, ...]
    nft_tables: tuple[str, ...]
    sysctls: tuple[str, ...]
    mounts: tuple[str, ...]
    cgroups: tuple[str, ...]
    processes: tuple[str, ...]
    fixed_paths: tuple[str, ...]

    @classmethod
    def take(cls, workdir: Path) -> HostState:
        return cls(
            links=tuple(sorted(line.split(":")[1].strip() for line in _lines("ip", "-o", "link"))),
            routes=_lines("ip", "route"),
            routes6=_lines("ip", "-6", "route"),
            netns=_lines("ip", "netns", "list"),
            iptables=_iptables("iptables-save"),
            ip6tables=_iptables("ip6tables-save"),
            nft_tables=_lines("nft", "list", "tables"),
            sysctls=_sysctls(),
            mounts=_mounts(workdir),
            cgroups=_kubepods_cgroups(),
            processes=_node_processes(workdir),
            fixed_paths=_fixed_paths(),
        )

    def differences(self, after: HostState) -> dict[str, dict[str, list[str]]]:
        """Per field, what ``after`` gained and lost; empty when the host is as it was."""
        out = {}
        for field in fields(self):
            before_items = set(getattr(self, field.name))
            after_items = set(getattr(after, field.name))
            if before_items != after_items:
                out[field.name] = {
                    "added": sorted(after_items - before_items),
                    "removed": sorted(before_items - after_items),
                }
        return out


def ip_forward() -> str:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
