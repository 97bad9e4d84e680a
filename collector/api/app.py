"""The HTTP API: one router per resource, dependencies on app.state, the writer started and stopped with the app.

Every route but /healthz needs an API key (collector/api/auth.py). Routers of this package declare their
scope on each route; routers from downstream steps (findings, runbooks) are read-only views, so any route of
theirs without a declared scope gets `read`. Building an app with a route left unguarded fails at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute

from collector.api.auth import require_scope, route_is_guarded, unguarded_routes
from collector.api.deps import ApiLimits
from collector.api.routers import events, health, keys, otlp, otlp_logs
from collector.auth import Authenticator, Scope
from collector.events import TraceEvent
from collector.keys import KeyStore
from collector.otlp.content import ContentJoiner
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
    authenticator: Authenticator,
    key_store: KeyStore | None = None,
    content_joiner: ContentJoiner | None = None,
) -> FastAPI:
    """The API over `service`; `routers` and `components` come from downstream steps, wired by the caller.

    `authenticator`: `collector.keys.KeyAuthenticator`, or `collector.auth.AllowAll` when auth is disabled
    (always explicit: there is no open default). `key_store`: serves /v1/keys (admin) when given."""

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
        # Served below behind a key: the schema names every route and the documentation page loads it.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ingest_service = service
    app.state.api_limits = ApiLimits(max_body_bytes=max_body_bytes)
    app.state.otlp_options = otlp_options or OtlpOptions()
    app.state.authenticator = authenticator
    app.state.auth_failures = service.metrics.auth_failures
    app.state.key_store = key_store
    # OTLP log content (POST /v1/logs) and its join to spans; None: /v1/logs answers 503.
    app.state.content_joiner = content_joiner
    own_routers = [events.router, health.router, otlp.router, otlp_logs.router]
    if key_store is not None:
        own_routers.append(keys.router)
    # Checked on the routers, before inclusion: what FastAPI keeps in app.routes differs between versions.
    open_routes = [route for router in own_routers for route in unguarded_routes(router.routes)]
    if open_routes:
        raise RuntimeError(
            "routes without an API-key check (add Depends(require_scope(...)) from collector.api.auth): "
            + ", ".join(open_routes)
        )
    for router in own_routers:
        app.include_router(router)
    for router in routers:
        _include_read_only(app, router)
    _add_docs(app)

    original_openapi = app.openapi

    def openapi_with_event_schema() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        event_schema = TraceEvent.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(event_schema.pop("$defs", {}))
        components["TraceEvent"] = event_schema
        schema["components"]["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "llmpulse keys create NAME --scope ..."}
        }
        schema["security"] = [{"apiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi_with_event_schema  # type: ignore[method-assign]
    return app


def _include_read_only(app: FastAPI, router: APIRouter) -> None:
    """Include a downstream router; each of its routes that declares no scope of its own needs `read`."""
    if not_api_routes := [route for route in router.routes if not isinstance(route, APIRoute)]:
        raise RuntimeError(f"routes that cannot carry an API-key check: {not_api_routes}")
    for route in router.routes:
        single = APIRouter()
        single.routes.append(route)
        guarded = isinstance(route, APIRoute) and route_is_guarded(route)
        app.include_router(
            single,
            prefix=router.prefix,
            dependencies=[] if guarded else [Depends(require_scope(Scope.READ))],
        )


def _add_docs(app: FastAPI) -> None:
    """/openapi.json, /docs and /redoc for any valid key. A browser asks for the key as a Basic-auth password
    (any user name) and sends it on to /openapi.json; the schema declares Bearer for "Try it out"."""
    any_key = [Depends(require_scope(None))]

    @app.get("/openapi.json", include_in_schema=False, dependencies=any_key)
    def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=any_key)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API")

    @app.get("/redoc", include_in_schema=False, dependencies=any_key)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} API")
