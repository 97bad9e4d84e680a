"""One OpenTelemetry span (and its resource) → a contract-v1 event, or a reason to skip or to reject it.

Pure functions over plain Python values (`OtlpSpan`), so the protobuf and the JSON decoders share every rule.

Which spans become events (first convention present decides):
- `gen_ai.operation.name`: chat / generate_content / text_completion / embeddings / execute_tool /
  invoke_agent / retrieval; other values become `chat` events when the span names a model;
- OpenInference `openinference.span.kind`: LLM, EMBEDDING, TOOL, RETRIEVER, AGENT;
- OpenLLMetry `traceloop.span.kind` (tool, agent) and `llm.request.type` (chat, completion, embedding);
- otherwise, a span naming a model (`gen_ai.request.model`, `llm.model_name`, …) is a chat call.
Everything else (HTTP, database, framework, workflow spans) is skipped and counted, never rejected.

An LLM span (chat, text completion, embeddings) without a model is rejected, as is any span to be mapped
without ids or timestamps: they are the sender's data loss, reported back in `partial_success`. Tool, agent
and retrieval spans have no model of their own in the conventions, so their `model` is `tool:<name>`,
`agent:<name>` or `retrieval:<source>`, which keeps them apart from model statistics.

The attribute table users see is docs/otlp.md; keep the two in step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from collector.events import Operation
from collector.otlp.messages import EventLike, extract_messages, finish_reason_of, maybe_json

STATUS_CODE_ERROR: Final = 2

# Field caps of contract v1; longer values are cut here rather than costing the whole event.
_MAX_SHORT = 512
_MAX_APP = 128
_MAX_ENVIRONMENT = 64
_MAX_MODEL = 256

_LLM_OPERATIONS: Final = frozenset({Operation.CHAT, Operation.TEXT_COMPLETION, Operation.EMBEDDINGS})

_GENAI_OPERATIONS: Final[dict[str, Operation]] = {
    "chat": Operation.CHAT,
    "generate_content": Operation.CHAT,
    "text_completion": Operation.TEXT_COMPLETION,
    "completion": Operation.TEXT_COMPLETION,
    "embeddings": Operation.EMBEDDINGS,
    "embedding": Operation.EMBEDDINGS,
    "execute_tool": Operation.EXECUTE_TOOL,
    "invoke_agent": Operation.INVOKE_AGENT,
    "retrieval": Operation.RETRIEVAL,
    "retrieve": Operation.RETRIEVAL,
}
# Operations that are GenAI but not a call the analyzers should count (no traffic, no cost of their own).
_GENAI_SKIPPED_OPERATIONS: Final = frozenset({"create_agent", "invoke_workflow", "evaluate"})

_OPENINFERENCE_KINDS: Final[dict[str, Operation]] = {
    "LLM": Operation.CHAT,
    "EMBEDDING": Operation.EMBEDDINGS,
    "TOOL": Operation.EXECUTE_TOOL,
    "RETRIEVER": Operation.RETRIEVAL,
    "AGENT": Operation.INVOKE_AGENT,
}
_TRACELOOP_KINDS: Final[dict[str, Operation]] = {
    "tool": Operation.EXECUTE_TOOL,
    "agent": Operation.INVOKE_AGENT,
}
_TRACELOOP_REQUEST_TYPES: Final[dict[str, Operation]] = {
    "chat": Operation.CHAT,
    "completion": Operation.TEXT_COMPLETION,
    "embedding": Operation.EMBEDDINGS,
}

_REQUEST_MODEL_KEYS: Final = ("gen_ai.request.model", "llm.request.model_name", "llm.request.model")
_RESPONSE_MODEL_KEYS: Final = (
    "gen_ai.response.model",
    "llm.response.model_name",
    "llm.model_name",
    "embedding.model_name",
    "llm.response.model",
)
_PROVIDER_KEYS: Final = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
_INPUT_TOKEN_KEYS: Final = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
_OUTPUT_TOKEN_KEYS: Final = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
_TOTAL_TOKEN_KEYS: Final = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total")
_CACHE_READ_KEYS: Final = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
_CACHE_CREATION_KEYS: Final = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
_REASONING_KEYS: Final = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)
_FINISH_REASON_KEYS: Final = (
    "gen_ai.response.finish_reasons",
    "gen_ai.response.finish_reason",
    "llm.response.finish_reason",
    "llm.finish_reason",
)
_USER_KEYS: Final = (
    "user.id",
    "enduser.id",
    "traceloop.association.properties.user_id",
    "gen_ai.user",
    "llm.user",
)
_SESSION_KEYS: Final = (
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
    "traceloop.association.properties.conversation_id",
)
_ENVIRONMENT_KEYS: Final = ("deployment.environment.name", "deployment.environment")
# Streaming instrumentations that do not set gen_ai.response.time_to_first_chunk mark the first chunk with
# a span event instead (OpenInference, OpenLLMetry current and older).
_FIRST_CHUNK_EVENTS: Final = frozenset(
    {"First Token Stream Event", "gen_ai.content.completion.chunk", "llm.content.completion.chunk"}
)
_TRACELOOP_PROPERTIES: Final = "traceloop.association.properties."
_UNKNOWN_SERVICE: Final = "unknown_service"


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    time_unix_nano: int
    attributes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OtlpSpan:
    """A span as plain values: ids as lowercase hex ('' if absent or invalid), attributes as Python values."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: Mapping[str, Any]
    resource: Mapping[str, Any]
    status_code: int = 0
    status_message: str = ""
    kind: int = 0
    events: Sequence[SpanEvent] = ()
    scope_name: str = ""


