"""A fast path through contract v1 for events that are already in their final shape.

Contract v1 is `collector.events.TraceEvent`: it decides what is valid and explains what is not. Validating
a typical event with it costs ~10 µs, and with JSON decoding it was most of what the Kafka collector spends
per event. Most events need none of its coercions: every field already has its final type and is within
its limits. For those, `PlainEvent` states the same constraints as a msgspec struct, which msgspec checks in
C while it decodes the JSON bytes (`decode_plain_event`, ~1.6 µs for a typical event, JSON parsing
included) or converts an already decoded object (`plain_event`, ~1 µs), and gives the values the model
would have produced. For anything else (a missing `latency_ms`, a number sent as a string, a content-part
list, any constraint failure, any JSON it would read differently; from bytes, also an unknown field that
belongs in `metadata`) it returns None and the caller asks the model, which accepts or explains. It never
rejects anything itself.

Every constraint errs on the side of None: a value the model might read differently (a cost beyond 2**53,
where floats stop being exact; numbers inside messages) goes to the model, and timestamps are read by the
contract's own parser. tests/unit/test_fast_path.py
holds the two in agreement: on simulated traffic and on mutations of every field, the validator's rows and
rejections are the same with and without this path, from decoded objects and from JSON bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from collector.events import (
    MAX_DURATION_MS,
    MAX_TOKEN_COUNT,
    SCHEMA_VERSION,
    Operation,
    Status,
    TraceEvent,
    parse_timestamp,
)

_ROLE_MAX: Final = 64
_MAX_EXACT_INT: Final = 2**53  # larger numbers are not exact as floats: the model's to judge
_OPERATIONS: Final = frozenset(op.value for op in Operation)
_STATUSES: Final = frozenset(s.value for s in Status)

_ShortText = Annotated[str, Meta(max_length=512)]
_TokenCount = Annotated[int, Meta(ge=0, le=MAX_TOKEN_COUNT)]
_DurationMs = Annotated[float, Meta(ge=0, le=MAX_DURATION_MS)]


class PlainUsage(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    input_tokens: _TokenCount = 0
    output_tokens: _TokenCount = 0
    cache_read_input_tokens: _TokenCount = 0
    cache_creation_input_tokens: _TokenCount = 0
    reasoning_output_tokens: _TokenCount = 0


class PlainEvent(msgspec.Struct, forbid_unknown_fields=True):
    """A contract-v1 event that needed no model: the attributes of a validated `TraceEvent` a row reads.

    Decoding refuses unknown fields (`plain_event` sets a decoded object's aside). `start_time`/`end_time`
    are datetimes and `input`/`output` a string, None, or the client's list of message objects (dicts with
    a string `role` and a string or null `content`) once decoding is done: `__post_init__` checks and
    converts them with the contract's own timestamp parser.
    """

    event_id: Annotated[str, Meta(min_length=1, max_length=256)]
    app: Annotated[str, Meta(min_length=1, max_length=128)]
    model: Annotated[str, Meta(min_length=1, max_length=256)]
    start_time: Any
    # Deriving latency from end_time (and rejecting an end before the start) is the model's job.
    latency_ms: _DurationMs
    end_time: Any = None
    schema_version: Annotated[int, Meta(ge=1, le=SCHEMA_VERSION)] = SCHEMA_VERSION
    trace_id: _ShortText | None = None
    span_id: _ShortText | None = None
    parent_span_id: _ShortText | None = None
    environment: Annotated[str, Meta(min_length=1, max_length=64)] = "prod"
    feature: _ShortText | None = None
    operation: str = Operation.CHAT.value
    provider: _ShortText | None = None
    response_model: _ShortText | None = None
    prompt_id: _ShortText | None = None
    prompt_version: _ShortText | None = None
    user_id: _ShortText | None = None
    session_id: _ShortText | None = None
    usage: PlainUsage = msgspec.field(default_factory=PlainUsage)
    ttft_ms: _DurationMs | None = None
    status: str = Status.OK.value
    error_type: _ShortText | None = None
    finish_reason: _ShortText | None = None
    input: Any = None
    output: Any = None
    cost_usd: Annotated[float, Meta(ge=0, le=_MAX_EXACT_INT)] | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    tags: list[Annotated[str, Meta(max_length=256)]] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        # Raising here makes msgspec fail the decode or conversion: the caller then asks the model.
        if self.operation not in _OPERATIONS or self.status not in _STATUSES:
            raise ValueError("not a plain operation or status")
        start_time = _timestamp(self.start_time)
        if start_time is None:
            raise ValueError("not a plain start_time")
        self.start_time = start_time
        if self.end_time is not None:
            end_time = _timestamp(self.end_time)
            if end_time is None:
                raise ValueError("not a plain end_time")
            self.end_time = end_time
        if not (_messages(self.input) and _messages(self.output)):
            raise ValueError("not plain input/output")


FIELDS: Final = frozenset(PlainEvent.__struct_fields__)
_CONTRACT_FIELDS: Final = frozenset(TraceEvent.model_fields)
if _CONTRACT_FIELDS != FIELDS:
    # A contract field missing here would be refused as unknown and never take the fast path; one here but
    # not in the contract would be accepted by this path and kept in metadata by the model.
    raise RuntimeError(
        "collector.fast_path is out of step with TraceEvent: "
        f"missing {sorted(_CONTRACT_FIELDS - FIELDS)}, extra {sorted(FIELDS - _CONTRACT_FIELDS)}"
    )

_DECODER: Final = msgspec.json.Decoder(PlainEvent)


def _messages(value: Any) -> bool:
    """A string, null, or a list of {role: str, content: str | null, ...} the model keeps as they are, every
    other value of a message a string or null too.

    Numbers and nested values (tool calls, content parts) go to the model: msgspec keeps integers beyond 64
    bits that orjson turns into floats, and the messages are stored as the client sent them.
    """
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
        for item in message.values():
            if item is not None and type(item) is not str:
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
    """The validated event if the decoded object `value` needs no coercion and meets every constraint;
    None: ask the model. Unknown fields are left out (`unknown_fields` lists them, for `metadata`)."""
    if not value.keys() <= FIELDS:
        value = {key: item for key, item in value.items() if key in FIELDS}
    try:
        return msgspec.convert(value, PlainEvent)
    except msgspec.ValidationError:
        return None


def unknown_fields(value: dict[str, Any]) -> dict[str, Any] | None:
    """The fields of `value` that are not in the contract, in the order sent (what the model keeps as
    `model_extra`), or None."""
    if value.keys() <= FIELDS:
        return None
    return {key: item for key, item in value.items() if key not in FIELDS}


def decode_plain_event(data: bytes) -> PlainEvent | None:
    """The validated event if the JSON `data` is one object that needs no coercion and meets every
    constraint; None: decode it as usual and ask the model (which also explains JSON that does not parse)."""
    try:
        return _DECODER.decode(data)
    except (msgspec.MsgspecError, ValueError):  # ValueError: bytes that are not UTF-8
        return None
