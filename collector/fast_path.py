"""A fast path through contract v1 for events that are already in their final shape.

Contract v1 is `collector.events.TraceEvent`: it decides what is valid and explains what is not. Validating
a typical event with it costs ~10 µs, about a third of what the Kafka collector spends per event. Most
events need none of its coercions: every field already has its final type and is within its limits. For
those, `plain_event` checks the same constraints with plain type and range tests and returns the values the
model would have produced; for anything else (a missing `latency_ms`, a number sent as a string, an unknown
operation, a content-part list, any constraint failure) it returns None and the caller asks the model, which
accepts or explains. It never rejects anything itself.

tests/unit/test_fast_path.py holds the two in agreement: on simulated traffic and on mutations of every
field, the validator's rows and rejections are the same with and without this path.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final, NamedTuple

from collector.events import (
    MAX_DURATION_MS,
    MAX_TOKEN_COUNT,
    SCHEMA_VERSION,
    Operation,
    Status,
    TraceEvent,
    parse_timestamp,
)

# Maximum lengths (in characters, as pydantic counts them) of the contract's strings.
_EVENT_ID_MAX: Final = 256
_APP_MAX: Final = 128
_MODEL_MAX: Final = 256
_SHORT_TEXT: Final = (
    "trace_id", "span_id", "parent_span_id", "feature", "provider", "response_model", "prompt_id",
    "prompt_version", "user_id", "session_id", "error_type", "finish_reason",
)  # fmt: skip
_SHORT_TEXT_MAX: Final = 512
_ENVIRONMENT_MAX: Final = 64
_TAG_MAX: Final = 256
_ROLE_MAX: Final = 64
_MAX_EXACT_INT: Final = 2**53  # larger integers are not exact as floats: the model's to judge
_OPERATIONS: Final = frozenset(op.value for op in Operation)
_STATUSES: Final = frozenset(s.value for s in Status)
_ENVIRONMENT_DEFAULT: Final = "prod"
_OPERATION_DEFAULT: Final = Operation.CHAT.value
_STATUS_DEFAULT: Final = Status.OK.value
# "Not in the event" (None may be sent explicitly, and the model refuses it where it is not optional).
_NO_USAGE_SENT: Final = object()
_NOTHING_SENT: Final = object()
_USAGE_KEYS: Final = frozenset(
    ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
     "reasoning_output_tokens")
)  # fmt: skip
_OTHER_FIELDS: Final = (
    "start_time", "latency_ms", "end_time", "schema_version", "environment", "operation", "usage", "ttft_ms",
    "status", "input", "output", "cost_usd", "metadata", "tags",
)  # fmt: skip
FIELDS: Final = frozenset(("event_id", "app", "model", *_SHORT_TEXT, *_OTHER_FIELDS))

_CONTRACT_FIELDS: Final = frozenset(TraceEvent.model_fields)
if _CONTRACT_FIELDS != FIELDS:
    # A field added to the contract but not here would be taken for an unknown field and land in metadata.
    raise RuntimeError(
        "collector.fast_path is out of step with TraceEvent: "
        f"missing {sorted(_CONTRACT_FIELDS - FIELDS)}, extra {sorted(FIELDS - _CONTRACT_FIELDS)}"
    )


class PlainUsage(NamedTuple):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_output_tokens: int = 0


_NO_USAGE: Final = PlainUsage()


class PlainEvent:
    """The attributes of a validated `TraceEvent` that shaping a row reads, for an event that needed no model.

    `input`/`output` are a string, None, or the client's list of message objects (dicts with a string `role`
    and a string or null `content`).
    """

    __slots__ = (
        "app",
        "cost_usd",
        "end_time",
        "environment",
        "error_type",
        "event_id",
        "feature",
        "finish_reason",
        "input",
        "latency_ms",
        "metadata",
        "model",
        "model_extra",
        "operation",
        "output",
        "parent_span_id",
        "prompt_id",
        "prompt_version",
        "provider",
        "response_model",
        "schema_version",
        "session_id",
        "span_id",
        "start_time",
        "status",
        "tags",
        "trace_id",
        "ttft_ms",
        "usage",
        "user_id",
    )  # fmt: skip

    event_id: str
    app: str
    model: str
    start_time: datetime
    latency_ms: float
    end_time: datetime | None
    schema_version: int
    trace_id: str | None
    span_id: str | None
    parent_span_id: str | None
    environment: str
    feature: str | None
    operation: str
    provider: str | None
    response_model: str | None
    prompt_id: str | None
    prompt_version: str | None
    user_id: str | None
    session_id: str | None
    usage: PlainUsage
    ttft_ms: float | None
    status: str
    error_type: str | None
    finish_reason: str | None
    input: str | list[dict[str, Any]] | None
    output: str | list[dict[str, Any]] | None
    cost_usd: float | None
    metadata: dict[str, str]
    tags: list[str]
    model_extra: dict[str, Any] | None


def _messages(value: Any) -> bool:
    """A string, null, or a list of {role: str, content: str | null, ...} the model keeps as they are."""
    if value is None or type(value) is str:
        return True
    if type(value) is not list or not value:
        return False
    for message in value:
        if type(message) is not dict:
            return False
        role = message.get("role")
        if type(role) is not str or not 1 <= len(role) <= _ROLE_MAX:
            return False
        content = message.get("content")
        if content is not None and type(content) is not str:
            return False
    return True


def _timestamp(value: Any) -> datetime | None:
    if type(value) is not str and type(value) is not int and type(value) is not float:
        return None
    try:
        parsed = parse_timestamp(value)
    except ValueError:
        return None
    return parsed if type(parsed) is datetime and parsed.tzinfo is not None else None


def plain_event(value: dict[str, Any]) -> PlainEvent | None:
    """The validated event if `value` needs no coercion and meets every constraint; None: ask the model."""
    # Written flat, with locals: this runs once per event, and every attribute lookup and call shows.
    get = value.get
    event = PlainEvent()
    event_id, app, model = get("event_id"), get("app"), get("model")
    if (
        type(event_id) is not str or not 0 < len(event_id) <= _EVENT_ID_MAX
        or type(app) is not str or not 0 < len(app) <= _APP_MAX
        or type(model) is not str or not 0 < len(model) <= _MODEL_MAX
    ):  # fmt: skip
        return None
    event.event_id, event.app, event.model = event_id, app, model
    short = tuple(map(get, _SHORT_TEXT))
    for text in short:
        if text is not None and (type(text) is not str or len(text) > _SHORT_TEXT_MAX):
            return None
    (
        event.trace_id, event.span_id, event.parent_span_id, event.feature, event.provider, event.response_model,
        event.prompt_id, event.prompt_version, event.user_id, event.session_id, event.error_type,
        event.finish_reason,
    ) = short  # fmt: skip

    start_time = _timestamp(get("start_time"))
    if start_time is None:
        return None
    event.start_time = start_time
    # Deriving latency from end_time (and rejecting an end before the start) is the model's job.
    latency_ms = get("latency_ms")
    if type(latency_ms) is int and 0 <= latency_ms <= MAX_DURATION_MS:
        event.latency_ms = float(latency_ms)
    elif type(latency_ms) is float and 0.0 <= latency_ms <= MAX_DURATION_MS:
        event.latency_ms = latency_ms
    else:
        return None
    end_time = get("end_time")
    if end_time is not None:
        end_time = _timestamp(end_time)
        if end_time is None:
            return None
    event.end_time = end_time

    schema_version = get("schema_version", SCHEMA_VERSION)
    environment = get("environment", _ENVIRONMENT_DEFAULT)
    operation = get("operation", _OPERATION_DEFAULT)
    status = get("status", _STATUS_DEFAULT)
    if (
        type(schema_version) is not int or not 1 <= schema_version <= SCHEMA_VERSION
        or type(environment) is not str or not 0 < len(environment) <= _ENVIRONMENT_MAX
        or type(operation) is not str or operation not in _OPERATIONS
        or type(status) is not str or status not in _STATUSES
    ):  # fmt: skip
        return None
    event.schema_version, event.environment, event.operation, event.status = (
        schema_version, environment, operation, status
    )  # fmt: skip

    ttft_ms = get("ttft_ms")
    if ttft_ms is not None:
        if type(ttft_ms) is int and 0 <= ttft_ms <= MAX_DURATION_MS:
            ttft_ms = float(ttft_ms)
        elif not (type(ttft_ms) is float and 0.0 <= ttft_ms <= MAX_DURATION_MS):
            return None
    event.ttft_ms = ttft_ms
    cost_usd = get("cost_usd")
    if cost_usd is not None:
        if type(cost_usd) is int and 0 <= cost_usd <= _MAX_EXACT_INT:
            cost_usd = float(cost_usd)
        elif not (type(cost_usd) is float and 0.0 <= cost_usd < math.inf):
            return None
    event.cost_usd = cost_usd

    usage = get("usage", _NO_USAGE_SENT)
    if usage is _NO_USAGE_SENT:
        event.usage = _NO_USAGE
    elif type(usage) is dict and usage.keys() <= _USAGE_KEYS:
        for count in usage.values():
            if type(count) is not int or not 0 <= count <= MAX_TOKEN_COUNT:
                return None
        event.usage = PlainUsage(**usage)
    else:
        return None

    input_value, output_value = get("input"), get("output")
    if not (_messages(input_value) and _messages(output_value)):
        return None
    event.input, event.output = input_value, output_value

    metadata = get("metadata", _NOTHING_SENT)
    if metadata is _NOTHING_SENT:
        metadata = {}
    elif type(metadata) is dict:
        for key, item in metadata.items():
            if type(key) is not str or type(item) is not str:
                return None
        metadata = dict(metadata)
    else:
        return None
    event.metadata = metadata
    tags = get("tags", _NOTHING_SENT)
    if tags is _NOTHING_SENT:
        tags = []
    elif type(tags) is list:
        for tag in tags:
            if type(tag) is not str or len(tag) > _TAG_MAX:
                return None
        tags = list(tags)
    else:
        return None
    event.tags = tags

    extra = None
    if not value.keys() <= FIELDS:
        extra = {key: item for key, item in value.items() if key not in FIELDS}
    event.model_extra = extra
    return event
