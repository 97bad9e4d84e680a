"""Joining GenAI content from log events to the events of their spans, in whichever order they arrive.

Correct with several API processes and across restarts because all state is in ClickHouse:

1. Content (a log record) is stored first, in `otlp_content` (migration 0065), keyed by its span's event id.
2. A span is mapped as usual; before it is validated, content waiting for it (received within the join
   window) fills the input and/or output the span itself does not carry, so the event is inserted once,
   complete. This is the common order: SDKs flush logs every second and spans every five.
3. Content that arrives after its span was stored is written onto the stored event with an
   `ALTER TABLE events UPDATE` of the text columns only (input/output text and messages, truncation flags).
   No second row is inserted, so the materialized rollups (which count rows on insert and never read texts)
   count the call once, and drift and the judge, which read `input_text`/`output_text` of raw rows, see one
   row with the texts.
4. Both sides look for the other after their own write: the logs path stores content and then looks for
   stored events; the traces path, once its events are stored, looks again for content that arrived in
   between. Whatever the interleaving of two processes, one of them sees the other's write.

Only what the span lacks is filled: content on the span wins. Content is joined only to an event of the same
app, and only for a caller whose key may write that app (collector.auth.Principal).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from clickhouse_connect.driver.client import Client
from prometheus_client import CollectorRegistry, Counter, Gauge

from collector.auth import Principal
from collector.metrics import count_redactions, redactions_counter
from collector.otlp.logs import ContentRecord, merge_content
from collector.redaction import Counts, Redactor
from collector.rows import EVENT_COLUMNS
from collector.validation import EventValidator, RawItem

log = logging.getLogger(__name__)

DEFAULT_JOIN_WINDOW = timedelta(seconds=300)
_TEXT_COLUMNS = (
    "input_text",
    "output_text",
    "input_messages",
    "output_messages",
    "input_truncated",
    "output_truncated",
)
_COLUMN_INDEX = {name: EVENT_COLUMNS.index(name) for name in _TEXT_COLUMNS}


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_id: str
    app: str
    model: str
    start_time: datetime
    has_input: bool
    has_output: bool


@dataclass(frozen=True, slots=True)
class TextPatch:
    """New text columns for a stored event (only the sides that were missing are changed)."""

    event_id: str
    start_time: datetime
    columns: dict[str, Any]


class ContentStore(Protocol):
    def put(self, records: Sequence[ContentRecord], received_at: datetime) -> None: ...

    def waiting(self, event_ids: Sequence[str], since: datetime) -> dict[str, list[ContentRecord]]: ...

    def stored_events(
        self, event_ids: Sequence[str], earliest: datetime, latest: datetime
    ) -> dict[str, StoredEvent]: ...

    def patch(self, patches: Sequence[TextPatch]) -> None: ...

    def unjoined(self, before: datetime, since: datetime) -> int: ...


def _messages_json(messages: Any) -> str:
    return orjson.dumps(messages, default=str).decode() if messages else ""


def _messages(text: str) -> Any:
    return orjson.loads(text) if text else None


class ClickHouseContentStore:
    def __init__(self, client: Client) -> None:
        self._client = client
        # A clickhouse-connect client (chDB's in particular) is not safe for concurrent queries.
        self._lock = threading.Lock()

    def put(self, records: Sequence[ContentRecord], received_at: datetime) -> None:
        if not records:
            return
        columns: list[list[Any]] = [
            [r.event_id for r in records],
            [r.content_id for r in records],
            [r.app for r in records],
            [received_at] * len(records),
            [r.time_unix_nano for r in records],
            [r.seq for r in records],
            [r.event_name for r in records],
            [_messages_json(r.inputs) for r in records],
            [_messages_json(r.outputs) for r in records],
        ]
        names = [
            "event_id",
            "content_id",
            "app",
            "received_at",
            "time_unix_nano",
            "seq",
            "event_name",
            "input_messages",
            "output_messages",
        ]
        with self._lock:
            self._client.insert("otlp_content", columns, column_names=names, column_oriented=True)

    def waiting(self, event_ids: Sequence[str], since: datetime) -> dict[str, list[ContentRecord]]:
        if not event_ids:
            return {}
        with self._lock:
            rows = self._client.query(
                "SELECT event_id, app, time_unix_nano, seq, event_name, input_messages, output_messages, content_id "
                "FROM otlp_content FINAL WHERE event_id IN {ids:Array(String)} "
                "AND received_at >= {since:DateTime64(3, 'UTC')}",
                parameters={"ids": list(event_ids), "since": since},
            ).result_rows
        found: dict[str, list[ContentRecord]] = {}
        for event_id, app, time_ns, seq, name, inputs, outputs, content_id in rows:
            found.setdefault(event_id, []).append(
                ContentRecord(
                    event_id, app, int(time_ns), int(seq), name, _messages(inputs), _messages(outputs), content_id
                )
            )
        return found

    def stored_events(self, event_ids: Sequence[str], earliest: datetime, latest: datetime) -> dict[str, StoredEvent]:
        if not event_ids:
            return {}
        with self._lock:
            rows = self._client.query(
                "SELECT event_id, any(app), any(model), any(start_time), "
                "max(input_text != '' OR input_messages != ''), max(output_text != '' OR output_messages != '') "
                "FROM events WHERE event_id IN {ids:Array(String)} "
                "AND start_time BETWEEN {earliest:DateTime64(3, 'UTC')} AND {latest:DateTime64(3, 'UTC')} "
                "GROUP BY event_id",
                parameters={"ids": list(event_ids), "earliest": earliest, "latest": latest},
            ).result_rows
        return {
            row[0]: StoredEvent(
                row[0],
                row[1],
                row[2],
                row[3].replace(tzinfo=UTC) if row[3].tzinfo is None else row[3],
                bool(row[4]),
                bool(row[5]),
            )
            for row in rows
        }

    def patch(self, patches: Sequence[TextPatch]) -> None:
        if not patches:
            return
        ids = [p.event_id for p in patches]
        assignments = []
        parameters: dict[str, Any] = {"ids": ids}
        for column in _TEXT_COLUMNS:
            changed = [p for p in patches if column in p.columns]
            if not changed:
                continue
            kind = "Bool" if column.endswith("_truncated") else "String"
            parameters[f"{column}_ids"] = [p.event_id for p in changed]
            parameters[f"{column}_values"] = [p.columns[column] for p in changed]
            assignments.append(
                f"{column} = transform(event_id, {{{column}_ids:Array(String)}}, "
                f"{{{column}_values:Array({kind})}}, {column})"
            )
        if not assignments:
            return
        days = sorted({p.start_time.date() for p in patches})
        with self._lock:
            for day in days:
                # One mutation per day partition touched: it rewrites only the parts holding these ids.
                self._client.command(
                    f"ALTER TABLE events UPDATE {', '.join(assignments)} IN PARTITION {{day:Date}} "
                    "WHERE event_id IN {ids:Array(String)}",
                    parameters={**parameters, "day": day},
                    settings={"mutations_sync": 2},
                )

    def unjoined(self, before: datetime, since: datetime) -> int:
        with self._lock:
            rows = self._client.query(
                "SELECT count() FROM otlp_content FINAL "
                "WHERE received_at < {before:DateTime64(3, 'UTC')} AND received_at >= {since:DateTime64(3, 'UTC')} "
                "AND event_id NOT IN (SELECT event_id FROM events WHERE start_time >= {since:DateTime64(3, 'UTC')} "
                "- INTERVAL 1 DAY)",
                parameters={"before": before, "since": since},
            ).result_rows
        return int(rows[0][0])


class ContentMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "llmpulse_otlp_content_records",
            "GenAI content log records received, by what became of them (stored: waiting for the span; "
            "joined_before_span / joined_after_span: on the event; skipped: not GenAI content or no span id; "
            "forbidden: an app the caller's key may not write).",
            ["outcome"],
            registry=registry,
        )
        self.unjoined = Gauge(
            "llmpulse_otlp_content_unjoined",
            "Content log records of the last day whose span did not arrive within the join window "
            "(kept in otlp_content until its TTL).",
            registry=registry,
        )


@dataclass(slots=True)
class TraceJoin:
    """What the traces path merged before validation, to look again once its events are stored."""

    merged: dict[str, set[str]] = field(default_factory=dict)  # event_id -> content ids already merged
    missing: dict[str, datetime] = field(default_factory=dict)  # event_id -> start_time, still lacking texts


def _lacks(value: Any) -> bool:
    return value is None or value == "" or value == []


class ContentJoiner:
    """The join rules over a `ContentStore`; thread-safe, shared by the HTTP and gRPC front ends."""

    def __init__(
        self,
        store: ContentStore,
        validator: EventValidator,
        *,
        window: timedelta = DEFAULT_JOIN_WINDOW,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.validator = validator
        self.window = window
        registry = registry or CollectorRegistry()
        self.metrics = ContentMetrics(registry)
        self._clock = clock
        # Content waits in otlp_content for its span (days, at worst): it is masked before it is stored there,
        # with the validator's policy, and counted where every other path counts.
        self._redactor = Redactor(validator.redaction) if validator.redaction.enabled else None
        self._redactions = redactions_counter(registry)

    # -- the traces path -----------------------------------------------------------------------------------

    def before_validation(self, items: Iterable[RawItem]) -> TraceJoin:
        """Fill missing input/output of mapped spans from waiting content (in place)."""
        join = TraceJoin()
        candidates: dict[str, dict[str, Any]] = {}
        for item in items:
            value = item.value
            if not isinstance(value, dict) or item.decode_error is not None:
                continue
            if str(value.get("event_id", "")).startswith("otel-") and (
                _lacks(value.get("input")) or _lacks(value.get("output"))
            ):
                candidates[value["event_id"]] = value
        if not candidates:
            return join
        waiting = self.store.waiting(list(candidates), self._clock() - self.window)
        for event_id, value in candidates.items():
            records = [r for r in waiting.get(event_id, []) if r.app == value.get("app")]
            if records:
                inputs, outputs = merge_content(records)
                if _lacks(value.get("input")) and inputs:
                    value["input"] = inputs
                if _lacks(value.get("output")) and outputs:
                    value["output"] = outputs
                join.merged[event_id] = {r.content_id for r in records}
                self.metrics.records.labels("joined_before_span").inc(len(records))
            if _lacks(value.get("input")) or _lacks(value.get("output")):
                join.missing[event_id] = datetime.fromtimestamp(float(value["start_time"]) / 1000, tz=UTC)
        return join

    def after_write(self, join: TraceJoin, principal: Principal | None) -> int:
        """Once the events are stored: content that arrived meanwhile is written onto them. Returns how many
        events were patched."""
        if not join.missing:
            return 0
        waiting = self.store.waiting(list(join.missing), self._clock() - self.window)
        fresh = {
            event_id: records
            for event_id, records in waiting.items()
            if {r.content_id for r in records} - join.merged.get(event_id, set())
        }
        if not fresh:
            return 0
        return self._patch_stored(fresh, principal, outcome="joined_after_span", count_only_new=join.merged)

    # -- the logs path -------------------------------------------------------------------------------------

    def accept_content(self, records: Sequence[ContentRecord], principal: Principal | None) -> tuple[int, list[str]]:
        """Store content, then write it onto events already stored. (records accepted, reasons of refused)."""
        refused: list[str] = []
        allowed: list[ContentRecord] = []
        for record in records:
            if principal is not None and not principal.may_write(record.app):
                refused.append(f"log record for app {record.app!r}: this key may not write that app")
                self.metrics.records.labels("forbidden").inc()
            else:
                allowed.append(record)
        if not allowed:
            return 0, refused
        allowed = self._masked(allowed)
        self.store.put(allowed, self._clock())
        self.metrics.records.labels("stored").inc(len(allowed))
        by_event: dict[str, list[ContentRecord]] = {}
        for record in allowed:
            by_event.setdefault(record.event_id, []).append(record)
        times = [r.time_unix_nano for r in allowed if r.time_unix_nano > 0]
        now = self._clock()
        earliest = (
            (datetime.fromtimestamp(min(times) / 1e9, tz=UTC) if times else now) - self.window - timedelta(hours=1)
        )
        latest = (datetime.fromtimestamp(max(times) / 1e9, tz=UTC) if times else now) + self.window
        stored = self.store.stored_events(list(by_event), earliest, latest)
        lacking = [e for e in stored.values() if not (e.has_input and e.has_output)]
        if lacking:
            # All content of those events, not just this request's: per-message events arrive in pieces.
            waiting = self.store.waiting([e.event_id for e in lacking], now - self.window - timedelta(hours=1))
            self._patch(lacking, waiting, principal, outcome="joined_after_span", new=by_event)
        return len(allowed), refused

    # -- shared --------------------------------------------------------------------------------------------

    def _masked(self, records: list[ContentRecord]) -> list[ContentRecord]:
        if self._redactor is None:
            return records
        counts: Counts = {}
        redactor = self._redactor
        masked = [
            replace(
                record,
                inputs=redactor.redact_value(record.inputs, counts) if record.inputs else record.inputs,
                outputs=redactor.redact_value(record.outputs, counts) if record.outputs else record.outputs,
            )
            for record in records
        ]
        count_redactions(self._redactions, counts)
        return masked

    def _patch_stored(
        self,
        waiting: dict[str, list[ContentRecord]],
        principal: Principal | None,
        *,
        outcome: str,
        count_only_new: dict[str, set[str]],
    ) -> int:
        now = self._clock()
        stored = self.store.stored_events(list(waiting), now - timedelta(days=31), now + self.window)
        lacking = [e for e in stored.values() if not (e.has_input and e.has_output)]
        new = {
            event_id: [r for r in records if r.content_id not in count_only_new.get(event_id, set())]
            for event_id, records in waiting.items()
        }
        return self._patch(lacking, waiting, principal, outcome=outcome, new=new)

    def _patch(
        self,
        events: Sequence[StoredEvent],
        waiting: dict[str, list[ContentRecord]],
        principal: Principal | None,
        *,
        outcome: str,
        new: dict[str, list[ContentRecord]],
    ) -> int:
        patches: list[TextPatch] = []
        for event in events:
            if principal is not None and not principal.may_write(event.app):
                continue
            records = [r for r in waiting.get(event.event_id, []) if r.app == event.app]
            inputs, outputs = merge_content(records)
            inputs = inputs if not event.has_input else None
            outputs = outputs if not event.has_output else None
            if not inputs and not outputs:
                continue
            columns = self._text_columns(event, inputs, outputs)
            if columns:
                patches.append(TextPatch(event.event_id, event.start_time, columns))
                self.metrics.records.labels(outcome).inc(len(new.get(event.event_id, [])))
        self.store.patch(patches)
        return len(patches)

    def _text_columns(self, event: StoredEvent, inputs: Any, outputs: Any) -> dict[str, Any]:
        """The text columns validation would store for these messages (truncation and masking included)."""
        probe: dict[str, Any] = {
            "event_id": event.event_id,
            "app": event.app,
            "model": event.model or "unknown",
            "start_time": event.start_time.timestamp() * 1000,
            "latency_ms": 0,
        }
        if inputs:
            probe["input"] = inputs
        if outputs:
            probe["output"] = outputs
        result = self.validator.validate([RawItem(0, probe, None)], source="otlp", source_ref="content join")
        if result.rejections or not result.batch.rows:
            log.warning("content for %s could not be stored: %s", event.event_id, result.rejections[:1])
            return {}
        count_redactions(self._redactions, result.redactions)
        row = result.batch.rows[0]
        columns: dict[str, Any] = {}
        if inputs:
            columns.update({c: row[_COLUMN_INDEX[c]] for c in ("input_text", "input_messages", "input_truncated")})
        if outputs:
            columns.update({c: row[_COLUMN_INDEX[c]] for c in ("output_text", "output_messages", "output_truncated")})
        return columns

    def refresh_unjoined(self) -> int:
        now = self._clock()
        count = self.store.unjoined(now - self.window, now - timedelta(days=1))
        self.metrics.unjoined.set(count)
        return count


class UnjoinedContentGauge:
    """A Component: refreshes `llmpulse_otlp_content_unjoined` every `interval` seconds in a thread."""

    def __init__(self, joiner: ContentJoiner, *, interval_s: float = 60.0) -> None:
        self._joiner = joiner
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="otlp-content-gauge", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._joiner.refresh_unjoined()
            except Exception as exc:  # a metric must never take the server down
                log.warning("could not count unjoined OTLP content: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
