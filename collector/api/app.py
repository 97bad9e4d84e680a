"""The HTTP API: one router per resource, dependencies on app.state, the writer started and stopped with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from collector.api.deps import ApiLimits
from collector.api.routers import events, health, otlp
from collector.events import TraceEvent
from collector.service import IngestService


def create_app(service: IngestService, *, max_body_bytes: int = 64 * 1024 * 1024) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="llmpulse",
        summary="Ingest API for LLM trace events",
        version="1",
        lifespan=lifespan,
    )
    app.state.ingest_service = service
    app.state.api_limits = ApiLimits(max_body_bytes=max_body_bytes)
    app.include_router(events.router)
    app.include_router(health.router)
    app.include_router(otlp.router)

    original_openapi = app.openapi

    def openapi_with_event_schema() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        event_schema = TraceEvent.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(event_schema.pop("$defs", {}))
        components["TraceEvent"] = event_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi_with_event_schema  # type: ignore[method-assign]
    return app
