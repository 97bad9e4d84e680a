"""OTLP log records that carry GenAI prompts and completions → `ContentRecord`s waiting for their span.

The GenAI instrumentations emit content as log events (OTel "events" are log records with an event name),
not on the span, in their default content mode:
- the current conventions: one `gen_ai.client.inference.operation.details` event per call, with
  `gen_ai.input.messages`, `gen_ai.output.messages` and `gen_ai.system_instructions` as attributes (JSON
  strings or structured AnyValues) or as the keys of a kvlist body;
- the older ones: one event per message, `gen_ai.system.message`, `gen_ai.user.message`,
  `gen_ai.assistant.message`, `gen_ai.tool.message` (body `{content, tool_calls, id}`) and one
  `gen_ai.choice` per choice (body `{index, finish_reason, message: {role, content, tool_calls}}`).
The event name is the LogRecord's `event_name` field or, from older SDKs, its `event.name` attribute.

A record is tied to its span by trace_id/span_id, i.e. to the event `otel-<trace>-<span>` (the span mapping's
deterministic id). Records that are not GenAI content, or have no span to join, are skipped and counted:
they are ordinary logs, the sender did nothing wrong. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector.otlp.decode import (
    DEFAULT_MAX_BYTES,
    OtlpPayloadError,
    _get,
    _gunzip,
    _json_attributes,
    _json_id,
    _json_value,
    _list,
    _object,
    _proto_attributes,
    _proto_id,
    _proto_value,
    _uint64,
)
from collector.otlp.mapping import event_id_for
from collector.otlp.messages import Message, maybe_json, normalize_message, normalize_messages

DETAILS_EVENT: Final = "gen_ai.client.inference.operation.details"
MESSAGE_EVENTS: Final[dict[str, str]] = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CHOICE_EVENT: Final = "gen_ai.choice"
CONTENT_EVENTS: Final = frozenset({DETAILS_EVENT, CHOICE_EVENT, *MESSAGE_EVENTS})


@dataclass(frozen=True, slots=True)
class ContentRecord:
    """Messages one log record contributes to the event of span (trace_id, span_id)."""

    event_id: str
    app: str
    time_unix_nano: int
    seq: int
    event_name: str
    inputs: list[Message] | None
    outputs: list[Message] | None
    # Deterministic: a retried export of the same record collapses into one row.
    content_id: str


@dataclass(slots=True)
class LogsDecoded:
    records: list[ContentRecord] = field(default_factory=list)
    log_records: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class RawLog:
    """A log record as read, before it is known to be content."""

    trace_id: str
    span_id: str
    time_unix_nano: int
    event_name: str
    body: Any
    attributes: Mapping[str, Any]
    resource: Mapping[str, Any]


def _app(resource: Mapping[str, Any], default_app: str) -> str:
    # The same rule as the span mapping (collector.otlp.mapping._app): logs and spans of one SDK share it.
    service = resource.get("service.name")
    if isinstance(service, str) and service and not service.startswith("unknown_service"):
        return service[:128]
    project = resource.get("openinference.project.name")
    if isinstance(project, str) and project:
        return project[:128]
    return (service if isinstance(service, str) and service else default_app)[:128]


def _details(log: RawLog) -> tuple[list[Message] | None, list[Message] | None]:
    source: Mapping[str, Any] = log.attributes
    body = maybe_json(log.body)
    if isinstance(body, dict) and any(k.startswith("gen_ai.") for k in body):
        source = {**body, **{k: v for k, v in log.attributes.items() if k.startswith("gen_ai.")}}
    inputs = normalize_messages(source.get("gen_ai.input.messages"), "user")
    outputs = normalize_messages(source.get("gen_ai.output.messages"), "assistant")
    instructions = maybe_json(source.get("gen_ai.system_instructions"))
    if instructions not in (None, "", []):
        parts = instructions if isinstance(instructions, list) else [instructions]
        system = normalize_message(
            {
                "role": "system",
                "parts": [p if isinstance(p, dict) else {"type": "text", "content": str(p)} for p in parts],
            }
        )
        if system is not None:
            inputs = [system, *(inputs or [])]
    return inputs, outputs


def _message_body(log: RawLog) -> dict[str, Any]:
    body = maybe_json(log.body)
    if isinstance(body, dict):
        return dict(body)
    if isinstance(body, str):
        return {"content": body}
    # Some SDKs flatten the body into attributes (`content`, `message.content`, `gen_ai.event.content`).
    packed = maybe_json(log.attributes.get("gen_ai.event.content"))
    if isinstance(packed, dict):
        return dict(packed)
    flat: dict[str, Any] = {}
    for key, value in log.attributes.items():
        if key.startswith("message."):
            nested = flat.setdefault("message", {})
            if isinstance(nested, dict):
                nested[key[len("message.") :]] = maybe_json(value)
        elif not key.startswith(("gen_ai.", "event.")):
            flat[key] = maybe_json(value)
    return flat


def _with_content(messages: list[Message] | None) -> list[Message] | None:
    kept = [m for m in messages or () if m.get("content") not in (None, "", [])]
    return kept or None


def content_of(log: RawLog, *, seq: int, default_app: str) -> ContentRecord | None:
    """The content a log record carries for its span, or None (not GenAI content, or no span to join)."""
    name = log.event_name
    if name not in CONTENT_EVENTS or not log.trace_id or not log.span_id:
        return None
    inputs: list[Message] | None = None
    outputs: list[Message] | None = None
    if name == DETAILS_EVENT:
        inputs, outputs = _details(log)
    elif name == CHOICE_EVENT:
        message = normalize_message(_message_body(log), "assistant")
        if message is not None:
            if message.get("role") in (None, "user", "unknown"):
                message["role"] = "assistant"
            outputs = [message]
    else:
        role = MESSAGE_EVENTS[name]
        body = _message_body(log)
        body.setdefault("role", role)
        if role == "tool" and "id" in body and "tool_call_id" not in body:
            body["tool_call_id"] = body.pop("id")
        message = normalize_message(body, role)
        inputs = [message] if message is not None else None
    # With content capture off the instrumentations still emit the events, with roles but no content.
    inputs, outputs = _with_content(inputs), _with_content(outputs)
    if inputs is None and outputs is None:
        return None
    event_id = event_id_for(log.trace_id, log.span_id)
    digest = hashlib.blake2b(digest_size=12)
    digest.update(orjson.dumps([event_id, log.time_unix_nano, name, inputs, outputs], default=str))
    return ContentRecord(
        event_id=event_id,
        app=_app(log.resource, default_app),
        time_unix_nano=log.time_unix_nano,
        seq=seq,
        event_name=name,
        inputs=inputs,
        outputs=outputs,
        content_id=digest.hexdigest(),
    )


def records_from_logs(logs: Iterable[RawLog], *, default_app: str = "unknown_service") -> LogsDecoded:
    decoded = LogsDecoded()
    for log in logs:
        decoded.log_records += 1
        record = content_of(log, seq=decoded.log_records, default_app=default_app)
        if record is None:
            decoded.skipped += 1
        else:
            decoded.records.append(record)
    return decoded


# -- protobuf ----------------------------------------------------------------------------------------------


def logs_from_proto(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[RawLog]:
    try:
        request = ExportLogsServiceRequest.FromString(_gunzip(data, max_bytes))
    except DecodeError as exc:
        raise OtlpPayloadError(f"body is not a valid OTLP ExportLogsServiceRequest (protobuf): {exc}") from None
    return logs_from_request(request)


def logs_from_request(request: ExportLogsServiceRequest) -> Iterator[RawLog]:
    for resource_logs in request.resource_logs:
        resource = _proto_attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attributes = _proto_attributes(record.attributes)
                name = record.event_name or attributes.get("event.name") or ""
                yield RawLog(
                    trace_id=_proto_id(record.trace_id, 16),
                    span_id=_proto_id(record.span_id, 8),
                    time_unix_nano=record.time_unix_nano or record.observed_time_unix_nano,
                    event_name=str(name),
                    body=_proto_value(record.body) if record.HasField("body") else None,
                    attributes=attributes,
                    resource=resource,
                )


def decode_logs_proto(
    data: bytes, *, default_app: str = "unknown_service", max_bytes: int = DEFAULT_MAX_BYTES
) -> LogsDecoded:
    return records_from_logs(logs_from_proto(data, max_bytes=max_bytes), default_app=default_app)


# -- JSON --------------------------------------------------------------------------------------------------


def _json_log(record: Any, resource: Mapping[str, Any]) -> RawLog:
    record = _object(record, "a log record")
    attributes = _json_attributes(_list(record, "attributes", "attributes"))
    name = _get(record, "eventName", "event_name") or attributes.get("event.name") or ""
    time = _uint64(_get(record, "timeUnixNano", "time_unix_nano"), "timeUnixNano") or _uint64(
        _get(record, "observedTimeUnixNano", "observed_time_unix_nano"), "observedTimeUnixNano"
    )
    body = record.get("body")
    return RawLog(
        trace_id=_json_id(_get(record, "traceId", "trace_id"), 16),
        span_id=_json_id(_get(record, "spanId", "span_id"), 8),
        time_unix_nano=time,
        event_name=str(name),
        body=_json_value(body) if body is not None else None,
        attributes=attributes,
        resource=resource,
    )


def logs_from_json(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[RawLog]:
    try:
        document = orjson.loads(_gunzip(data, max_bytes))
    except orjson.JSONDecodeError as exc:
        raise OtlpPayloadError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    root = _object(document, "the request")
    for r, resource_logs in enumerate(_list(root, "resourceLogs", "resource_logs")):
        try:
            resource_logs = _object(resource_logs, "resourceLogs item")
            resource_obj = _object(resource_logs.get("resource"), "resource")
            resource = _json_attributes(_list(resource_obj, "attributes", "attributes"))
            scopes = _list(resource_logs, "scopeLogs", "scope_logs")
        except OtlpPayloadError as exc:
            raise OtlpPayloadError(f"resourceLogs[{r}]: {exc}") from None
        for s, scope_logs in enumerate(scopes):
            try:
                records = _list(_object(scope_logs, "scopeLogs item"), "logRecords", "log_records")
            except OtlpPayloadError as exc:
                raise OtlpPayloadError(f"resourceLogs[{r}].scopeLogs[{s}]: {exc}") from None
            for i, record in enumerate(records):
                try:
                    parsed = _json_log(record, resource)
                except OtlpPayloadError as exc:
                    raise OtlpPayloadError(f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]: {exc}") from None
                yield parsed


def decode_logs_json(
    data: bytes, *, default_app: str = "unknown_service", max_bytes: int = DEFAULT_MAX_BYTES
) -> LogsDecoded:
    return records_from_logs(logs_from_json(data, max_bytes=max_bytes), default_app=default_app)


def merge_content(records: Iterable[ContentRecord]) -> tuple[list[Message] | None, list[Message] | None]:
    """(inputs, outputs) of one event from all its content records: a details record holds the whole call and
    wins; per-message records are concatenated in emission order (time, then position in the request)."""
    ordered = sorted(records, key=lambda r: (r.time_unix_nano, r.seq, r.content_id))
    details = [r for r in ordered if r.event_name == DETAILS_EVENT]
    inputs: list[Message] | None = None
    outputs: list[Message] | None = None
    for record in details:
        inputs = record.inputs or inputs
        outputs = record.outputs or outputs
    if inputs is None:
        collected = [m for r in ordered if r.event_name != DETAILS_EVENT for m in (r.inputs or [])]
        inputs = collected or None
    if outputs is None:
        collected = [m for r in ordered if r.event_name != DETAILS_EVENT for m in (r.outputs or [])]
        outputs = collected or None
    return inputs, outputs
