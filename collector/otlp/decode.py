"""OTLP trace payloads (protobuf or JSON) → `RawItem`s for the shared `IngestService`.

`decode_otlp_proto` and `decode_otlp_json` are the whole interface for a transport: bytes in (gzip is
recognised by its magic number), an `OtlpDecoded` out — iterable over its `RawItem`s — or an
`OtlpPayloadError` when the payload cannot be read at all. Both are pure, so the HTTP receiver and the Kafka
consumer's per-topic decoders use them alike:

    decoded = decode_otlp_proto(message.value)
    outcome = ingest_otlp(service, decoded, source="kafka", source_ref=f"{topic}/{partition}@{offset}")

Spans that map to events are items whose value is a contract-v1 event dict, validated and priced by the
same `EventValidator` as native events. Spans the mapping rejects (an LLM span with no model, no ids, no
timestamps) are items with a `decode_error` whose payload is the span as read, so they land in
rejected_events with a reason. Skipped spans produce no item; `OtlpDecoded.skipped` counts them.

Protobuf goes through the `opentelemetry-proto` classes. JSON is read directly from the parsed document
instead of `json_format.ParseDict` into those classes: ParseDict costs ~300 µs a span against ~10 µs for
the protobuf path, and OTLP/JSON differs from protobuf's JSON mapping anyway (hex ids, not base64).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector.auth import Principal
from collector.otlp.mapping import Mapped, OtlpOptions, OtlpSpan, Rejected, SpanEvent, map_span
from collector.service import IngestOutcome, IngestService
from collector.store import WriteResult
from collector.validation import PayloadError, PayloadTooLarge, RawItem, ValidationResult

DEFAULT_MAX_BYTES = 64 * 1024 * 1024

__all__ = [
    "OtlpDecoded",
    "OtlpPayloadError",
    "decode_otlp_json",
    "decode_otlp_proto",
    "ingest_otlp",
    "spans_from_json",
    "spans_from_proto",
]


class OtlpPayloadError(PayloadError):
    """The payload is not an OTLP trace export request at all; none of it can be used (HTTP 400)."""


@dataclass(slots=True)
class OtlpDecoded:
    """What one export request holds: items for the ingest service, and how many spans were skipped."""

    items: list[RawItem] = field(default_factory=list)
    spans: int = 0
    skipped: int = 0

    def __iter__(self) -> Iterator[RawItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


# -- shared ------------------------------------------------------------------------------------------------


def _gunzip(data: bytes, max_bytes: int) -> bytes:
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise OtlpPayloadError(f"payload is not valid gzip: {exc}") from None
    if len(out) > max_bytes:
        raise PayloadTooLarge(f"decompressed payload exceeds {max_bytes} bytes")
    return out


def _span_json(span: OtlpSpan) -> bytes:
    """A rejected span as llmpulse read it, so rejected_events keeps what the sender meant to send."""
    return orjson.dumps(
        {
            "traceId": span.trace_id,
            "spanId": span.span_id,
            "parentSpanId": span.parent_span_id,
            "name": span.name,
            "kind": span.kind,
            "startTimeUnixNano": str(span.start_time_unix_nano),
            "endTimeUnixNano": str(span.end_time_unix_nano),
            "status": {"code": span.status_code, "message": span.status_message},
            "attributes": dict(span.attributes),
            "events": [
                {"name": e.name, "timeUnixNano": str(e.time_unix_nano), "attributes": dict(e.attributes)}
                for e in span.events
            ],
            "resource": dict(span.resource),
            "scope": span.scope_name,
        },
        default=str,
    )


def _where(span: OtlpSpan, index: int) -> str:
    ids = f"{span.trace_id or '?'}/{span.span_id or '?'}"
    return f"span {index} {span.name!r} ({ids})"


def items_from_spans(
    spans: Iterable[OtlpSpan], options: OtlpOptions | None = None, *, first_index: int = 0
) -> OtlpDecoded:
    """Map every span; the whole request is decoded before anything is handed on, so a payload error
    part-way leaves nothing stored."""
    options = options or OtlpOptions()
    decoded = OtlpDecoded()
    for span in spans:
        index = first_index + decoded.spans
        decoded.spans += 1
        outcome = map_span(span, options)
        if isinstance(outcome, Mapped):
            decoded.items.append(RawItem(index, outcome.event, None, None, _where(span, index)))
        elif isinstance(outcome, Rejected):
            decoded.items.append(RawItem(index, None, _span_json(span), outcome.reason, _where(span, index)))
        else:
            decoded.skipped += 1
    return decoded


def ingest_otlp(
    service: IngestService,
    decoded: OtlpDecoded,
    *,
    source: str,
    source_ref: str,
    principal: Principal | None = None,
) -> IngestOutcome:
    """Hand decoded spans to the shared ingest path; skipped spans are counted once the rest is accepted.
    `principal`: the authenticated caller (network receivers), whose key's apps are checked per span."""
    if decoded.items:
        outcome = service.ingest(decoded.items, source=source, source_ref=source_ref, principal=principal)
    else:
        # Traces without any LLM span are common; they need no trip through the writer's batching delay.
        done: Future[WriteResult] = Future()
        done.set_result(WriteResult(0, 0))
        outcome = IngestOutcome(ValidationResult(), done)
    if decoded.skipped:
        service.metrics.otlp_spans_skipped.labels(source).inc(decoded.skipped)
    return outcome


