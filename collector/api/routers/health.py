"""Liveness and Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collector.api.auth import require_scope
from collector.api.deps import IngestServiceDep
from collector.auth import Scope

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz(service: IngestServiceDep) -> dict[str, object]:
    return {"status": "ok", "pending_rows": service.inserter.pending_rows}


# Metrics name apps, models and features: they need a read key like every other query.
@router.get("/metrics", dependencies=[Depends(require_scope(Scope.READ))])
def metrics(service: IngestServiceDep) -> Response:
    service.metrics.pending_rows.set(service.inserter.pending_rows)
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
