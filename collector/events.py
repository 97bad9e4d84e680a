"""Trace event contract v1: what an application sends for one LLM call, tool call or agent step.

Field names follow the OpenTelemetry GenAI semantic conventions' concepts. The JSON Schema published in
docs/event-schema.json is generated from `TraceEvent` (`llmpulse schema`), so this module is the contract.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    model_validator,
)

SCHEMA_VERSION = 1
SCHEMA_ID = "https://llmpulse.dev/schemas/event-v1.json"


class Operation(StrEnum):
    CHAT = "chat"
    TEXT_COMPLETION = "text_completion"
    EMBEDDINGS = "embeddings"
    EXECUTE_TOOL = "execute_tool"
    INVOKE_AGENT = "invoke_agent"
    RETRIEVAL = "retrieval"


class Status(StrEnum):
    OK = "ok"
    ERROR = "error"


def parse_timestamp(value: Any) -> Any:
    """Epoch milliseconds (number) or RFC 3339 with an explicit offset; never a bare local time."""
    if isinstance(value, bool):
        raise ValueError("expected RFC 3339 with offset or epoch milliseconds, got a boolean")
    if isinstance(value, int | float):
        if not 0 <= value < 32503680000000:  # year 3000 in ms; catches seconds-vs-ms mix-ups only loosely
            raise ValueError(f"epoch milliseconds out of range: {value}")
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"invalid timestamp {value!r}: expected RFC 3339 with offset "
                "(e.g. 2026-11-20T13:04:05.123Z) or epoch milliseconds"
            ) from None
        if parsed.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no UTC offset; add Z or +HH:MM")
        return parsed
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(parse_timestamp)]
ShortText = Annotated[str, Field(max_length=512)]
# Stored as UInt32: a larger count is a client bug, and rejecting it keeps it from failing a whole batch.
MAX_TOKEN_COUNT = 2**32 - 1
TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKEN_COUNT)]
# 30 days: longer than any call or agent run, and an end time that stays a representable date.
MAX_DURATION_MS = 30 * 24 * 3600 * 1000
DurationMs = Annotated[float, Field(ge=0, le=MAX_DURATION_MS, allow_inf_nan=False)]


class Usage(BaseModel):
    """Token counts as in OpenTelemetry: input includes cached tokens, output includes reasoning tokens."""

    model_config = ConfigDict(extra="forbid")

    input_tokens: TokenCount = 0
    output_tokens: TokenCount = 0
    cache_read_input_tokens: TokenCount = 0
    cache_creation_input_tokens: TokenCount = 0
    reasoning_output_tokens: TokenCount = 0


class ChatMessage(BaseModel):
    """One chat message; `content` may be a string or a list of content parts as OpenAI-style APIs send it."""

    model_config = ConfigDict(extra="allow")

    role: Annotated[str, Field(min_length=1, max_length=64)]
    content: str | list[Any] | None = None


MessageText = str | list[ChatMessage]


class TraceEvent(BaseModel):
    """One LLM call (or tool / agent step), as an application reports it."""

    model_config = ConfigDict(
        extra="allow",
        use_enum_values=True,
        title="llmpulse trace event v1",
        json_schema_extra={"$id": SCHEMA_ID},
    )

    event_id: Annotated[str, Field(min_length=1, max_length=256, description="Client-generated idempotency key.")]
    app: Annotated[str, Field(min_length=1, max_length=128, description="Application name.")]
    model: Annotated[str, Field(min_length=1, max_length=256, description="Requested model.")]
    start_time: Annotated[
        Timestamp, Field(description="RFC 3339 with offset, or epoch milliseconds.", json_schema_extra={})
    ]
    latency_ms: DurationMs | None = Field(
        default=None, description="Wall time of the call; required unless end_time is given."
    )
    end_time: Timestamp | None = Field(
        default=None, description="RFC 3339 with offset, or epoch milliseconds; alternative to latency_ms."
    )
    schema_version: Annotated[int, Field(ge=1, le=SCHEMA_VERSION)] = SCHEMA_VERSION
    trace_id: ShortText | None = None
    span_id: ShortText | None = None
    parent_span_id: ShortText | None = None
    environment: Annotated[str, Field(min_length=1, max_length=64)] = "prod"
    feature: ShortText | None = None
    operation: Operation = Operation.CHAT
    provider: ShortText | None = None
    response_model: ShortText | None = None
    prompt_id: ShortText | None = None
    prompt_version: ShortText | None = None
    user_id: ShortText | None = None
    session_id: ShortText | None = None
    usage: Usage = Field(default_factory=Usage)
    ttft_ms: DurationMs | None = Field(default=None, description="Time to first token (streams).")
    status: Status = Status.OK
    error_type: ShortText | None = None
    finish_reason: ShortText | None = None
    input: MessageText | None = Field(default=None, description="Prompt text, or a list of chat messages.")
    output: MessageText | None = Field(default=None, description="Response text, or a list of messages.")
    cost_usd: NonNegativeFloat | None = Field(
        default=None, description="Cost the client already knows; wins over the price catalog."
    )
    metadata: dict[str, str] = Field(default_factory=dict)
    tags: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _latency_or_end_time(self) -> TraceEvent:
        if self.latency_ms is None and self.end_time is None:
            raise ValueError("either latency_ms or end_time is required")
        if self.latency_ms is None:
            assert self.end_time is not None
            delta_ms = (self.end_time - self.start_time) / timedelta(milliseconds=1)
            if delta_ms < 0:
                raise ValueError("end_time is before start_time")
            self.latency_ms = delta_ms
        return self

    @property
    def finished_at(self) -> datetime:
        if self.end_time is not None:
            return self.end_time
        return self.start_time + timedelta(milliseconds=self.latency_ms or 0.0)


def event_json_schema() -> dict[str, Any]:
    """The published JSON Schema of contract v1 (docs/event-schema.json)."""
    schema = TraceEvent.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["description"] = (
        "One LLM call, tool call or agent step. Unknown top-level fields are accepted and kept in "
        "`metadata`. Text fields longer than the configured cap (32 KiB by default) are truncated and "
        "flagged; an event larger than the configured limit (1 MiB by default) is rejected."
    )
    props = schema["properties"]
    for name in ("start_time", "end_time"):
        props[name] = {
            "anyOf": [
                {"type": "string", "format": "date-time", "description": "RFC 3339 with offset"},
                {"type": "number", "minimum": 0, "description": "epoch milliseconds"},
            ]
            + ([{"type": "null"}] if name == "end_time" else []),
            "description": props[name].get("description", ""),
        }
    schema["anyOf"] = [{"required": ["latency_ms"]}, {"required": ["end_time"]}]
    return schema
