"""Typed FastAPI dependencies: what a router may ask the app for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from collector.service import IngestService


@dataclass(frozen=True, slots=True)
class ApiLimits:
    max_body_bytes: int


def get_ingest_service(request: Request) -> IngestService:
    service: IngestService = request.app.state.ingest_service
    return service


def get_api_limits(request: Request) -> ApiLimits:
    limits: ApiLimits = request.app.state.api_limits
    return limits


IngestServiceDep = Annotated[IngestService, Depends(get_ingest_service)]
ApiLimitsDep = Annotated[ApiLimits, Depends(get_api_limits)]
