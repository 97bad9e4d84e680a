"""Reading stored events back: the one query behind `llmpulse events` and `GET /v1/events`.

The collector owns the `events` table, so the read side lives here too. Every value a caller passes reaches
ClickHouse as a bound parameter, never formatted into the SQL. Pages are ordered newest first by
(start_time, event_id); a page's `next_cursor` continues after its last event, so paging stays stable while
new events arrive (they sort before the first page, not in between).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from clickhouse_connect.driver.client import Client

MAX_LIMIT: Final = 10_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# What a listing shows by default: identity, grouping, timing, outcome, usage and cost.
SUMMARY_COLUMNS: Final = (
    "event_id", "start_time", "end_time", "app", "environment", "feature", "operation", "provider", "model",
    "response_model", "prompt_id", "prompt_version", "trace_id", "span_id", "parent_span_id", "session_id",
    "user_id", "status", "error_type", "finish_reason", "latency_ms", "ttft_ms", "input_tokens", "output_tokens",
    "cache_read_input_tokens", "cache_creation_input_tokens", "reasoning_output_tokens", "cost_usd",
    "price_source", "tags", "metadata", "source", "ingested_at",
)
# Prompt and response texts: large, and what a reader may not need (`--with-text`, `with_text=true`).
TEXT_COLUMNS: Final = (
    "input_text", "output_text", "input_messages", "output_messages", "input_truncated", "output_truncated",
)

Status = Literal["ok", "error"]


class EventQueryError(ValueError):
    """A filter that cannot be used (e.g. a malformed cursor); the message names it."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events; every field None matches all. `allowed_apps` (a caller's key bound to apps) restricts on
    top of `app`: empty means every app."""

    app: str | None = None
    model: str | None = None
    status: Status | None = None
    since: datetime | None = None  # start_time >= since
    until: datetime | None = None  # start_time < until
    trace_id: str | None = None
    event_id: str | None = None
    prompt_version: str | None = None
    allowed_apps: frozenset[str] = field(default_factory=frozenset)
    limit: int = 100
    cursor: str | None = None  # next_cursor of the previous page
    with_text: bool = False


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[dict[str, Any]]
    next_cursor: str | None  # None: this was the last page

    def to_json(self) -> dict[str, Any]:
        return {"events": self.events, "count": len(self.events), "next_cursor": self.next_cursor}


def encode_cursor(start_time: datetime, event_id: str) -> str:
    millis = (start_time.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)
    raw = f"{millis}:{event_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
        millis, event_id = raw.split(":", 1)
        return _EPOCH + timedelta(milliseconds=int(millis)), event_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise EventQueryError(f"cursor {cursor!r} is not one this API returned (use next_cursor as given)") from None


def build_event_query(f: EventFilter) -> tuple[str, dict[str, Any], Sequence[str]]:
    """SQL, its bound parameters and the selected columns for one page (limit + 1 rows: the extra one says
    whether another page follows)."""
    if not 1 <= f.limit <= MAX_LIMIT:
        raise EventQueryError(f"limit must be between 1 and {MAX_LIMIT}, got {f.limit}")
    if f.status is not None and f.status not in ("ok", "error"):
        raise EventQueryError(f"status must be ok or error, got {f.status!r}")
    if f.since is not None and f.until is not None and f.until <= f.since:
        raise EventQueryError("until must be after since")
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": f.limit + 1}
    for column in ("app", "model", "status", "trace_id", "event_id", "prompt_version"):
        value = getattr(f, column)
        if value is not None:
            conditions.append(f"{column} = {{{column}:String}}")
            params[column] = value
    if f.allowed_apps:
        conditions.append("app IN {allowed_apps:Array(String)}")
        params["allowed_apps"] = sorted(f.allowed_apps)
    if f.since is not None:
        conditions.append("start_time >= {since:DateTime64(3, 'UTC')}")
        params["since"] = f.since.astimezone(UTC)
    if f.until is not None:
        conditions.append("start_time < {until:DateTime64(3, 'UTC')}")
        params["until"] = f.until.astimezone(UTC)
    if f.cursor:
        after_time, after_id = decode_cursor(f.cursor)
        conditions.append(
            "(start_time < {after_time:DateTime64(3, 'UTC')} OR "
            "(start_time = {after_time:DateTime64(3, 'UTC')} AND event_id < {after_id:String}))"
        )
        params["after_time"] = after_time
        params["after_id"] = after_id
    columns = SUMMARY_COLUMNS + (TEXT_COLUMNS if f.with_text else ())
    where = " AND ".join(conditions) or "1"
    # FINAL: a re-sent event that slipped past the writer's dedup (two collectors racing) is listed once.
    sql = (
        f"SELECT {', '.join(columns)} FROM events FINAL WHERE {where} "
        "ORDER BY start_time DESC, event_id DESC LIMIT {limit:UInt32}"
    )
    return sql, params, columns


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class ClickHouseEventQueries:
    """Event listings from the `events` table."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def page(self, f: EventFilter) -> EventPage:
        sql, params, columns = build_event_query(f)
        rows = self.client.query(sql, parameters=params).result_rows
        more = len(rows) > f.limit
        rows = rows[: f.limit]
        events = [{c: _jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        next_cursor = None
        if more and rows:
            last = rows[-1]
            start = last[columns.index("start_time")]
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
            next_cursor = encode_cursor(start, str(last[columns.index("event_id")]))
        return EventPage(events=events, next_cursor=next_cursor)
