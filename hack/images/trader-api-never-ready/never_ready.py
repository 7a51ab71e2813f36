#!/usr/bin/env python3
"""Stand in for trader-api and never get Ready: 200 on /health, 503 on everything else.

Upgrade tests roll a bot to the image tag that carries this program and expect
the operator to roll back after spec.upgrade.progressDeadlineSeconds. It
listens on $HOST:$PORT (default 0.0.0.0:3000) like trader-api and exits 0 on
SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


class NeverReady(BaseHTTPRequestHandler):
    """Answer the liveness path, refuse readiness and everything else."""

    def do_GET(self) -> None:
        live = self.path == "/health"
        status = HTTPStatus.OK if live else HTTPStatus.SERVICE_UNAVAILABLE
        body = b'{"status":"ok"}\n' if live else b'{"status":"never-ready"}\n'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def stop(signo: int, frame: FrameType | None) -> None:
    """Leave serve_forever() on SIGTERM, exit status 0 like trader-api."""
    del signo, frame
    sys.exit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, stop)
    # NB: 0.0.0.0 like trader-api: a pod listens on its own IP.
    host = os.environ.get("HOST", "0.0.0.0")  # noqa: S104
    port = int(os.environ.get("PORT", "3000"))
    server = ThreadingHTTPServer((host, port), NeverReady)
    print(f"never-ready stand-in for trader-api on {host}:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
