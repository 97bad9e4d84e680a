"""POST /v1/events: JSON array, single object or NDJSON, optionally gzip-compressed."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from collector.api.deps import ApiLimitsDep, IngestServiceDep
from collector.inserter import InserterOverloaded, InserterStopped
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
        413: {"description": "Body too large"},
        415: {"description": "Unsupported content type or encoding"},
        422: {"description": "Every item was rejected (all are kept in rejected_events)"},
        503: {"description": "Store unavailable or overloaded; retry later (nothing was stored from this request)"},
    },
)
async def post_events(request: Request, service: IngestServiceDep, limits: ApiLimitsDep) -> JSONResponse:
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
