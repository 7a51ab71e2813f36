"""The host side of the real node: bridge, sysctls, iptables, mounts, cgroups.

Everything the real node changes on the machine outside its work folder is
made and undone here, and what was there before is recorded first (in the
cluster's state file), so that ``down`` restores the machine as it found it:

* the bridge ``tbr0`` (the node IP's home) and the route of the Service range;
* the sysctls kubelet, kube-proxy and the CNI bridge plugin write (ip_forward
  among them), restored to their previous values;
* iptables chains: the harness's own isolation chains and every ``KUBE-*`` /
  ``CNI-*`` chain that appeared while the node ran (chains that existed before
  are left alone), and the nftables tables iptables-nft created for them;
* mounts under the work folder (overlay root filesystems, tmpfs and secret
  volumes, network namespaces), the ``kubepods`` cgroups in every hierarchy and
  any process still in them.

NB: deliberately subprocesses of ``ip``, ``iptables`` and ``nft``: the same
commands an operator would type to check what is left.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Chains created by kubelet and kube-proxy, the CNI plugins, and the harness.
OWNED_CHAIN_PREFIXES = ("KUBE-", "CNI-", "TRADERBOT-")
BUILTIN_CHAINS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
FAMILIES = {
    "ipv4": ("iptables-save", "iptables-restore"),
    "ipv6": ("ip6tables-save", "ip6tables-restore"),
}
KUBEPODS_CGROUP = "kubepods"
CGROUP_ROOT = Path("/sys/fs/cgroup")

# Sysctls the node's components write: kubelet's kernel tunables, kube-proxy's
# and the bridge plugin's forwarding and bridge-netfilter switches, conntrack.
TOUCHED_SYSCTLS = (
    "net.ipv4.ip_forward",
    # Turning forwarding on turns accept_redirects off (and back, in reverse).
    "net.ipv4.conf.all.accept_redirects",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.default.forwarding",
    "net.ipv6.conf.all.forwarding",
    "net.ipv6.conf.default.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv4.conf.default.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
    "net.bridge.bridge-nf-call-arptables",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_tcp_timeout_established",
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
BRIDGE_NETFILTER = "net.bridge.bridge-nf-call-iptables"

_MNT_DETACH = 2


class HostSetupError(RuntimeError):
    """Raised when the host cannot be prepared for a real node."""


def _run(args: Sequence[str], *, check: bool = True, stdin: str | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - fixed system tools, no shell
        list(args), input=stdin, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise HostSetupError(f"`{shlex.join(args)}` failed ({result.returncode}): {result.stderr}")
    return result.stdout


# -- sysctls --------------------------------------------------------------------


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctl(key: str) -> str | None:
    """The value of a sysctl, or None when this kernel has no such key."""
    try:
        return _sysctl_path(key).read_text().strip()
    except OSError:
        return None


def write_sysctl(key: str, value: str) -> None:
    _sysctl_path(key).write_text(value + "\n")


def snapshot_sysctls(keys: Iterable[str] = TOUCHED_SYSCTLS) -> dict[str, str]:
    """The current value of each existing key."""
    values = {key: read_sysctl(key) for key in keys}
    return {key: value for key, value in values.items() if value is not None}


def restore_sysctls(snapshot: Mapping[str, str]) -> list[str]:
    """Write back each recorded value that changed; return the keys that could not be.

    NB: ip_forward first: writing it resets every interface's forwarding flag.
    """
    failed = []
    for key in sorted(snapshot, key=lambda k: k != "net.ipv4.ip_forward"):
        if read_sysctl(key) == snapshot[key]:
            continue
        try:
            write_sysctl(key, snapshot[key])
        except OSError:
            failed.append(key)
    return failed


# -- bridge ---------------------------------------------------------------------


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def create_bridge(*, name: str, address: str, prefix_length: int, routes: Sequence[str]) -> None:
    """Create the node's bridge with its address, and route ``routes`` through it.

    NB: the Service range is routed to the bridge, not the default route, so a
    packet to a Service IP that no rule rewrote stays on this machine.
    """
    if link_exists(name):
        raise HostSetupError(
            f"interface {name} already exists: another real-node cluster runs, or one "
            "died without `traderbot-cluster down`; stop it (or `ip link del "
            f"{name}` if nothing uses it)"
        )
    _run(["ip", "link", "add", "name", name, "type", "bridge"])
    try:
        # No IPv6 on the bridge: the pod network is IPv4 only.
        with contextlib.suppress(OSError):
            write_sysctl(f"net.ipv6.conf.{name}.disable_ipv6", "1")
        _run(["ip", "addr", "add", f"{address}/{prefix_length}", "dev", name])
        _run(["ip", "link", "set", name, "up"])
        for cidr in routes:
            _run(["ip", "route", "add", cidr, "dev", name, "src", address])
    except HostSetupError:
        delete_bridge(name)
        raise


def delete_bridge(name: str) -> None:
    """Delete the bridge and every veth still attached to it (their routes go too)."""
    if not link_exists(name):
        return
    for line in _run(["ip", "-o", "link", "show", "master", name], check=False).splitlines():
        port = line.split(":")[1].strip().split("@")[0]
        _run(["ip", "link", "del", port], check=False)
    _run(["ip", "link", "del", name], check=False)


# -- iptables ---------------------------------------------------------------------


@dataclass
class Table:
    """One table of an ``iptables-save`` dump."""

    chains: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)


def parse_iptables_save(text: str) -> dict[str, Table]:
    """Parse ``iptables-save`` output into tables of chain names and ``-A`` lines."""
    tables: dict[str, Table] = {}
    current: Table | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            current = tables.setdefault(line[1:], Table())
        elif current is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            current.chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            current.rules.append(line)
    return tables


def _rule_chain_and_target(rule: str) -> tuple[str, str | None]:
    words = shlex.split(rule)
    chain = words[1]
    for flag in ("-j", "-g", "--jump", "--goto"):
        if flag in words[:-1]:
            return chain, words[words.index(flag) + 1]
    return chain, None


def owned_chains(
    tables: Mapping[str, Table], *, keep: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Chains with an owned prefix that are not in ``keep`` (those existed before)."""
    return {
        name: [
            chain
            for chain in table.chains
            if chain.startswith(OWNED_CHAIN_PREFIXES) and chain not in set(keep.get(name, ()))
        ]
        for name, table in tables.items()
    }


