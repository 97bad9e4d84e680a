"""Liveness and Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collector.api.deps import IngestServiceDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(service: IngestServiceDep) -> dict[str, object]:
    return {"status": "ok", "pending_rows": service.inserter.pending_rows}


@router.get("/metrics")
def metrics(service: IngestServiceDep) -> Response:
    service.metrics.pending_rows.set(service.inserter.pending_rows)
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