@dataclass(frozen=True, slots=True)
class OtlpOptions:
    """Which attributes (span first, then resource) carry feature and prompt of contract v1; see settings."""

    feature_attributes: tuple[str, ...] = ("llmpulse.feature", "traceloop.association.properties.feature")
    prompt_id_attributes: tuple[str, ...] = (
        "llmpulse.prompt_id",
        "gen_ai.prompt.name",
        "prompt.id",
        "traceloop.prompt.key",
    )
    prompt_version_attributes: tuple[str, ...] = (
        "llmpulse.prompt_version",
        "gen_ai.prompt.version",
        "llm.prompt_template.version",
        "traceloop.prompt.version",
    )
    default_app: str = _UNKNOWN_SERVICE

    @classmethod
    def from_settings(cls, settings: OtlpSettings) -> OtlpOptions:
        return cls(
            feature_attributes=tuple(settings.otlp_feature_attributes),
            prompt_id_attributes=tuple(settings.otlp_prompt_id_attributes),
            prompt_version_attributes=tuple(settings.otlp_prompt_version_attributes),
            default_app=settings.otlp_default_app,
        )


class OtlpSettings(Protocol):
    """The part of llmpulse's Settings read here (collector code does not import llmpulse.settings)."""

    @property
    def otlp_feature_attributes(self) -> Sequence[str]: ...

    @property
    def otlp_prompt_id_attributes(self) -> Sequence[str]: ...

    @property
    def otlp_prompt_version_attributes(self) -> Sequence[str]: ...

    @property
    def otlp_default_app(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Mapped:
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


SpanOutcome = Mapped | Skipped | Rejected


def event_id_for(trace_id: str, span_id: str) -> str:
    """Deterministic, so an OTLP retry (or the same span over HTTP and Kafka) collapses into one event."""
    return f"otel-{trace_id}-{span_id}"


def _first(attrs: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def _text(value: Any, limit: int = _MAX_SHORT) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif not isinstance(value, str):
        value = orjson.dumps(value, default=str).decode() if isinstance(value, list | dict) else str(value)
    return value[:limit]


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _lookup(span: OtlpSpan, keys: Sequence[str]) -> Any:
    value = _first(span.attributes, keys)
    return value if value is not None else _first(span.resource, keys)


def _invocation_model(attrs: Mapping[str, Any]) -> str | None:
    # OpenInference puts the *response* model in llm.model_name; the requested one is only in the parameters.
    params = maybe_json(attrs.get("llm.invocation_parameters"))
    if isinstance(params, dict):
        model = params.get("model") or params.get("model_name")
        if isinstance(model, str) and model:
            return model
    return None


def _names_model(attrs: Mapping[str, Any]) -> bool:
    return _first(attrs, _REQUEST_MODEL_KEYS) is not None or _first(attrs, _RESPONSE_MODEL_KEYS) is not None


def classify(attrs: Mapping[str, Any]) -> Operation | str:
    """The operation a span records, or why it is not one llmpulse stores."""
    name = attrs.get("gen_ai.operation.name")
    if isinstance(name, str) and name:
        operation = _GENAI_OPERATIONS.get(name.lower())
        if operation is not None:
            return operation
        if name.lower() in _GENAI_SKIPPED_OPERATIONS:
            return f"GenAI operation {name!r} is not a recorded call"
        if _names_model(attrs):
            return Operation.CHAT
        return f"GenAI operation {name!r} without a model"
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str) and kind:
        operation = _OPENINFERENCE_KINDS.get(kind.upper())
        return operation if operation is not None else f"OpenInference {kind} span"
    traceloop_kind = attrs.get("traceloop.span.kind")
    if isinstance(traceloop_kind, str) and traceloop_kind:
        operation = _TRACELOOP_KINDS.get(traceloop_kind.lower())
        return operation if operation is not None else f"OpenLLMetry {traceloop_kind} span"
    request_type = attrs.get("llm.request.type")
    if isinstance(request_type, str) and request_type:
        operation = _TRACELOOP_REQUEST_TYPES.get(request_type.lower())
        if operation is not None:
            return operation
    if _names_model(attrs):
        return Operation.CHAT
    return "not a GenAI span"


def _placeholder_model(operation: Operation, span: OtlpSpan) -> str:
    attrs = span.attributes
    if operation is Operation.EXECUTE_TOOL:
        name = _first(attrs, ("gen_ai.tool.name", "tool.name", "traceloop.entity.name"))
        return f"tool:{name or span.name}"
    if operation is Operation.INVOKE_AGENT:
        name = _first(attrs, ("gen_ai.agent.name", "agent.name", "traceloop.entity.name"))
        return f"agent:{name or span.name}"
    source = _first(attrs, ("gen_ai.data_source.id", "db.system", "db.system.name"))
    return f"retrieval:{source or span.name}"


def _usage(attrs: Mapping[str, Any]) -> dict[str, int]:
    usage: dict[str, int] = {}
    input_tokens = _int(_first(attrs, _INPUT_TOKEN_KEYS))
    output_tokens = _int(_first(attrs, _OUTPUT_TOKEN_KEYS))
    total = _int(_first(attrs, _TOTAL_TOKEN_KEYS))
    # Some instrumentations report a total and only one side: the other side is implied.
    if total is not None:
        if input_tokens is None and output_tokens is not None:
            input_tokens = max(total - output_tokens, 0)
        elif output_tokens is None and input_tokens is not None:
            output_tokens = max(total - input_tokens, 0)
    for key, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cache_read_input_tokens", _int(_first(attrs, _CACHE_READ_KEYS))),
        ("cache_creation_input_tokens", _int(_first(attrs, _CACHE_CREATION_KEYS))),
        ("reasoning_output_tokens", _int(_first(attrs, _REASONING_KEYS))),
    ):
        if value is not None:
            usage[key] = value
    return usage


