"""``traderbot-cluster``: a local Kubernetes control plane for the demo and for humans.

    eval "$(traderbot-cluster up)"      # prints: export KUBECONFIG=...
    kubectl get nodes
    traderbot-cluster kubeconfig --serviceaccount default/my-sa
    traderbot-cluster demo              # + the operator, examples/ until Ready: real pods
                                        # where a real node can run, else kwok (--kwok)
    traderbot-cluster down              # stops the demo's operator too

The cluster's files (state, logs, kubeconfigs) live in ``--dir`` (default
``$TRADERBOT_CLUSTER_DIR`` or ``./.cluster``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from traderbot_devtools import demo_pods
from traderbot_devtools.binaries import Binaries, BinariesMissingError
from traderbot_devtools.demo import NODE_AUTO, NODE_KWOK, NODE_REAL, DemoError
from traderbot_devtools.demo import add_arguments as add_demo_arguments
from traderbot_devtools.demo import run as run_demo
from traderbot_devtools.hostnet import HostSetupError
from traderbot_devtools.images import archives_by_ref, images_sh_list
from traderbot_devtools.localcluster import (
    DEFAULT_SANDBOX_IMAGE,
    STATE_FILE,
    ClusterAccess,
    ClusterStartError,
    addon_endpoints,
    addon_status,
    detached_has_real_node,
    detached_running,
    detached_status,
    ensure_detached,
    stop_detached,
)
from traderbot_devtools.realnode import NodeStartError

EXIT_NO_CLUSTER = 3


def _default_dir() -> Path:
    return Path(os.environ.get("TRADERBOT_CLUSTER_DIR", ".cluster")).absolute()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201 - a CLI talks


def bring_up(
    workdir: Path,
    *,
    bin_dir: Path | None,
    nodes: int,
    storage_provisioner: bool,
    real_node: bool = False,
    images: Sequence[Path] = (),
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE,
) -> bool:
    """Start the detached cluster or find it running; say what happened.

    Returns False (after saying why) when it could not start.
    """
    try:
        binaries = Binaries.find(bin_dir)
    except BinariesMissingError as error:
        _say(str(error))
        return False
    _say(f"starting a local control plane in {workdir} (or reusing a running one) ...")
    try:
        cluster = ensure_detached(
            workdir,
            binaries=binaries,
            nodes=tuple(f"kwok-node-{i}" for i in range(nodes)),
            storage_provisioner=storage_provisioner,
            real_node=real_node,
            images=images,
            sandbox_image=sandbox_image,
        )
    except (ClusterStartError, NodeStartError, HostSetupError, BinariesMissingError) as error:
        _say(f"start-up failed: {error}")
        return False
    if cluster is None:
        _say(f"a local cluster is already running from {workdir}")
    else:
        _say(
            f"ready in {cluster.ready_seconds:.1f}s: {cluster.server} (logs in {workdir / 'logs'})"
        )
        if cluster.node is not None:
            _say(
                f"real node {cluster.node.node_name} at {cluster.node.node_ip}; "
                f"images: {', '.join(sorted(_named(cluster.node.image_names())))}"
            )
    return True


def cmd_up(args: argparse.Namespace) -> int:
    workdir: Path = args.dir
    if args.image_archive and not args.real_node:
        _say("--image-archive needs --real-node (kwok runs no container)")
        return 2
    nodes = args.nodes if args.nodes is not None else (0 if args.real_node else 1)
    if detached_running(workdir) and detached_has_real_node(workdir) != args.real_node:
        running = "with" if detached_has_real_node(workdir) else "without"
        _say(f"the cluster running from {workdir} has {running} a real node: `down` it first")
        return 1
    archives = [path.absolute() for path in args.image_archive]
    if args.real_node:
        archives += _sandbox_archive(args.sandbox_image, given=archives)
    if not bring_up(
        workdir,
        bin_dir=args.bin_dir,
        nodes=nodes,
        storage_provisioner=args.storage_provisioner,
        real_node=args.real_node,
        images=archives,
        sandbox_image=args.sandbox_image,
    ):
        return 1
    kubectl = _kubectl(args.bin_dir)
    if kubectl is not None:
        print(f"export PATH={kubectl.parent}:$PATH")  # noqa: T201 - for eval
    print(f"export KUBECONFIG={workdir / 'kubeconfig'}")  # noqa: T201 - for eval
    return 0


def _named(refs: set[str]) -> set[str]:
    """Image names without the digest-only ones an import adds."""
    return {ref for ref in refs if not ref.startswith("sha256:")}


def _sandbox_archive(sandbox_image: str, *, given: Sequence[Path]) -> list[Path]:
    """The archive hack/images.sh saved the pause image in, unless one was given.

    NB: a guess by name only: an archive passed with --image-archive may hold
    the pause image too, which the node checks once they are imported.
    """
    listing = images_sh_list()
    if not listing.is_file():
        return []
    archive = archives_by_ref(listing.read_text()).get(sandbox_image)
    if archive is None or archive in given or not archive.is_file():
        return []
    _say(f"the pause image {sandbox_image} comes from {archive} (hack/images.sh)")
    return [archive]


def _kubectl(bin_dir: Path | None) -> Path | None:
    try:
        return Binaries.find(bin_dir).kubectl
    except BinariesMissingError:
        return None


def _demo_node(args: argparse.Namespace) -> str | None:
    """Which node the demo runs on: the running cluster's, else what was asked, else what fits.

    Returns None (after saying why) when what was asked cannot be: another kind
    of cluster runs in the folder, or a real node cannot run here.
    """
    workdir: Path = args.dir
    asked: str = args.node
    if detached_running(workdir):
        running = NODE_REAL if detached_has_real_node(workdir) else NODE_KWOK
        if asked not in {NODE_AUTO, running}:
            kind = "a real node" if running == NODE_REAL else "kwok's fake node only"
            _say(
                f"the demo cluster running from {workdir} has {kind}: stop it first "
                "(`make demo-down`), then ask again"
            )
            return None
        _say(f"reusing the demo cluster running from {workdir} ({running} node)")
        if running == NODE_KWOK and asked == NODE_AUTO:
            _say("for real pods: `make demo-down`, then `make demo` again")
        return running
    if asked == NODE_KWOK:
        return NODE_KWOK
    reasons = demo_pods.blockers(demo_pods.observe_host(bin_dir=args.bin_dir))
    if not reasons:
        return NODE_REAL
    if asked == NODE_REAL:
        _say("the demo cannot run on real pods here:\n" + "\n".join(f"- {r}" for r in reasons))
        return None
    _fall_back("\n".join(f"- {r}" for r in reasons))
    return NODE_KWOK


def _fall_back(why: str) -> None:
    _say(
        f"real pods are not possible here:\n{why}\n"
        "falling back to the kwok demo: the same operator and bot, but kwok plays the "
        "node, so pods turn Ready with no container running (choose with "
        "`make demo DEMO_NODE=kwok|real`)"
    )


def _run_real_demo(args: argparse.Namespace) -> int | None:
    """The demo on real pods; None when it should fall back to kwok (after saying why).

    NB: only the steps before the cluster runs fall back (no image, no node);
    once it runs, a failure is the demo's and the cluster stays for a look.
    """
    workdir: Path = args.dir
    reuse = detached_running(workdir)
    try:
        if reuse:
            images = demo_pods.listed_images()
            _say("the node keeps the images it loaded at start (`make demo-down` for new ones)")
        else:
            images = demo_pods.build_images(args.images_script, say=_say)
    except demo_pods.DemoFallbackError as error:
        if args.node == NODE_REAL:
            _say(f"the demo cannot run on real pods: {error}")
            return 1
        _fall_back(f"- {error}")
        return None
    except DemoError as error:
        _say(f"demo failed: {error}")
        return 1
    if bring_up(
        workdir,
        bin_dir=args.bin_dir,
        nodes=0,
        storage_provisioner=True,
        real_node=True,
        images=images.archives,
        sandbox_image=images.sandbox,
    ):
        return demo_pods.run(args, images=images, say=_say)
    if args.node == NODE_REAL:
        return 1
    _fall_back("- the real node did not start (the reason is above)")
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    node = _demo_node(args)
    if node is None:
        return 1
    if node == NODE_REAL:
        code = _run_real_demo(args)
        if code is not None:
            return code
    if not bring_up(args.dir, bin_dir=args.bin_dir, nodes=1, storage_provisioner=True):
        return 1
    return run_demo(args, say=_say)


def cmd_down(args: argparse.Namespace) -> int:
    workdir: Path = args.dir
    if not (workdir / STATE_FILE).exists():
        _say(f"no local cluster in {workdir}")
        return 0
    survivors = stop_detached(workdir)
    if survivors:
        _say(f"could not stop pids {survivors}")
        return 1
    _say(f"stopped the local cluster in {workdir}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    workdir: Path = args.dir
    if not (workdir / STATE_FILE).exists():
        _say(f"no local cluster in {workdir}")
        return EXIT_NO_CLUSTER
    all_alive = True
    for name, pid, alive in detached_status(workdir):
        all_alive &= alive
        print(f"{name:<26} pid {pid:<8} {'running' if alive else 'STOPPED'}")  # noqa: T201
    for name, pid, alive in addon_status(workdir):
        print(f"{name:<26} pid {pid:<8} {'running' if alive else 'STOPPED'}")  # noqa: T201
        for endpoint, url in sorted(addon_endpoints(workdir, name).items()):
            print(f"  {endpoint}: {url}")  # noqa: T201
    print(f"server: {ClusterAccess.load(workdir).server}")  # noqa: T201
    print(f"kubeconfig: {workdir / 'kubeconfig'}")  # noqa: T201
    return 0 if all_alive else 1


def cmd_kubeconfig(args: argparse.Namespace) -> int:
    workdir: Path = args.dir
    if not (workdir / STATE_FILE).exists():
        _say(f"no local cluster in {workdir}; run `traderbot-cluster up` first")
        return EXIT_NO_CLUSTER
    access = ClusterAccess.load(workdir)
    if args.serviceaccount:
        namespace, _, name = args.serviceaccount.partition("/")
        if not name:
            _say("--serviceaccount takes NAMESPACE/NAME")
            return 2
        path = access.kubeconfig_for_service_account(namespace, name, path=args.output)
    elif args.user:
        path = access.kubeconfig_for_user(args.user, groups=args.group, path=args.output)
    else:
        path = access.kubeconfig
    print(path)  # noqa: T201
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="traderbot-cluster",
        description="A local Kubernetes control plane (etcd, kube-apiserver, "
        "kube-controller-manager, kube-scheduler, kwok) with no Docker.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, default=_default_dir(), help="state folder (default: %(default)s)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", parents=[common], help="start; print `export KUBECONFIG=...`")
    up.add_argument(
        "--nodes", type=int, default=None, help="kwok nodes (default: 1, or 0 with --real-node)"
    )
    up.add_argument(
        "--real-node",
        action="store_true",
        help="a real node too: containerd, kubelet, kube-proxy, CoreDNS on bridge tbr0 "
        "(root; see docs/local-cluster.md#a-real-node)",
    )
    up.add_argument(
        "--image-archive",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="an image archive (docker or OCI .tar) to load into the real node (repeatable)",
    )
    up.add_argument(
        "--sandbox-image",
        default=DEFAULT_SANDBOX_IMAGE,
        help="the pause image, from one of the archives (default: %(default)s, whose archive "
        "hack/images.sh saves and which is then loaded without --image-archive)",
    )
    up.add_argument(
        "--bin-dir", type=Path, default=None, help="binaries folder (default: the build cache)"
    )
    up.add_argument(
        "--storage-provisioner",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a default StorageClass whose host-path provisioner binds PVCs (default: on)",
    )
    up.set_defaults(func=cmd_up)

    demo_parser = sub.add_parser(
        "demo",
        parents=[common],
        help="cluster + CRDs + operator + examples, until every TraderBot is Ready "
        "(on real pods where possible: --node)",
    )
    add_demo_arguments(demo_parser)
    demo_parser.set_defaults(func=cmd_demo)

    sub.add_parser("down", parents=[common], help="stop every process").set_defaults(func=cmd_down)
    sub.add_parser("status", parents=[common], help="show the processes").set_defaults(
        func=cmd_status
    )

    kube = sub.add_parser(
        "kubeconfig", parents=[common], help="print the path of an admin or minted kubeconfig"
    )
    who = kube.add_mutually_exclusive_group()
    who.add_argument("--serviceaccount", metavar="NS/NAME", help="a bound token for this SA")
    who.add_argument("--user", metavar="NAME", help="a client certificate for this user")
    kube.add_argument("--group", action="append", default=[], help="a group of --user (repeatable)")
    kube.add_argument("--output", type=Path, default=None, help="where to write it")
    kube.set_defaults(func=cmd_kubeconfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
