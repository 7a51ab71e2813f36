"""A load client that runs INSIDE the cluster, in a pod of the workload image.

The e2e tests start it as ``python -c <this file's source>`` so it needs only
the standard library. It sends requests at a fixed rate to the bot's Service by
its DNS name, through kube-proxy like any client in the cluster, so a rolling
update or a SIGTERM is seen the way users see it (a port-forward would pin one
pod). Every request opens a new connection, so each one is balanced anew.

It prints one JSON line at the end: counts by status, the failures with their
reasons, and how many requests were sent. A request "fails" when it raises
(connection refused or reset, timeout) or answers 5xx.

Configuration by environment: LOAD_URL (base URL), LOAD_API_KEY, LOAD_RATE
(requests/s), LOAD_SECONDS, LOAD_ORDERS (every Nth request is an order POST;
0 = reads only), LOAD_ID (prefix of client_order_id values).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

base = os.environ["LOAD_URL"].rstrip("/")
api_key = os.environ.get("LOAD_API_KEY", "")
rate = float(os.environ.get("LOAD_RATE", "20"))
seconds = float(os.environ.get("LOAD_SECONDS", "30"))
order_every = int(os.environ.get("LOAD_ORDERS", "0"))
prefix = os.environ.get("LOAD_ID", "load")

statuses: Counter[str] = Counter()
failures: list[dict[str, object]] = []
lock = threading.Lock()


def one(index: int) -> None:
    started = time.time()
    if order_every and index % order_every == 0:
        body = json.dumps(
            {
                "client_order_id": f"{prefix}-{index}",
                "symbol": "BTCUSDT",
                "side": "buy",
                "type": "limit",
                "quantity": "0.001",
                "limit_price": "1",
            }
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the Service's http URL
            f"{base}/api/v1/orders",
            data=body,
            headers={"content-type": "application/json", "X-API-Key": api_key},
            method="POST",
        )
    else:
        request = urllib.request.Request(f"{base}/api/v1/orders?limit=1")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except Exception as error:  # noqa: BLE001 - every failure is counted and reported
        with lock:
            statuses["error"] += 1
            failures.append({"at": round(started, 3), "error": repr(error)[:200]})
        return
    with lock:
        statuses[str(status)] += 1
        if status >= 500:
            failures.append({"at": round(started, 3), "status": status})


def main() -> None:
    threads: list[threading.Thread] = []
    begin = time.monotonic()
    index = 0
    while time.monotonic() - begin < seconds:
        thread = threading.Thread(target=one, args=(index,))
        thread.start()
        threads.append(thread)
        index += 1
        # Fixed rate: sleep until the next slot, whatever the last request took.
        next_at = begin + index / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    for thread in threads:
        thread.join(timeout=15)
    print(json.dumps({"sent": index, "statuses": dict(statuses), "failures": failures[:50]}))  # noqa: T201


main()