def _finish_reason(attrs: Mapping[str, Any], outputs: list[dict[str, Any]] | None) -> str | None:
    value = maybe_json(_first(attrs, _FINISH_REASON_KEYS))
    if isinstance(value, list | tuple):
        value = next((v for v in value if v), None)
    return _text(value) or finish_reason_of(outputs)


def _error_type(span: OtlpSpan) -> str | None:
    value = span.attributes.get("error.type")
    if isinstance(value, str) and value:
        # Some instrumentations format the class itself: "<class 'openai.BadRequestError'>".
        if value.startswith("<class '") and value.endswith("'>"):
            value = value[len("<class '") : -2]
        return value[:_MAX_SHORT]
    if span.status_code != STATUS_CODE_ERROR:
        return None
    for event in span.events:
        if event.name == "exception":
            exc_type = event.attributes.get("exception.type")
            if isinstance(exc_type, str) and exc_type:
                return exc_type[:_MAX_SHORT]
    return "_OTHER"  # the GenAI conventions' value for "failed, type unknown"


def _ttft_ms(span: OtlpSpan) -> float | None:
    seconds = _float(span.attributes.get("gen_ai.response.time_to_first_chunk"))
    if seconds is not None and seconds >= 0:
        return seconds * 1000.0
    for event in span.events:
        if event.name in _FIRST_CHUNK_EVENTS and event.time_unix_nano >= span.start_time_unix_nano:
            return (event.time_unix_nano - span.start_time_unix_nano) / 1e6
    return None


