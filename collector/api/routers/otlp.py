"""POST /v1/traces: the OTLP/HTTP trace receiver (protobuf or JSON, gzip/deflate), with the spec's answers.

- 200 with an `ExportTraceServiceResponse` in the request's encoding once every event is stored; spans that
  were rejected (kept in rejected_events) are counted in `partial_success.rejected_spans` with a message.
  Non-LLM spans are skipped without being rejected: the sender did nothing wrong.
- 400 for a body that is not an OTLP trace request (kept whole in rejected_events), 413 over the body limit,
  415 for other content types or encodings — none retryable, nothing stored as events.
- 429 (writer queue full) or 503 (store unavailable) with Retry-After: nothing from the request was
  stored, and the exporter's retry is collapsed by the deterministic event ids if it partly was.
Error bodies are a `google.rpc.Status` in the request's encoding, as OTLP/HTTP specifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import zlib
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from collector.api.auth import require_scope
from collector.api.deps import ApiLimitsDep, IngestServiceDep
from collector.auth import Principal, Scope
from collector.inserter import InserterOverloaded, InserterStopped
from collector.otlp.content import ContentJoiner
from collector.otlp.decode import OtlpDecoded, decode_otlp_json, decode_otlp_proto
from collector.otlp.export import TraceExport, finish_trace_export, start_trace_export
from collector.otlp.mapping import OtlpOptions
from collector.rows import Rejection
from collector.service import IngestOutcome, IngestService
from collector.validation import PayloadError, PayloadTooLarge, UnsupportedMediaType

router = APIRouter(tags=["opentelemetry"])

SOURCE = "otlp"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MAX_REASONS_IN_MESSAGE = 5

# google.rpc.Code values used in error bodies.
_INVALID_ARGUMENT = 3
_RESOURCE_EXHAUSTED = 8
_UNAVAILABLE = 14

_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An OTLP ExportTraceServiceRequest. Content-Encoding gzip or deflate is accepted.",
        "content": {
            PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            JSON: {"schema": {"type": "object", "description": "OTLP/JSON: hex ids, integer enums"}},
        },
    }
}


def get_otlp_options(request: Request) -> OtlpOptions:
    options: OtlpOptions | None = getattr(request.app.state, "otlp_options", None)
    return options or OtlpOptions()


OtlpOptionsDep = Annotated[OtlpOptions, Depends(get_otlp_options)]


def get_content_joiner(request: Request) -> ContentJoiner | None:
    joiner: ContentJoiner | None = getattr(request.app.state, "content_joiner", None)
    return joiner


ContentJoinerDep = Annotated[ContentJoiner | None, Depends(get_content_joiner)]


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _rpc_status(code: int, message: str, media: str) -> bytes:
    if media == PROTOBUF:
        # google.rpc.Status {int32 code = 1; string message = 2;} — two fields do not justify a dependency
        # on googleapis-common-protos.
        text = message.encode()
        return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
    return b'{"code":%d,"message":%s}' % (code, orjson.dumps(message))


def _error(status: int, code: int, message: str, media: str, retry_after: int | None = None) -> Response:
    body_media = media if media in (PROTOBUF, JSON) else JSON
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return Response(
        _rpc_status(code, message, body_media), status_code=status, media_type=body_media, headers=headers
    )


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _BodyTooLarge(
            f"body of {declared} bytes exceeds the {max_bytes}-byte limit (LLMPULSE_MAX_BODY_BYTES)"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise _BodyTooLarge(f"body exceeds the {max_bytes}-byte limit (LLMPULSE_MAX_BODY_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


def _decompress(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    name = (encoding or "").strip().lower()
    if name in ("", "identity"):
        return body
    if name in ("gzip", "x-gzip"):
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif name == "deflate":
        decompressor = zlib.decompressobj()
    else:
        raise UnsupportedMediaType(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")
    try:
        data = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise PayloadError(f"body is not valid {name}: {exc}") from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"decompressed body exceeds the {max_bytes}-byte limit (LLMPULSE_MAX_BODY_BYTES)"
        )
    return data


def _decode_and_ingest(
    service: IngestService,
    options: OtlpOptions,
    body: bytes,
    media: str,
    encoding: str | None,
    max_bytes: int,
    request_id: str,
    principal: Principal,
    joiner: ContentJoiner | None = None,
) -> tuple[OtlpDecoded, IngestOutcome, TraceExport]:
    data = _decompress(body, encoding, max_bytes)
    decode = decode_otlp_proto if media == PROTOBUF else decode_otlp_json
    decoded = decode(data, options, max_bytes=max_bytes)
    # Content from OTLP log events waiting for these spans fills what they lack (collector/otlp/content.py).
    export = start_trace_export(
        service, decoded, joiner=joiner, principal=principal, source=SOURCE, source_ref=f"request {request_id}"
    )
    return decoded, export.outcome, export


def _partial_message(outcome: IngestOutcome, spans: int) -> str:
    reasons = [r.reason for r in outcome.rejections[:_MAX_REASONS_IN_MESSAGE]]
    more = len(outcome.rejections) - len(reasons)
    tail = f"; and {more} more" if more > 0 else ""
    return (
        f"{len(outcome.rejections)} of {spans} spans rejected (kept in rejected_events): "
        + "; ".join(reasons)
        + tail
    )


def _export_response(media: str, rejected: int, message: str) -> Response:
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
        )
    if media == PROTOBUF:
        return Response(response.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(response, indent=None), media_type=JSON)


@router.post(
    "/v1/traces",
    openapi_extra=_REQUEST_BODY,
    responses={
        200: {"description": "Stored; partial_success counts spans rejected into rejected_events"},
        401: {"description": "No, unknown or revoked API key (OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer ...)"},
        403: {"description": "The key's scope is not ingest or admin"},
        400: {"description": "Not an OTLP trace request (kept whole in rejected_events)"},
        413: {"description": "Body too large"},
        415: {"description": "Unsupported content type or encoding"},
        429: {"description": "Ingest queue full; retry after Retry-After seconds (nothing stored)"},
        503: {"description": "Store unavailable; retry after Retry-After seconds (nothing stored)"},
    },
)
async def post_traces(
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
            f"unsupported Content-Type {request.headers.get('content-type')!r}: OTLP/HTTP is "
            f"{PROTOBUF} or {JSON}",
            JSON,
        )
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    try:
        body = await _read_body(request, limits.max_body_bytes)
    except _BodyTooLarge as exc:
        return _error(413, _INVALID_ARGUMENT, str(exc), media)
    try:
        decoded, outcome, export = await run_in_threadpool(
            _decode_and_ingest,
            service,
            options,
            body,
            media,
            request.headers.get("content-encoding"),
            limits.max_body_bytes,
            request_id,
            principal,
            joiner,
        )
    except PayloadTooLarge as exc:
        return _error(413, _INVALID_ARGUMENT, str(exc), media)
    except UnsupportedMediaType as exc:
        return _error(415, _INVALID_ARGUMENT, str(exc), media)
    except PayloadError as exc:
        # Unreadable as a whole: keep the bytes so the sender's data can still be recovered.
        with contextlib.suppress(InserterOverloaded, InserterStopped):
            await asyncio.wrap_future(
                service.reject_whole(
                    Rejection(
                        index=-1,
                        reason=str(exc),
                        payload=body,
                        source=SOURCE,
                        source_ref=f"request {request_id}",
                    )
                )
            )
        return _error(400, _INVALID_ARGUMENT, str(exc), media)
    except InserterOverloaded as exc:
        return _error(
            429, _RESOURCE_EXHAUSTED, f"ingest is overloaded, retry later: {exc}", media, retry_after=1
        )
    except InserterStopped as exc:
        return _error(503, _UNAVAILABLE, str(exc), media, retry_after=5)
    try:
        await asyncio.wrap_future(outcome.written)
    except Exception as exc:
        return _error(
            503,
            _UNAVAILABLE,
            f"the store did not accept the batch, nothing from this request was stored: {exc}",
            media,
            retry_after=5,
        )
    if export.join is not None:
        await run_in_threadpool(finish_trace_export, export, joiner, principal)
    rejected = len(outcome.rejections)
    message = _partial_message(outcome, decoded.spans) if rejected else ""
    return _export_response(media, rejected, message)
