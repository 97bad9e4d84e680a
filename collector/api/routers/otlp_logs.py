"""POST /v1/logs: OTLP/HTTP log records (protobuf or JSON, gzip/deflate) carrying GenAI prompts and completions.

Content log events are joined to the event of their span, whether they arrive before or after it
(collector/otlp/content.py); other log records are skipped, not rejected. Answers as POST /v1/traces does:
200 with an `ExportLogsServiceResponse` (`partial_success.rejected_log_records` counts records for apps the
caller's key may not write), 400 for a body that is not an OTLP logs request (kept in rejected_events), 413,
415, and 503 with Retry-After when the store did not take the records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)

from collector.api.auth import require_scope
from collector.api.deps import ApiLimitsDep, IngestServiceDep
from collector.api.routers.otlp import (
    _INVALID_ARGUMENT,
    _UNAVAILABLE,
    JSON,
    PROTOBUF,
    SOURCE,
    ContentJoinerDep,
    OtlpOptionsDep,
    _BodyTooLarge,
    _decompress,
    _error,
    _media_type,
    _read_body,
)
from collector.auth import Principal, Scope
from collector.inserter import InserterOverloaded, InserterStopped
from collector.otlp.content import ContentJoiner
from collector.otlp.export import LogsExport, export_logs
from collector.otlp.logs import decode_logs_json, decode_logs_proto
from collector.otlp.mapping import OtlpOptions
from collector.rows import Rejection
from collector.validation import PayloadError, PayloadTooLarge, UnsupportedMediaType

router = APIRouter(tags=["opentelemetry"])
log = logging.getLogger(__name__)

_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An OTLP ExportLogsServiceRequest. Content-Encoding gzip or deflate is accepted.",
        "content": {
            PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            JSON: {"schema": {"type": "object", "description": "OTLP/JSON: hex ids, integer enums"}},
        },
    }
}


def _decode_and_export(
    joiner: ContentJoiner,
    options: OtlpOptions,
    body: bytes,
    media: str,
    encoding: str | None,
    max_bytes: int,
    principal: Principal,
) -> LogsExport:
    data = _decompress(body, encoding, max_bytes)
    decode = decode_logs_proto if media == PROTOBUF else decode_logs_json
    decoded = decode(data, default_app=options.default_app, max_bytes=max_bytes)
    return export_logs(joiner, decoded, principal=principal)


def _response(media: str, export: LogsExport) -> Response:
    response = ExportLogsServiceResponse()
    if export.rejected:
        response.partial_success.CopyFrom(
            ExportLogsPartialSuccess(rejected_log_records=export.rejected, error_message=export.partial_message())
        )
    if media == PROTOBUF:
        return Response(response.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(response, indent=None), media_type=JSON)


@router.post(
    "/v1/logs",
    openapi_extra=_REQUEST_BODY,
    responses={
        200: {"description": "Stored; partial_success counts log records refused (apps the key may not write)"},
        400: {"description": "Not an OTLP logs request (kept whole in rejected_events)"},
        401: {"description": "No, unknown or revoked API key"},
        403: {"description": "The key's scope is not ingest or admin"},
        413: {"description": "Body too large"},
        415: {"description": "Unsupported content type or encoding"},
        503: {"description": "Store unavailable; retry after Retry-After seconds"},
    },
)
async def post_logs(
    request: Request,
    service: IngestServiceDep,
    limits: ApiLimitsDep,
    options: OtlpOptionsDep,
    joiner: ContentJoinerDep,
    principal: Principal = Depends(require_scope(Scope.INGEST)),
) -> Response:
    media = _media_type(request.headers.get("content-type"))
    if media not in (PROTOBUF, JSON):
        return _error(
            415,
            _INVALID_ARGUMENT,
            f"unsupported Content-Type {request.headers.get('content-type')!r}: OTLP/HTTP is {PROTOBUF} or {JSON}",
            JSON,
        )
    if joiner is None:
        return _error(503, _UNAVAILABLE, "this server does not store OTLP log content", media)
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    try:
        body = await _read_body(request, limits.max_body_bytes)
    except _BodyTooLarge as exc:
        return _error(413, _INVALID_ARGUMENT, str(exc), media)
    try:
        export = await run_in_threadpool(
            _decode_and_export,
            joiner,
            options,
            body,
            media,
            request.headers.get("content-encoding"),
            limits.max_body_bytes,
            principal,
        )
    except PayloadTooLarge as exc:
        return _error(413, _INVALID_ARGUMENT, str(exc), media)
    except UnsupportedMediaType as exc:
        return _error(415, _INVALID_ARGUMENT, str(exc), media)
    except PayloadError as exc:
        with contextlib.suppress(InserterOverloaded, InserterStopped):
            await asyncio.wrap_future(
                service.reject_whole(
                    Rejection(
                        index=-1, reason=str(exc), payload=body, source=SOURCE, source_ref=f"logs request {request_id}"
                    )
                )
            )
        return _error(400, _INVALID_ARGUMENT, str(exc), media)
    except Exception as exc:
        log.warning("storing OTLP log content failed: %s", exc)
        return _error(
            503, _UNAVAILABLE, f"the store did not accept the log records, retry later: {exc}", media, retry_after=5
        )
    return _response(media, export)
