"""Column-oriented batches of validated, priced events, shaped like the `events` table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",
    "schema_version",
    "app",
    "environment",
    "feature",
    "operation",
    "provider",
    "model",
    "response_model",
    "prompt_id",
    "prompt_version",
    "trace_id",
    "span_id",
    "parent_span_id",
    "user_id",
    "session_id",
    "start_time",
    "end_time",
    "latency_ms",
    "ttft_ms",
    "status",
    "error_type",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
    "cost_input_usd",
    "cost_cache_read_usd",
    "cost_cache_write_usd",
    "cost_output_usd",
    "cost_reasoning_usd",
    "cost_usd",
    "price_source",
    "input_text",
    "output_text",
    "input_messages",
    "output_messages",
    "input_truncated",
    "output_truncated",
    "metadata",
    "tags",
    "source",
    "ingested_at",
)

_EVENT_ID = EVENT_COLUMNS.index("event_id")
_START_TIME = EVENT_COLUMNS.index("start_time")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Something a client sent that did not become an event, kept with its raw bytes."""

    index: int
    reason: str
    payload: bytes
    source: str
    source_ref: str


REJECTION_COLUMNS: tuple[str, ...] = ("received_at", "source", "source_ref", "item_index", "reason", "payload")


@dataclass(slots=True)
class EventBatch:
    """Events as parallel column lists, the shape clickhouse-connect inserts fastest."""

    columns: list[list[Any]] = field(default_factory=lambda: [[] for _ in EVENT_COLUMNS])

    def __len__(self) -> int:
        return len(self.columns[0])

    def append(self, row: tuple[Any, ...]) -> None:
        for column, value in zip(self.columns, row, strict=True):
            column.append(value)

    def extend(self, other: EventBatch) -> None:
        for mine, theirs in zip(self.columns, other.columns, strict=True):
            mine.extend(theirs)

    @property
    def event_ids(self) -> list[str]:
        return self.columns[_EVENT_ID]

    @property
    def start_times(self) -> list[datetime]:
        return self.columns[_START_TIME]

    def select(self, keep: list[int]) -> EventBatch:
        return EventBatch([[column[i] for i in keep] for column in self.columns])

    def column(self, name: str) -> list[Any]:
        return self.columns[EVENT_COLUMNS.index(name)]
