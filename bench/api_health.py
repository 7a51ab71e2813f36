"""``/health`` requests/s of trader-api versus a bare uvicorn app serving the same JSON.

    .venv/bin/python bench/api_health.py [--seconds 5] [--connections 32] [--rounds 3]

Both servers run as their own processes under the same uvicorn settings
(one worker, no access log) on loopback; ``wrk`` (Debian package, installed
here when missing and we are root) loads each in turn, alternating, and
each round's ratio is taken. Target (issue 4): trader-api at least 0.7x
the bare app (median of the per-round ratios). Without ``wrk`` a bounded
httpx load is used instead; it is client-bound on 2 cores, so its ratio
flatters the service, and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from trader_api import __version__

TARGET_RATIO = 0.7
BODY = json.dumps({"status": "healthy", "version": __version__}).encode()

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The baseline: the least an ASGI app can do to answer /health with the same body."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(argv: list[str], *, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).content == BODY:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"server {argv} did not answer /health on port {port}")


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("wrk")
    return found


def wrk_rps(wrk: str, url: str, *, seconds: int, connections: int) -> float:
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if match is None or "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk run failed or saw errors:\n{out}")
    return float(match.group(1))


async def httpx_rps(url: str, *, seconds: int, connections: int) -> float:
    done = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=connections)) as http:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                response = await http.get(url)
                if response.status_code != 200:
                    raise SystemExit(f"{url} answered {response.status_code}")
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return done / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    base_port, api_port = free_port(), free_port()
    # Same settings as trader-api's own server: no access log, no Server header.
    uvicorn_args = [
        "--host", "127.0.0.1", "--no-access-log", "--no-server-header", "--log-level", "warning",
    ]  # fmt: skip
    baseline = start(
        [sys.executable, "-m", "uvicorn", "--app-dir", "bench", "api_health:bare_app",
         "--port", str(base_port), "--lifespan", "off", *uvicorn_args],
        env={},
        port=base_port,
    )  # fmt: skip
    api = start(
        [sys.executable, "-m", "trader_api"],
        env={
            "PORT": str(api_port),
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "error",
            "RATE_LIMIT_PER_SECOND": "1000000",
            "RATE_LIMIT_BURST": "1000000",
        },
        port=api_port,
    )
    wrk = ensure_wrk()
    tool = "wrk" if wrk else "httpx (client-bound: ratio flattered)"
    results: dict[str, list[float]] = {"bare uvicorn": [], "trader-api": [], "routed": []}
    targets = (
        ("bare uvicorn", f"http://127.0.0.1:{base_port}/health"),
        ("trader-api", f"http://127.0.0.1:{api_port}/health"),
        # For scale, not a target: a routed FastAPI read with auth and rate-limit checks.
        ("routed", f"http://127.0.0.1:{api_port}/api/v1/strategies"),
    )
    try:
        for _ in range(args.rounds):
            for name, url in targets:
                if wrk:
                    rps = wrk_rps(wrk, url, seconds=args.seconds, connections=args.connections)
                else:
                    rps = asyncio.run(
                        httpx_rps(url, seconds=args.seconds, connections=args.connections)
                    )
                results[name].append(rps)
    finally:
        for process in (baseline, api):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    # NB: each round measures both back to back, so the median of per-round
    # ratios cancels the machine's load drifting between rounds.
    ratio = statistics.median(
        ours / base
        for ours, base in zip(results["trader-api"], results["bare uvicorn"], strict=True)
    )
    print(f"load: {tool}, {args.connections} connections, {args.seconds}s x {args.rounds} rounds")
    for name, runs in results.items():
        label = "trader-api GET /api/v1/strategies" if name == "routed" else f"{name} GET /health"
        print(f"{label:>34}: {statistics.median(runs):7.0f} req/s  runs {[round(r) for r in runs]}")
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(
        f"ratio trader-api / bare uvicorn (median of per-round ratios): {ratio:.2f}x "
        f"({verdict} the {TARGET_RATIO}x target)"
    )


if __name__ == "__main__":
    main()
