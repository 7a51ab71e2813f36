"""The seed's probes: ``/health`` (liveness), ``/health/ready`` (readiness), ``/metrics``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from trader_api.api.deps import LifecycleDep, RuntimeDep
from trader_api.api.middleware import LIVENESS_PAYLOAD

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: 200 while the process can serve")
async def health() -> Response:
    """Answer from a prebuilt body (the served process answers before routing, same body)."""
    return Response(content=LIVENESS_PAYLOAD, media_type="application/json")


@router.get(
    "/health/ready",
    summary="Readiness per component; 503 naming the failing ones, and while shutting down",
    responses={503: {"description": "not ready: a component is unhealthy or shutting down"}},
)
async def ready(runtime: RuntimeDep, lifecycle: LifecycleDep) -> Response:
    readiness = await runtime.readiness()
    ok = readiness.ready and not lifecycle.draining
    body: dict[str, object] = {
        "status": "ready" if ok else "not_ready",
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "components": dict(readiness.components),
    }
    if lifecycle.draining:
        body["reason"] = "shutting down"
    return Response(
        content=json.dumps(body).encode(),
        status_code=200 if ok else 503,
        media_type="application/json",
    )


@router.get("/metrics", summary="Prometheus text exposition")
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(
        content=generate_latest(runtime.metrics.registry),
        media_type=CONTENT_TYPE_LATEST,
    )
