"""``traderbot-operator``: run the TraderBot operator (kopf) with its metrics and liveness.

traderbot-operator                       # every namespace (cluster-wide)
traderbot-operator -n trading -n paper   # only these namespaces
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence

import kopf

from traderbot_operator import __version__


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (every option also has an environment variable)."""
    parser = argparse.ArgumentParser(
        prog="traderbot-operator", description="Reconcile TraderBot resources."
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[ns for ns in os.environ.get("TRADERBOT_NAMESPACES", "").split(",") if ns],
        help="watch only this namespace (repeatable; env TRADERBOT_NAMESPACES, comma-separated)",
    )
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="watch every namespace (the default when no --namespace is given)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("TRADERBOT_METRICS_PORT", "9090")),
        help="serve Prometheus /metrics on this port, 0 to disable (default 9090)",
    )
    parser.add_argument(
        "--liveness-port",
        type=int,
        default=int(os.environ.get("TRADERBOT_LIVENESS_PORT", "8080")),
        help="serve kopf's /healthz on this port, 0 to disable (default 8080)",
    )
    parser.add_argument(
        "--log-format",
        choices=["json", "plain"],
        default=os.environ.get("TRADERBOT_LOG_FORMAT", "json"),
        help="json (default, one object per line) or plain",
    )
    parser.add_argument(
        "--listen-address",
        default=os.environ.get("TRADERBOT_LISTEN_ADDRESS", "0.0.0.0"),  # noqa: S104 - a pod's own IP
        help="address of the metrics and liveness servers (default 0.0.0.0)",
    )
    parser.add_argument("--verbose", action="store_true", help="log kopf's debug messages too")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, *, stop_flag: asyncio.Event | None = None) -> None:
    """Run the operator until ``stop_flag`` is set (or a signal stops kopf)."""
    import traderbot_operator.handlers  # noqa: F401 - registers the handlers

    namespaces = list(args.namespace or [])
    # NB: both servers bind --listen-address: 0.0.0.0 in a pod (its own IP),
    # 127.0.0.1 on a shared machine such as the local demo.
    address = args.listen_address
    memo = kopf.Memo(metrics_port=args.metrics_port or None, metrics_address=address)
    liveness = f"http://{address}:{args.liveness_port}/healthz" if args.liveness_port else None
    await kopf.operator(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        memo=memo,
        stop_flag=stop_flag,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``traderbot-operator`` console script."""
    args = parse_args(argv)
    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=args.verbose, log_format=log_format, log_refkey="k8s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