def sweep_script(tables: Mapping[str, Table], *, keep: Mapping[str, Sequence[str]]) -> str:
    """An ``iptables-restore --noflush`` script removing the chains we own.

    For each table: delete the rules of other chains that jump to an owned
    chain, flush every owned chain, then delete them (owned chains may jump to
    each other, so all are flushed before any is deleted). Empty when there is
    nothing to remove.
    """
    remove = owned_chains(tables, keep=keep)
    out: list[str] = []
    for name, table in tables.items():
        doomed = set(remove[name])
        if not doomed:
            continue
        out.append(f"*{name}")
        for rule in table.rules:
            chain, target = _rule_chain_and_target(rule)
            if chain not in doomed and target in doomed:
                out.append("-D " + rule[len("-A ") :])
        out.extend(f"-F {chain}" for chain in remove[name])
        out.extend(f"-X {chain}" for chain in remove[name])
        out.append("COMMIT")
    return "\n".join(out) + ("\n" if out else "")


def iptables_dump(family: str) -> str:
    save, _ = FAMILIES[family]
    return _run([save], check=False)


def chain_names(family: str) -> dict[str, list[str]]:
    """Every chain of every table, for the record taken before the node starts."""
    return {
        name: table.chains for name, table in parse_iptables_save(iptables_dump(family)).items()
    }


def install_rules(family: str, rules: Mapping[str, Sequence[Sequence[str]]]) -> None:
    """Apply the harness's rules (``-N``/``-A``/``-I`` argument lists) table by table."""
    binary = "iptables" if family == "ipv4" else "ip6tables"
    for table, commands in rules.items():
        for command in commands:
            _run([binary, "-w", "-t", table, *command])


def sweep_chains(family: str, *, keep: Mapping[str, Sequence[str]]) -> None:
    """Remove every owned chain that did not exist before (and the jumps to it)."""
    _, restore = FAMILIES[family]
    script = sweep_script(parse_iptables_save(iptables_dump(family)), keep=keep)
    if script:
        _run([restore, "-w", "--noflush"], stdin=script)


def nft_tables() -> list[str]:
    """``family name`` of each nftables table (iptables-nft keeps its tables there)."""
    try:
        text = _run(["nft", "list", "tables"], check=False)
    except FileNotFoundError:
        return []
    return [line.removeprefix("table ").strip() for line in text.splitlines() if line.strip()]


def drop_new_empty_tables(before: Sequence[str]) -> None:
    """Delete the iptables-nft tables that appeared while the node ran and hold no rule.

    NB: iptables-nft creates the table of a chain's first rule; left behind, an
    empty ``ip mangle`` would still show in ``iptables-save``.
    """
    family_of = {"ip": "ipv4", "ip6": "ipv6"}
    dumps = {family: parse_iptables_save(iptables_dump(family)) for family in FAMILIES}
    for entry in nft_tables():
        if entry in before:
            continue
        nft_family, _, name = entry.partition(" ")
        family = family_of.get(nft_family)
        if family is None:
            continue
        table = dumps[family].get(name)
        if name == "kube-proxy" or (table is not None and not table.rules):
            _run(["nft", "delete", "table", nft_family, name], check=False)