def _cost(attrs: Mapping[str, Any]) -> float | None:
    total = _float(attrs.get("llm.cost.total"))
    if total is None:
        prompt, completion = _float(attrs.get("llm.cost.prompt")), _float(attrs.get("llm.cost.completion"))
        if prompt is not None and completion is not None:
            total = prompt + completion
    return total if total is not None and total >= 0 else None


def _plain_io(attrs: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    value = _first(attrs, keys)
    if value is None:
        return None
    return value if isinstance(value, str) else _text(value, limit=1 << 30)


def _metadata(span: OtlpSpan, operation_name: Any) -> dict[str, str]:
    attrs = span.attributes
    metadata: dict[str, str] = {}
    for key, value in attrs.items():
        if key.startswith(_TRACELOOP_PROPERTIES):
            text = _text(value)
            if text is not None:
                metadata[key[len(_TRACELOOP_PROPERTIES) :]] = text
    extra = maybe_json(attrs.get("metadata"))  # OpenInference's free-form metadata, a JSON object
    if isinstance(extra, dict):
        for key, value in extra.items():
            text = _text(value)
            if text is not None:
                metadata.setdefault(str(key), text)
    for name, keys in (
        ("response_id", ("gen_ai.response.id",)),
        ("agent_name", ("gen_ai.agent.name", "agent.name")),
        ("agent_id", ("gen_ai.agent.id",)),
        ("tool", ("gen_ai.tool.name", "tool.name")),
        ("tool_call_id", ("gen_ai.tool.call.id", "tool.id")),
        ("tool_type", ("gen_ai.tool.type",)),
        ("data_source", ("gen_ai.data_source.id",)),
    ):
        text = _text(_first(attrs, keys))
        if text is not None:
            metadata[name] = text
    if isinstance(operation_name, str) and operation_name.lower() not in _GENAI_OPERATIONS:
        metadata["gen_ai.operation.name"] = operation_name[:_MAX_SHORT]
    if span.status_code == STATUS_CODE_ERROR and span.status_message:
        metadata["error_message"] = span.status_message[:_MAX_SHORT]
    if span.name:
        metadata["span_name"] = span.name[:_MAX_SHORT]
    if span.scope_name:
        metadata["instrumentation"] = span.scope_name[:_MAX_SHORT]
    return metadata


def _app(span: OtlpSpan, options: OtlpOptions) -> str:
    service = _text(span.resource.get("service.name"), _MAX_APP)
    if service and not service.startswith(_UNKNOWN_SERVICE):
        return service
    # Phoenix users name their project instead of the service; better than the SDK's "unknown_service".
    project = _text(span.resource.get("openinference.project.name"), _MAX_APP)
    return project or service or options.default_app[:_MAX_APP]


def map_span(span: OtlpSpan, options: OtlpOptions | None = None) -> SpanOutcome:
    options = options or OtlpOptions()
    attrs = span.attributes
    operation = classify(attrs)
    if not isinstance(operation, Operation):  # Operation is a StrEnum: test for it, not for str
        return Skipped(operation)
    if not span.trace_id or not span.span_id:
        return Rejected("span has no valid traceId/spanId (16- and 8-byte, not all zero)")
    if span.start_time_unix_nano <= 0:
        return Rejected("span has no start time (startTimeUnixNano)")
    if span.end_time_unix_nano <= 0:
        return Rejected("span has no end time (endTimeUnixNano)")
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return Rejected("span ends before it starts (endTimeUnixNano < startTimeUnixNano)")

    request_model = _first(attrs, _REQUEST_MODEL_KEYS) or _invocation_model(attrs)
    response_model = _first(attrs, _RESPONSE_MODEL_KEYS)
    model = request_model or response_model
    if model is None:
        if operation in _LLM_OPERATIONS:
            return Rejected(
                f"{operation.value} span has no model (gen_ai.request.model, gen_ai.response.model or llm.model_name)"
            )
        model = _placeholder_model(operation, span)

    inputs, outputs = extract_messages(attrs, span.events)
    event: dict[str, Any] = {
        "event_id": event_id_for(span.trace_id, span.span_id),
        "app": _app(span, options),
        "model": _text(model, _MAX_MODEL),
        "operation": operation.value,
        "start_time": span.start_time_unix_nano / 1e6,
        "latency_ms": (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "status": "error" if span.status_code == STATUS_CODE_ERROR or attrs.get("error.type") else "ok",
        "usage": _usage(attrs),
        "metadata": _metadata(span, attrs.get("gen_ai.operation.name")),
    }
    optional: dict[str, Any] = {
        "parent_span_id": span.parent_span_id or None,
        "environment": _text(_first(span.resource, _ENVIRONMENT_KEYS), _MAX_ENVIRONMENT),
        "provider": _text(_first(attrs, _PROVIDER_KEYS)),
        "response_model": _text(response_model) if response_model else None,
        "feature": _text(_lookup(span, options.feature_attributes)),
        "prompt_id": _text(_lookup(span, options.prompt_id_attributes)),
        "prompt_version": _text(_lookup(span, options.prompt_version_attributes)),
        "user_id": _text(_first(attrs, _USER_KEYS)),
        "session_id": _text(_first(attrs, _SESSION_KEYS)),
        "ttft_ms": _ttft_ms(span),
        "error_type": _error_type(span),
        "finish_reason": _finish_reason(attrs, outputs),
        "cost_usd": _cost(attrs),
        "input": inputs
        or _plain_io(
            attrs,
            (
                "gen_ai.tool.call.arguments",
                "traceloop.entity.input",
                "gen_ai.retrieval.query.text",
                "input.value",
                "gen_ai.prompt",
            ),
        ),
        "output": outputs
        or _plain_io(
            attrs,
            (
                "gen_ai.tool.call.result",
                "traceloop.entity.output",
                "gen_ai.retrieval.documents",
                "output.value",
                "gen_ai.completion",
            ),
        ),
    }
    tags = attrs.get("tag.tags")
    if isinstance(tags, list | tuple) and tags:
        event["tags"] = [str(t)[:256] for t in tags if t not in (None, "")]
    event.update({k: v for k, v in optional.items() if v is not None})
    return Mapped(event)


__all__ = [
    "EventLike",
    "Mapped",
    "OtlpOptions",
    "OtlpSpan",
    "Rejected",
    "Skipped",
    "SpanEvent",
    "SpanOutcome",
    "classify",
    "event_id_for",
    "map_span",
]
