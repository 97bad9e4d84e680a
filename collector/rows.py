"""Column-oriented batches of validated, priced events, shaped like the `events` table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

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
    """Validated events: Arrow tables (from validation worker processes) and/or row tuples.

    Row tuples follow EVENT_COLUMNS. Rows are appended whole because one C-level transpose at insert
    time is far cheaper than appending to 45 column lists per event. Everywhere order matters, tables
    come first, then rows.
    """

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    tables: list[pa.Table] = field(default_factory=list)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> EventBatch:
        return cls(tables=[table]) if table.num_rows else cls()

    def __len__(self) -> int:
        return len(self.rows) + sum(t.num_rows for t in self.tables)

    def append(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)

    def extend(self, other: EventBatch) -> None:
        if not (self.tables or other.tables):
            self.rows.extend(other.rows)
            return
        # Once Arrow is involved everything becomes Arrow, in order: positions in the merged batch must
        # follow the parts' order, since results are mapped back to submissions by position.
        if self.rows:
            self.tables.append(rows_to_arrow(self.rows))
            self.rows = []
        self.tables.extend(other.tables)
        if other.rows:
            self.tables.append(rows_to_arrow(other.rows))

    @property
    def columns(self) -> list[list[Any]]:
        """Row tuples transposed to column lists (row batches only)."""
        if self.tables:
            table = self.to_arrow()
            return [table.column(name).to_pylist() for name in EVENT_COLUMNS]
        if not self.rows:
            return [[] for _ in EVENT_COLUMNS]
        return [list(column) for column in zip(*self.rows, strict=True)]

    @property
    def event_ids(self) -> list[str]:
        ids: list[str] = []
        for table in self.tables:
            ids.extend(table.column("event_id").to_pylist())
        ids.extend(row[_EVENT_ID] for row in self.rows)
        return ids

    @property
    def start_times_ms(self) -> list[int]:
        times: list[int] = []
        for table in self.tables:
            times.extend(table.column("start_time").cast(pa.int64()).to_pylist())
        times.extend(_epoch_ms(row[_START_TIME]) for row in self.rows)
        return times

    def to_arrow(self) -> pa.Table:
        parts = list(self.tables)
        if self.rows or not parts:
            parts.append(rows_to_arrow(self.rows))
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

    def select(self, keep: list[int]) -> EventBatch:
        if not self.tables:
            return EventBatch([self.rows[i] for i in keep])
        return EventBatch(tables=[self.to_arrow().take(pa.array(keep, type=pa.int64()))])

    def column(self, name: str) -> list[Any]:
        if self.tables:
            return list(self.to_arrow().column(name).to_pylist())
        index = EVENT_COLUMNS.index(name)
        return [row[index] for row in self.rows]


def _epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


_TIMESTAMP = pa.timestamp("ms", tz="UTC")
_COST = pa.float64()
_ARROW_TYPES: dict[str, pa.DataType] = {
    "schema_version": pa.uint8(),
    "start_time": _TIMESTAMP,
    "end_time": _TIMESTAMP,
    "ingested_at": _TIMESTAMP,
    "latency_ms": pa.float64(),
    "ttft_ms": pa.float64(),
    "input_tokens": pa.uint32(),
    "output_tokens": pa.uint32(),
    "cache_read_input_tokens": pa.uint32(),
    "cache_creation_input_tokens": pa.uint32(),
    "reasoning_output_tokens": pa.uint32(),
    "cost_input_usd": _COST,
    "cost_cache_read_usd": _COST,
    "cost_cache_write_usd": _COST,
    "cost_output_usd": _COST,
    "cost_reasoning_usd": _COST,
    "cost_usd": _COST,
    "input_truncated": pa.bool_(),
    "output_truncated": pa.bool_(),
    "metadata": pa.map_(pa.string(), pa.string()),
    "tags": pa.list_(pa.string()),
}
EVENTS_ARROW_SCHEMA = pa.schema([(name, _ARROW_TYPES.get(name, pa.string())) for name in EVENT_COLUMNS])
_METADATA = EVENT_COLUMNS.index("metadata")


def _map_array(dicts: list[dict[str, str]]) -> pa.Array:
    # Built from flat keys/values/offsets: pyarrow's conversion of Python dicts is several times slower.
    offsets = [0]
    keys: list[str] = []
    values: list[str] = []
    for mapping in dicts:
        keys.extend(mapping.keys())
        values.extend(mapping.values())
        offsets.append(len(keys))
    return pa.MapArray.from_arrays(
        pa.array(offsets, type=pa.int32()), pa.array(keys, type=pa.string()), pa.array(values, type=pa.string())
    )


def rows_to_arrow(rows: list[tuple[Any, ...]]) -> pa.Table:
    """Row tuples as an Arrow table; ClickHouse parses Arrow natively, without holding Python's GIL."""
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [[] for _ in EVENT_COLUMNS]
    arrays = []
    for index, (name, column) in enumerate(zip(EVENT_COLUMNS, columns, strict=True)):
        if index == _METADATA:
            arrays.append(_map_array(list(column)))
        else:
            arrays.append(pa.array(column, type=EVENTS_ARROW_SCHEMA.field(name).type))
    return pa.Table.from_arrays(arrays, schema=EVENTS_ARROW_SCHEMA)
