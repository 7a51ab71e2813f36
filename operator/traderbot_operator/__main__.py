"""``traderbot-operator``: run the TraderBot operator (kopf) with its metrics and liveness.

traderbot-operator                       # every namespace (cluster-wide)
traderbot-operator -n trading -n paper   # only these namespaces
traderbot-operator --leader-election     # one of several replicas leads (the chart's default)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Sequence

import kopf
from aiohttp import web

from traderbot_operator import __version__, metrics
from traderbot_operator.election import Elector, LeadershipLostError
from traderbot_operator.kube import Kube, quiet_http_logs
from traderbot_operator.leader import Timings

logger = logging.getLogger(__name__)
DEFAULT_LEASE_NAME = "traderbot-operator"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _seconds(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


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
    parser.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=_flag("TRADERBOT_LEADER_ELECTION"),
        help="run as one of several replicas: only the holder of a Lease reconciles "
        "(env TRADERBOT_LEADER_ELECTION; default off)",
    )
    parser.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("TRADERBOT_LEADER_ELECTION_NAMESPACE")
        or os.environ.get("POD_NAMESPACE", ""),
        help="namespace of the Lease (env TRADERBOT_LEADER_ELECTION_NAMESPACE, else POD_NAMESPACE)",
    )
    parser.add_argument(
        "--leader-election-name",
        default=os.environ.get("TRADERBOT_LEADER_ELECTION_NAME", DEFAULT_LEASE_NAME),
        help=f"name of the Lease (env TRADERBOT_LEADER_ELECTION_NAME; {DEFAULT_LEASE_NAME})",
    )
    parser.add_argument("--verbose", action="store_true", help="log kopf's debug messages too")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)
    if args.leader_election and not args.leader_election_namespace:
        parser.error("--leader-election needs --leader-election-namespace (or POD_NAMESPACE)")
    return args


def election_timings() -> Timings:
    """Read the Lease timings (client-go's defaults: 15 s, 10 s, 2 s) from the environment."""
    return Timings(
        lease_duration=_seconds("TRADERBOT_LEASE_DURATION_SECONDS", 15.0),
        renew_deadline=_seconds("TRADERBOT_LEASE_RENEW_DEADLINE_SECONDS", 10.0),
        retry_period=_seconds("TRADERBOT_LEASE_RETRY_PERIOD_SECONDS", 2.0),
    )


def replica_identity() -> str:
    """Name this replica in the Lease: its pod (host) name and a per-process suffix.

    NB: the suffix keeps a restarted container (same pod name) from reading the
    Lease its previous life held as its own.
    """
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


async def serve_health(*, address: str, port: int, healthy: Callable[[], bool]) -> web.AppRunner:
    """Serve /healthz on ``address:port``: 200 while ``healthy()``, 503 after."""

    async def healthz(_: web.Request) -> web.Response:
        if healthy():
            return web.Response(text="ok")
        return web.Response(status=503, text="the operator stopped")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner


async def run(args: argparse.Namespace, *, stop_flag: asyncio.Event | None = None) -> None:
    """Run the operator until ``stop_flag`` is set (or a signal stops it)."""
    import traderbot_operator.handlers  # noqa: F401 - registers the handlers

    namespaces = list(args.namespace or [])
    # NB: both servers bind --listen-address: 0.0.0.0 in a pod (its own IP),
    # 127.0.0.1 on a shared machine such as the local demo.
    address = args.listen_address
    memo = kopf.Memo(metrics_port=args.metrics_port or None, metrics_address=address)
    if args.leader_election:
        await run_elected(args, memo=memo, namespaces=namespaces, stop_flag=stop_flag)
        return
    liveness = f"http://{address}:{args.liveness_port}/healthz" if args.liveness_port else None
    await kopf.operator(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
        memo=memo,
        stop_flag=stop_flag,
    )


async def run_elected(
    args: argparse.Namespace,
    *,
    memo: kopf.Memo,
    namespaces: list[str],
    stop_flag: asyncio.Event | None,
) -> None:
    """Wait as a standby until this replica holds the Lease, then reconcile while it does.

    A clean stop (SIGTERM, ``stop_flag``) releases the Lease, so a standby takes
    over within its retry period. A leader that cannot renew stops kopf and exits
    with status 1 before any standby may take over (the renew deadline is shorter
    than the Lease), so two replicas never write at once; Kubernetes restarts it
    as a standby.
    """
    stop = stop_flag or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # NB: only the main thread may handle signals (tests run this in a thread);
        # kopf installs its own handlers once this replica leads.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    quiet_http_logs()
    timings = election_timings()
    kube = Kube.connect()
    elector = Elector(
        kube=kube,
        namespace=args.leader_election_namespace,
        name=args.leader_election_name,
        identity=replica_identity(),
        timings=timings,
    )
    operator: asyncio.Task[None] | None = None

    def healthy() -> bool:
        return operator is None or not operator.done()

    health = (
        await serve_health(address=args.listen_address, port=args.liveness_port, healthy=healthy)
        if args.liveness_port
        else None
    )
    # NB: /metrics for the process's whole life, so a standby says it is one
    # (traderbot_operator_leader 0); kopf's startup then serves none of its own.
    served = (
        metrics.serve(port=args.metrics_port, address=args.listen_address)
        if args.metrics_port
        else None
    )
    memo.metrics_port = None
    logger.info("standby as %s for Lease %s/%s", elector.identity, elector.namespace, elector.name)
    try:
        if not await elector.acquire(stop):
            return
        kopf_stop = asyncio.Event()
        operator = asyncio.create_task(
            kopf.operator(
                standalone=True,
                clusterwide=not namespaces,
                namespaces=namespaces,
                memo=memo,
                stop_flag=kopf_stop,
            ),
            name="kopf",
        )
        keeper = asyncio.create_task(elector.keep(), name="lease-renewal")
        stopping = asyncio.create_task(stop.wait(), name="stop-flag")
        try:
            await asyncio.wait({operator, keeper, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if keeper.done() and isinstance(keeper.exception(), LeadershipLostError):
            logger.error("leadership lost (%s): stopping at once", keeper.exception())
            kopf_stop.set()
            # NB: half of the margin between the renew deadline and the Lease's end,
            # then cancelled: no write of this replica may land after a standby leads.
            margin = (timings.lease_duration - timings.renew_deadline) / 2
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(operator, timeout=margin)
            raise SystemExit(1)
        kopf_stop.set()
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        await operator  # a crash of kopf surfaces here
    finally:
        await elector.release()
        if health is not None:
            await health.cleanup()
        if served is not None:
            metrics.shut_down(served)
        await kube.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``traderbot-operator`` console script."""
    args = parse_args(argv)
    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=args.verbose, log_format=log_format, log_refkey="k8s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
