"""Merging batches from different validation paths keeps every row, in submission order."""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime

import orjson

from collector.inserter import BulkInserter
from collector.pricing import PriceCatalog
from collector.rows import EventBatch, Rejection
from collector.store import WriteResult
from collector.validation import EventValidator, iter_ndjson
from tests.support.events import make_event


def _batch(ids: range) -> EventBatch:
    body = b"\n".join(orjson.dumps(make_event(i)) for i in ids)
    validator = EventValidator(prices=PriceCatalog(), clock=lambda: datetime(2026, 11, 21, tzinfo=UTC))
    return validator.validate(iter_ndjson(body), source="t", source_ref="t").batch


def test_extend_keeps_rows_and_tables_in_order() -> None:
    rows_a, rows_c = _batch(range(0, 3)), _batch(range(6, 9))
    table_b = EventBatch.from_arrow(_batch(range(3, 6)).to_arrow())
    table_d = EventBatch.from_arrow(_batch(range(9, 12)).to_arrow())

    for parts in ([table_b, table_d], [rows_a, table_b, rows_c, table_d], [table_b, rows_c]):
        merged = EventBatch()
        for part in parts:
            merged.extend(part)
        expected = [event_id for part in parts for event_id in part.event_ids]
        assert merged.event_ids == expected
        assert len(merged) == len(expected) == merged.to_arrow().num_rows


class _RecordingSink:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write_events(self, batch: EventBatch, *, dedup_token: str | None = None) -> WriteResult:
        self.written.extend(batch.event_ids)
        return WriteResult(len(batch), 0)

    def write_rejections(self, rejections: list[Rejection]) -> None:
        pass


def test_inserter_writes_every_row_of_concurrent_arrow_submissions() -> None:
    sink = _RecordingSink()
    inserter = BulkInserter(sink, max_rows=10_000, max_delay_s=0.2)
    inserter.start()
    try:
        futures: list[Future[WriteResult]] = [
            inserter.submit(EventBatch.from_arrow(_batch(range(i * 10, i * 10 + 10)).to_arrow())) for i in range(5)
        ]
        futures.append(inserter.submit(_batch(range(50, 60))))
        results = [f.result(timeout=10) for f in futures]
    finally:
        inserter.stop()
    assert sorted(sink.written) == sorted(make_event(i)["event_id"] for i in range(60))
    assert [r.inserted for r in results] == [10] * 6
