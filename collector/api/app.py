"""The HTTP API: one router per resource, dependencies on app.state, the writer started and stopped with the app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import APIRouter, FastAPI

from collector.api.deps import ApiLimits
from collector.api.routers import events, health, otlp
from collector.events import TraceEvent
from collector.otlp.mapping import OtlpOptions
from collector.service import IngestService


class Component(Protocol):
    """Something that runs beside the API for the app's lifetime (scheduler, consumer, alert delivery)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def create_app(
    service: IngestService,
    *,
    max_body_bytes: int = 64 * 1024 * 1024,
    routers: Sequence[APIRouter] = (),
    components: Sequence[Component] = (),
    otlp_options: OtlpOptions | None = None,
) -> FastAPI:
    """The API over `service`; `routers` and `components` come from downstream steps, wired by the caller."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        started: list[Component] = []
        try:
            for component in components:
                component.start()
                started.append(component)
            yield
        finally:
            for component in reversed(started):
                component.stop()
            service.stop()

    app = FastAPI(
        title="llmpulse",
        summary="Ingest API for LLM trace events",
        version="1",
        lifespan=lifespan,
    )
    app.state.ingest_service = service
    app.state.api_limits = ApiLimits(max_body_bytes=max_body_bytes)
    app.state.otlp_options = otlp_options or OtlpOptions()
    app.include_router(events.router)
    app.include_router(health.router)
    app.include_router(otlp.router)
    for router in routers:
        app.include_router(router)

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
