"""Where validated events and rejections go: the `EventSink` seam, and its ClickHouse implementation."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import orjson
from clickhouse_connect.driver.client import Client

from collector.rows import REJECTION_COLUMNS, EventBatch, Rejection

# Every insert into `events` (each also carries its own insert_deduplication_token).
EVENTS_INSERT_SETTINGS: dict[str, object] = {
    "insert_deduplicate": 1,
    # ClickHouse would otherwise run every inserted block (and each materialized view's block) through the
    # table engine's merge logic, copying every column, to collapse rows with equal sorting keys. There are
    # none: the writer inserts an event_id once per batch, and the views group by their tables' full sorting
    # keys. Measured on chDB: ~7 µs less CPU per event, later merges included.
    "optimize_on_insert": 0,
}
# Ids per lookup query: 20,000 ids of up to 256 bytes each, JSON- and SQL-escaped, stay within a few MiB.
_LOOKUP_CHUNK = 20_000
# The binary parameter (a heredoc) the looked-up ids travel in; ids that hold its name would close it early
# and travel as a quoted literal instead.
_IDS_PARAM = "$ids$"


def _quote(value: str) -> str:
    if "\\" in value or "'" in value:
        value = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{value}'"


def _from_ms(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int
    # Positions in the written batch that were not inserted because their event_id is already stored.
    duplicate_positions: frozenset[int] = frozenset()

    def slice(self, start: int, stop: int) -> WriteResult:
        """The part of this result that concerns batch positions [start, stop)."""
        dropped = frozenset(p - start for p in self.duplicate_positions if start <= p < stop)
        return WriteResult(inserted=stop - start - len(dropped), duplicates=len(dropped), duplicate_positions=dropped)


class EventSink(Protocol):
    """Durable storage for events; `write_events` returns only after the rows are stored."""

    def write_events(self, batch: EventBatch, *, dedup_token: str | None = None) -> WriteResult: ...

    def write_rejections(self, rejections: Sequence[Rejection]) -> None: ...


class ClickHouseEventStore:
    """Writes to ClickHouse so that an event_id is stored once, however often it is sent.

    Each event_id already stored is dropped before the insert (a lookup bounded by the batch's start_time
    range, which is exact because a re-sent event carries the same start_time). Every insert also carries
    a deduplication token derived from its event_ids, so a retried insert after a crash between "written"
    and "acknowledged" is dropped by ClickHouse itself, and the ReplacingMergeTree collapses whatever a
    concurrent writer in another process might still slip in.
    """

    def __init__(self, client: Client, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._client = client
        self._clock = clock
        # Check-then-insert must not interleave within a process, or two threads could both insert an id.
        self._lock = threading.Lock()

    def write_events(self, batch: EventBatch, *, dedup_token: str | None = None) -> WriteResult:
        if not len(batch):
            return WriteResult(0, 0)
        with self._lock:
            event_ids = batch.event_ids
            keep = self._first_occurrences(event_ids)
            stored = self._stored_ids(event_ids, batch.start_times_ms, keep)
            if stored:
                keep = [i for i in keep if event_ids[i] not in stored]
            fresh = batch if len(keep) == len(batch) else batch.select(keep)
            if len(fresh):
                token = dedup_token or self._token([event_ids[i] for i in keep])
                self._client.insert_arrow(
                    "events", fresh.to_arrow(), settings={**EVENTS_INSERT_SETTINGS, "insert_deduplication_token": token}
                )
        dropped = frozenset(range(len(batch))) - frozenset(keep) if len(keep) != len(batch) else frozenset()
        return WriteResult(inserted=len(fresh), duplicates=len(dropped), duplicate_positions=dropped)

    def write_rejections(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        now = self._clock()
        columns: list[list[object]] = [
            [now] * len(rejections),
            [r.source for r in rejections],
            [r.source_ref for r in rejections],
            [r.index for r in rejections],
            [r.reason for r in rejections],
            [r.payload for r in rejections],
        ]
        self._client.insert("rejected_events", columns, column_names=list(REJECTION_COLUMNS), column_oriented=True)

    @staticmethod
    def _first_occurrences(event_ids: list[str]) -> list[int]:
        if len(set(event_ids)) == len(event_ids):  # the usual batch, checked in C
            return list(range(len(event_ids)))
        seen: set[str] = set()
        keep = []
        for i, event_id in enumerate(event_ids):
            if event_id not in seen:
                seen.add(event_id)
                keep.append(i)
        return keep

    def _stored_ids(self, event_ids: list[str], times_ms: list[int], keep: list[int]) -> set[str]:
        stored: set[str] = set()
        for offset in range(0, len(keep), _LOOKUP_CHUNK):
            chunk = keep[offset : offset + _LOOKUP_CHUNK]
            # The ids travel as ONE JSON array unpacked by ClickHouse: parsing thousands of separate literals
            # cost ClickHouse ~7 µs per id (more than inserting the event). The array goes in as a binary
            # parameter, a heredoc ($ids$...$ids$) spliced in as bytes: as a quoted literal it was escaped
            # in Python and scanned by clickhouse-connect's query regexes, ~0.6 µs more per id.
            ids_json = orjson.dumps([event_ids[i] for i in chunk])
            heredoc = _IDS_PARAM.encode() not in ids_json
            ids_sql = _IDS_PARAM if heredoc else _quote(ids_json.decode())
            result = self._client.query(
                "SELECT event_id FROM events "
                "WHERE start_time BETWEEN {earliest:DateTime64(3, 'UTC')} AND {latest:DateTime64(3, 'UTC')} "
                f"AND event_id IN (SELECT arrayJoin(JSONExtract({ids_sql}, 'Array(String)')))",
                parameters={
                    "earliest": _from_ms(min(times_ms[i] for i in chunk)),
                    "latest": _from_ms(max(times_ms[i] for i in chunk)),
                    **({_IDS_PARAM: ids_json} if heredoc else {}),
                },
                # Quoting can double the list's length.
                settings={"max_query_size": len(ids_json) * 2 + 4096},
            )
            stored.update(row[0] for row in result.result_rows)
        return stored

    @staticmethod
    def _token(event_ids: list[str]) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for event_id in event_ids:
            digest.update(event_id.encode())
            digest.update(b"\x00")
        return digest.hexdigest()
