"""POST /v1/events: JSON array, single object or NDJSON, optionally gzip-compressed."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from collector.api.auth import require_scope
from collector.api.deps import ApiLimitsDep, IngestServiceDep
from collector.auth import Principal, Scope
from collector.inserter import InserterOverloaded, InserterStopped
from collector.queries import MAX_LIMIT, ClickHouseEventQueries, EventFilter, EventQueryError, Status
from collector.rows import Rejection
from collector.validation import PayloadError, PayloadTooLarge, UnsupportedMediaType
from collector.validation_pool import BodyRequest

router = APIRouter(tags=["events"])

SOURCE = "http"


class ItemError(BaseModel):
    index: int
    reason: str


class IngestResponse(BaseModel):
    request_id: str
    accepted: int
    rejected: int
    duplicates: int
    unpriced: int
    errors: list[ItemError]


_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A JSON array of events, one event object, or NDJSON (one event per line). "
        "Content-Encoding: gzip is accepted.",
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/TraceEvent"}}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one JSON event per line"}},
        },
    }
}


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(
            413, f"body of {declared} bytes exceeds the {max_bytes}-byte limit (LLMPULSE_MAX_BODY_BYTES)"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, f"body exceeds the {max_bytes}-byte limit (LLMPULSE_MAX_BODY_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/v1/events",
    response_model=IngestResponse,
    openapi_extra=_REQUEST_BODY,
    responses={
        401: {"description": "No, unknown or revoked API key"},
        403: {"description": "The key's scope is not ingest or admin"},
        413: {"description": "Body too large"},
        415: {"description": "Unsupported content type or encoding"},
        422: {"description": "Every item was rejected (all are kept in rejected_events)"},
        503: {"description": "Store unavailable or overloaded; retry later (nothing was stored from this request)"},
    },
)
async def post_events(
    request: Request,
    service: IngestServiceDep,
    limits: ApiLimitsDep,
    principal: Principal = Depends(require_scope(Scope.INGEST)),
) -> JSONResponse:
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    body = await _read_body(request, limits.max_body_bytes)
    content_type = request.headers.get("content-type")
    try:
        outcome = await run_in_threadpool(
            service.ingest_body,
            BodyRequest(
                body=body,
                content_type=content_type,
                content_encoding=request.headers.get("content-encoding"),
                max_bytes=limits.max_body_bytes,
                source=SOURCE,
                source_ref=f"request {request_id}",
                principal=principal,
            ),
        )
    except PayloadTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except UnsupportedMediaType as exc:
        raise HTTPException(415, str(exc)) from None
    except PayloadError as exc:
        # Unreadable as a whole: keep the bytes so the sender's data can still be recovered.
        kept = Rejection(index=-1, reason=str(exc), payload=body, source=SOURCE, source_ref=f"request {request_id}")
        with contextlib.suppress(InserterOverloaded, InserterStopped):
            await asyncio.wrap_future(service.reject_whole(kept))
        raise HTTPException(400, str(exc)) from None
    except InserterOverloaded as exc:
        raise HTTPException(503, f"ingest is overloaded, retry later: {exc}", headers={"Retry-After": "1"}) from None
    except InserterStopped as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None
    try:
        written = await asyncio.wrap_future(outcome.written)
    except Exception as exc:
        raise HTTPException(
            503,
            f"the store did not accept the batch, nothing from this request was stored: {exc}",
            headers={"Retry-After": "5"},
        ) from None
    validation = outcome.validation
    response = IngestResponse(
        request_id=request_id,
        accepted=validation.accepted,
        rejected=len(validation.rejections),
        duplicates=written.duplicates,
        unpriced=validation.unpriced,
        errors=[ItemError(index=r.index, reason=r.reason) for r in validation.rejections],
    )
    status = 422 if validation.rejections and not validation.accepted else 200
    return JSONResponse(response.model_dump(), status_code=status)


def get_event_queries(request: Request) -> ClickHouseEventQueries:
    queries: ClickHouseEventQueries | None = getattr(request.app.state, "event_queries", None)
    if queries is None:
        raise HTTPException(503, "this API was started without event queries (no store to read)")
    return queries


@router.get(
    "/v1/events",
    responses={
        400: {"description": "A filter that cannot be used (bad cursor, until before since)"},
        401: {"description": "No, unknown or revoked API key"},
        403: {"description": "The key's scope is not read or admin, or it is not bound to the requested app"},
    },
)
def list_events(
    queries: ClickHouseEventQueries = Depends(get_event_queries),
    principal: Principal = Depends(require_scope(Scope.READ)),
    app: str | None = Query(None, description="Only this app"),
    model: str | None = Query(None, description="Only this (requested) model"),
    status: Status | None = Query(None, description="ok or error"),
    since: datetime | None = Query(None, description="start_time at or after this RFC 3339 time"),
    until: datetime | None = Query(None, description="start_time before this RFC 3339 time"),
    trace_id: str | None = Query(None),
    event_id: str | None = Query(None),
    prompt_version: str | None = Query(None),
    limit: int = Query(100, ge=1, le=MAX_LIMIT, description="Events per page"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    with_text: bool = Query(False, description="Include prompt and response texts"),
) -> dict[str, Any]:
    """Stored events, newest first, one page at a time (the same query as `llmpulse events`)."""
    if app is not None and principal.apps and app not in principal.apps:
        raise HTTPException(403, f"key {principal.name!r} may not read app {app!r}")
    try:
        page = queries.page(
            EventFilter(
                app=app, model=model, status=status, since=_utc(since), until=_utc(until), trace_id=trace_id,
                event_id=event_id, prompt_version=prompt_version, allowed_apps=principal.apps, limit=limit,
                cursor=cursor, with_text=with_text,
            )
        )
    except EventQueryError as exc:
        raise HTTPException(400, str(exc)) from None
    return page.to_json()


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