# -- mounts -------------------------------------------------------------------------


def _unescape_mount_path(path: str) -> str:
    """Undo the octal escapes (``\\040`` for a space) of /proc/self/mountinfo."""
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1 : i + 4].isdigit():
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def mount_points(mountinfo: str) -> list[str]:
    """Mount points in /proc/self/mountinfo order (parents before children)."""
    return [_unescape_mount_path(line.split()[4]) for line in mountinfo.splitlines() if line]


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below ``root``, deepest (latest) first."""
    prefix = str(root).rstrip("/") + "/"
    points = mount_points(Path("/proc/self/mountinfo").read_text())
    return [Path(p) for p in reversed(points) if p == str(root) or p.startswith(prefix)]


def unmount_all_under(root: Path, *, attempts: int = 5) -> list[Path]:
    """Unmount everything at or below ``root`` (lazily when busy); return what is left."""
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(attempts):
        points = mounts_under(root)
        if not points:
            return []
        for point in points:
            target = os.fsencode(point)
            if libc.umount2(target, 0) != 0:
                libc.umount2(target, _MNT_DETACH)
    return mounts_under(root)


# -- cgroups and processes ---------------------------------------------------------------


def cgroup_hierarchies(mountinfo: str | None = None) -> list[Path]:
    """Mount points of every cgroup (v1) and cgroup2 hierarchy."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    points = []
    for line in text.splitlines():
        pre, _, post = line.partition(" - ")
        if post.split(" ", 1)[0] in {"cgroup", "cgroup2"}:
            points.append(Path(_unescape_mount_path(pre.split()[4])))
    return points


def kubepods_cgroups() -> list[Path]:
    """Every cgroup folder under ``kubepods`` in every hierarchy, deepest first."""
    found: list[Path] = []
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / KUBEPODS_CGROUP
        if top.is_dir():
            found.extend(p for p in top.rglob("*") if p.is_dir())
            found.append(top)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _cgroup_pids(folder: Path) -> list[int]:
    try:
        return [int(pid) for pid in (folder / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def kill_kubepods(*, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process in a kubepods cgroup until none is left; return survivors.

    NB: a container's PID 1 ignores SIGTERM without a handler, and its process
    outlives kubelet and containerd: only SIGKILL from outside ends it.
    """
    deadline = time.monotonic() + timeout
    while True:
        pids = sorted({pid for folder in kubepods_cgroups() for pid in _cgroup_pids(folder)})
        if not pids or time.monotonic() > deadline:
            return pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def remove_kubepods_cgroups(*, timeout: float = 10.0) -> list[Path]:
    """rmdir every kubepods cgroup, deepest first, retrying while they drain."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for folder in kubepods_cgroups():
            try:
                folder.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                left.append(folder)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def processes_mentioning(needle: str) -> list[int]:
    """Pids whose command line contains ``needle`` (e.g. our containerd socket)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# -- the record kept in the state file -----------------------------------------------------


@dataclass
class HostRecord:
    """What the machine looked like before the node, and what the node added.

    Written to the cluster's state file so that a detached ``down`` (another
    process) can undo it all.
    """

    bridge: str
    sysctls: dict[str, str]
    chains: dict[str, dict[str, list[str]]]
    nft_tables: list[str]
    bridge_created: bool = False
    # Folders outside the work folder that node components create when missing.
    absent_paths: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "bridge": self.bridge,
            "sysctls": self.sysctls,
            "chains": self.chains,
            "nft_tables": self.nft_tables,
            "bridge_created": self.bridge_created,
            "absent_paths": self.absent_paths,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostRecord:
        return cls(
            bridge=str(data["bridge"]),
            sysctls={str(k): str(v) for k, v in data["sysctls"].items()},
            chains={
                str(family): {str(t): [str(c) for c in cs] for t, cs in tables.items()}
                for family, tables in data["chains"].items()
            },
            nft_tables=[str(t) for t in data["nft_tables"]],
            bridge_created=bool(data.get("bridge_created", False)),
            absent_paths=[str(p) for p in data.get("absent_paths", [])],
        )

    @classmethod
    def take(cls, *, bridge: str, watched_paths: Sequence[Path] = ()) -> HostRecord:
        return cls(
            bridge=bridge,
            sysctls=snapshot_sysctls(),
            chains={family: chain_names(family) for family in FAMILIES},
            nft_tables=nft_tables(),
            absent_paths=[str(p) for p in watched_paths if not p.exists()],
        )