# -- protobuf ----------------------------------------------------------------------------------------------


def _proto_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def _proto_attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for kv in pairs:
        value = kv.value
        # Most GenAI attributes are strings; skipping the general conversion for them is a third of decoding.
        if value.WhichOneof("value") == "string_value":
            attributes[kv.key] = value.string_value
        else:
            attributes[kv.key] = _proto_value(value)
    return attributes


def _proto_id(raw: bytes, size: int) -> str:
    return raw.hex() if len(raw) == size and any(raw) else ""


def spans_from_proto(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[OtlpSpan]:
    try:
        request = ExportTraceServiceRequest.FromString(_gunzip(data, max_bytes))
    except DecodeError as exc:
        raise OtlpPayloadError(f"body is not a valid OTLP ExportTraceServiceRequest (protobuf): {exc}") from None
    for resource_spans in request.resource_spans:
        resource = _proto_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            for span in scope_spans.spans:
                yield OtlpSpan(
                    trace_id=_proto_id(span.trace_id, 16),
                    span_id=_proto_id(span.span_id, 8),
                    parent_span_id=_proto_id(span.parent_span_id, 8),
                    name=span.name,
                    start_time_unix_nano=span.start_time_unix_nano,
                    end_time_unix_nano=span.end_time_unix_nano,
                    attributes=_proto_attributes(span.attributes),
                    resource=resource,
                    status_code=span.status.code,
                    status_message=span.status.message,
                    kind=span.kind,
                    events=[SpanEvent(e.name, e.time_unix_nano, _proto_attributes(e.attributes)) for e in span.events],
                    scope_name=scope_name,
                )


def decode_otlp_proto(
    data: bytes, options: OtlpOptions | None = None, *, first_index: int = 0, max_bytes: int = DEFAULT_MAX_BYTES
) -> OtlpDecoded:
    """An OTLP/protobuf `ExportTraceServiceRequest` (optionally gzipped) → items numbered from `first_index`;
    raises OtlpPayloadError (a PayloadError) when the bytes are not such a request."""
    return items_from_spans(spans_from_proto(data, max_bytes=max_bytes), options, first_index=first_index)


# -- JSON --------------------------------------------------------------------------------------------------
# Helpers raise OtlpPayloadError with a location relative to what they read; the span loop prefixes the
# span's path only when something is wrong, because formatting paths eagerly costs more than the decoding.

_SPAN_KINDS = dict(Span.SpanKind.items())
_STATUS_CODES = dict(Status.StatusCode.items())


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    # OTLP/JSON uses lowerCamelCase; protobuf's JSON mapping also accepts the proto field names.
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(obj: Mapping[str, Any], camel: str, snake: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if type(value) is not list:
        raise OtlpPayloadError(f"{camel} must be an array, got {type(value).__name__}")
    return value


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise OtlpPayloadError(f"{what} must be an object, got {type(value).__name__}")
    return value


def _uint64(value: Any, what: str) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise OtlpPayloadError(f"{what} must be an integer or a decimal string, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise OtlpPayloadError(f"{what} must be an integer or a decimal string, got {value!r}") from None
    if number < 0:
        raise OtlpPayloadError(f"{what} must not be negative, got {value!r}")
    return number


def _enum(value: Any, names: Mapping[str, int], what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value in names:
        return names[value]
    raise OtlpPayloadError(f"{what} must be an enum number or name, got {value!r}")


def _json_id(value: Any, size: int) -> str:
    """Hex per OTLP/JSON; base64 (protobuf's own JSON mapping, used by some hand-rolled senders) is ok."""
    if not isinstance(value, str) or not value:
        return ""
    text = value.strip().lower()
    if len(text) == 2 * size:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
    else:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
    return raw.hex() if len(raw) == size and any(raw) else ""


def _json_value(value: Any) -> Any:
    if type(value) is not dict:
        return None
    for key, item in value.items():
        if key in ("stringValue", "string_value"):
            return item if isinstance(item, str) else str(item)
        if key in ("intValue", "int_value"):
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise OtlpPayloadError("intValue must be an integer or a decimal string")
            try:
                return int(item)
            except ValueError:
                raise OtlpPayloadError(f"intValue {item!r} is not an integer") from None
        if key in ("doubleValue", "double_value"):
            try:
                return float(item)  # also "NaN", "Infinity", "-Infinity" as the JSON mapping spells them
            except (TypeError, ValueError):
                raise OtlpPayloadError(f"doubleValue {item!r} is not a number") from None
        if key in ("boolValue", "bool_value"):
            return bool(item)
        if key in ("arrayValue", "array_value"):
            return [_json_value(v) for v in _list(_object(item, key), "values", "values")]
        if key in ("kvlistValue", "kvlist_value"):
            return _json_attributes(_list(_object(item, key), "values", "values"))
        if key in ("bytesValue", "bytes_value"):
            return item if isinstance(item, str) else None
    return None


def _json_attributes(pairs: list[Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for pair in pairs:
        if type(pair) is not dict:
            raise OtlpPayloadError("an attribute must be an object with key and value")
        key = pair.get("key")
        if not isinstance(key, str):
            continue
        value = pair.get("value")
        item = value.get("stringValue") if type(value) is dict else None
        if type(item) is str:  # the common case, without the general conversion
            attributes[key] = item
            continue
        try:
            attributes[key] = _json_value(value)
        except OtlpPayloadError as exc:
            raise OtlpPayloadError(f"attribute {key!r}: {exc}") from None
    return attributes


def _json_events(span: Mapping[str, Any]) -> list[SpanEvent]:
    events = []
    for i, event in enumerate(_list(span, "events", "events")):
        try:
            event = _object(event, "event")
            events.append(
                SpanEvent(
                    name=str(event.get("name") or ""),
                    time_unix_nano=_uint64(_get(event, "timeUnixNano", "time_unix_nano"), "timeUnixNano"),
                    attributes=_json_attributes(_list(event, "attributes", "attributes")),
                )
            )
        except OtlpPayloadError as exc:
            raise OtlpPayloadError(f"events[{i}]: {exc}") from None
    return events


def _json_span(span: Any, resource: Mapping[str, Any], scope_name: str) -> OtlpSpan:
    span = _object(span, "a span")
    status = _object(span.get("status"), "status")
    message = status.get("message")
    return OtlpSpan(
        trace_id=_json_id(_get(span, "traceId", "trace_id"), 16),
        span_id=_json_id(_get(span, "spanId", "span_id"), 8),
        parent_span_id=_json_id(_get(span, "parentSpanId", "parent_span_id"), 8),
        name=str(span.get("name") or ""),
        start_time_unix_nano=_uint64(_get(span, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano"),
        end_time_unix_nano=_uint64(_get(span, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano"),
        attributes=_json_attributes(_list(span, "attributes", "attributes")),
        resource=resource,
        status_code=_enum(status.get("code"), _STATUS_CODES, "status.code"),
        status_message=message if isinstance(message, str) else "",
        kind=_enum(span.get("kind"), _SPAN_KINDS, "kind"),
        events=_json_events(span),
        scope_name=scope_name,
    )


def _json_scopes(resource_spans: Any) -> tuple[dict[str, Any], list[Any]]:
    resource_spans = _object(resource_spans, "resourceSpans item")
    resource_obj = _object(resource_spans.get("resource"), "resource")
    resource = _json_attributes(_list(resource_obj, "attributes", "attributes"))
    scopes = _list(resource_spans, "scopeSpans", "scope_spans")
    # Exporters from before OTLP 0.19 named the level "instrumentationLibrarySpans".
    return resource, scopes or _list(resource_spans, "instrumentationLibrarySpans", "instrumentation_library_spans")


def spans_from_json(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[OtlpSpan]:
    try:
        document = orjson.loads(_gunzip(data, max_bytes))
    except orjson.JSONDecodeError as exc:
        raise OtlpPayloadError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    root = _object(document, "the request")
    for r, resource_spans in enumerate(_list(root, "resourceSpans", "resource_spans")):
        try:
            resource, scopes = _json_scopes(resource_spans)
        except OtlpPayloadError as exc:
            raise OtlpPayloadError(f"resourceSpans[{r}]: {exc}") from None
        for s, scope_spans in enumerate(scopes):
            try:
                scope_obj = _object(scope_spans, "scopeSpans item")
                scope = _object(scope_obj.get("scope") or scope_obj.get("instrumentationLibrary"), "scope")
                spans = _list(scope_obj, "spans", "spans")
            except OtlpPayloadError as exc:
                raise OtlpPayloadError(f"resourceSpans[{r}].scopeSpans[{s}]: {exc}") from None
            scope_name = str(scope.get("name") or "")
            for i, span in enumerate(spans):
                try:
                    parsed = _json_span(span, resource, scope_name)
                except OtlpPayloadError as exc:
                    raise OtlpPayloadError(f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]: {exc}") from None
                yield parsed


def decode_otlp_json(
    data: bytes, options: OtlpOptions | None = None, *, first_index: int = 0, max_bytes: int = DEFAULT_MAX_BYTES
) -> OtlpDecoded:
    """An OTLP/JSON `ExportTraceServiceRequest` (optionally gzipped) → items numbered from `first_index`;
    raises OtlpPayloadError (a PayloadError) when the bytes are not such a request."""
    return items_from_spans(spans_from_json(data, max_bytes=max_bytes), options, first_index=first_index)
