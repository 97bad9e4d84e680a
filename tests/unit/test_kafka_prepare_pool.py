"""Batches prepared in worker processes: same result as in-process, stored in submission order, never lost."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import Future

import orjson
import pytest

from collector.kafka.batching import BatchPreparer, PreparedBatch, RawRecord, merge_batches
from collector.kafka.consumer import _Writer
from collector.kafka.dead_letter import DeadLetter
from collector.kafka.decoders import default_decoders
from collector.kafka.metrics import KafkaMetrics
from collector.kafka.prepare_pool import (
    ChunkedPreparation,
    PooledPreparation,
    PrepareConfig,
    PreparePool,
    Preparer,
    WireBatch,
    from_wire,
    to_wire,
)
from collector.pricing import PriceCatalog
from collector.rows import EventBatch, Rejection
from collector.store import WriteResult
from collector.validation import EventValidator, IngestLimits
from tests.support.events import make_event


def rec(partition: int, offset: int, value: bytes | None, key: bytes | None = None) -> RawRecord:
    return ("t", partition, offset, 1_700_000_000_000, key, value, [("h", b"v")])


@pytest.fixture(scope="module")
def local() -> BatchPreparer:
    return PrepareConfig().build()


def mixed_records(first_event: int = 0) -> list[RawRecord]:
    no_model = make_event(first_event + 3)
    del no_model["model"]
    return [
        rec(0, 0, orjson.dumps(make_event(first_event + 1))),
        rec(1, 0, orjson.dumps([make_event(first_event + 2), no_model])),
        rec(1, 1, b"{oops", key=b"k"),
        rec(0, 1, None),
    ]


def same(a: PreparedBatch, b: PreparedBatch) -> None:
    assert a.rows.event_ids == b.rows.event_ids
    assert a.rows.column("cost_usd") == b.rows.column("cost_usd")
    assert [(r.index, r.reason, r.payload, r.source_ref) for r in a.rejections] == [
        (r.index, r.reason, r.payload, r.source_ref) for r in b.rejections
    ]
    assert a.dead_letters == b.dead_letters
    assert (a.next_offsets, a.ranges, a.messages, a.rejected_by_topic) == (
        b.next_offsets, b.ranges, b.messages, b.rejected_by_topic
    )
    assert a.dedup_token() == b.dedup_token()


def test_wire_form_round_trips_a_batch(local: BatchPreparer) -> None:
    batch = local.prepare(mixed_records())
    assert len(batch.rows) == 2 and len(batch.rejections) == 3
    same(from_wire(to_wire(batch)), batch)
    # All rejected: an empty table crosses too.
    empty = local.prepare([rec(0, 5, b"nope")])
    back = from_wire(to_wire(empty))
    assert len(back.rows) == 0 and back.next_offsets == {("t", 0): 6}


class _RecordingSink:
    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.tokens: list[str | None] = []

    def write_events(self, batch: EventBatch, *, dedup_token: str | None = None) -> WriteResult:
        self.writes.append(batch.event_ids)
        self.tokens.append(dedup_token)
        return WriteResult(len(batch), 0)

    def write_rejections(self, rejections: Sequence[Rejection]) -> None:
        pass


class _NoLetters:
    def send(self, letters: Sequence[DeadLetter]) -> None:
        pass

    def close(self) -> None:
        pass


def _wire_future() -> Future[WireBatch]:
    future: Future[WireBatch] = Future()
    future.set_running_or_notify_cancel()
    return future


def test_writer_stores_in_submission_order_when_preparations_finish_out_of_order(local: BatchPreparer) -> None:
    sink = _RecordingSink()
    writer = _Writer(sink=sink, dead_letters=_NoLetters(), metrics=KafkaMetrics(), max_in_flight=4,
                     backoff_initial_s=0.01, backoff_max_s=0.02)
    batches = [local.prepare([rec(0, i, orjson.dumps(make_event(i)))]) for i in range(3)]
    futures = [_wire_future() for _ in batches]
    writer.start()
    try:
        for future in futures:
            writer.submit(PooledPreparation(future, [], local.prepare))
        # The last two finish first: nothing may be stored before the first is.
        futures[2].set_result(to_wire(batches[2]))
        futures[1].set_result(to_wire(batches[1]))
        time.sleep(0.2)
        assert sink.writes == [] and writer.take_completed() == {}
        futures[0].set_result(to_wire(batches[0]))
        assert writer.wait_idle(10)
    finally:
        writer.stop()
    # All three were ready once the first was: one insert, in submission order.
    assert sink.writes == [["evt-000000", "evt-000001", "evt-000002"]]
    assert sink.tokens == [merge_batches(batches).dedup_token()]
    assert writer.take_completed() == {("t", 0): 3}


def test_a_failed_worker_falls_back_to_preparing_in_this_process(local: BatchPreparer) -> None:
    sink = _RecordingSink()
    writer = _Writer(sink=sink, dead_letters=_NoLetters(), metrics=KafkaMetrics(), max_in_flight=2,
                     backoff_initial_s=0.01, backoff_max_s=0.02)
    records = [rec(0, 0, orjson.dumps(make_event(7)))]
    future = _wire_future()
    future.set_exception(RuntimeError("worker killed"))
    writer.start()
    try:
        writer.submit(PooledPreparation(future, records, local.prepare))
        assert writer.wait_idle(10)
    finally:
        writer.stop()
    assert sink.writes == [["evt-000007"]]
    assert writer.take_completed() == {("t", 0): 1}


def test_a_stopped_pool_prepares_in_this_process(local: BatchPreparer) -> None:
    preparer = Preparer(local, PreparePool(processes=1, config=PrepareConfig()))
    preparation = preparer.submit(mixed_records())
    assert preparation.done()
    same(preparation.result(), local.prepare(mixed_records()))


def test_worker_processes_prepare_what_this_process_would(local: BatchPreparer) -> None:
    pool = PreparePool(processes=1, config=PrepareConfig())
    pool.start(wait=True)
    try:
        [pid] = pool.worker_pids()
        assert pid != os.getpid()
        preparer = Preparer(local, pool)
        preparations = [preparer.submit(mixed_records(first_event=10 * i)) for i in range(3)]
        for i, preparation in enumerate(preparations):
            assert isinstance(preparation, PooledPreparation)
            same(preparation.result(), local.prepare(mixed_records(first_event=10 * i)))
    finally:
        pool.stop()
    assert not pool.running


def test_a_batch_prepared_in_chunks_by_several_workers_is_the_batch_prepared_whole(local: BatchPreparer) -> None:
    records = [r for i in range(4) for r in mixed_records(first_event=10 * i)]
    pool = PreparePool(processes=2, config=PrepareConfig(), chunk_messages=3)
    pool.start(wait=True)
    try:
        preparer = Preparer(local, pool)
        chunked = preparer.submit(records)
        again = preparer.submit(records)
        assert isinstance(chunked, ChunkedPreparation)
        batch, whole = chunked.result(), local.prepare(records)
    finally:
        pool.stop()
    assert batch.rows.event_ids == whole.rows.event_ids
    assert batch.rows.column("cost_usd") == whole.rows.column("cost_usd")
    assert [(r.index, r.reason, r.source_ref) for r in batch.rejections] == [
        (r.index, r.reason, r.source_ref) for r in whole.rejections
    ]
    assert batch.dead_letters == whole.dead_letters
    assert (batch.next_offsets, batch.ranges, batch.messages, batch.rejected_by_topic) == (
        whole.next_offsets, whole.ranges, whole.messages, whole.rejected_by_topic
    )
    # Re-delivered as the same batch, it is cut the same way: ClickHouse drops the repeated insert.
    assert again.result().dedup_token() == batch.dedup_token()


def test_worker_processes_use_the_configured_limits_and_prices() -> None:
    config = PrepareConfig(limits=IngestLimits(max_text_bytes=256, max_event_bytes=1_024))
    local = BatchPreparer(validator=EventValidator(prices=PriceCatalog(), limits=config.limits),
                          decoders=default_decoders())
    records = [rec(0, 0, orjson.dumps(make_event(1, input="y" * 2_000)))]
    pool = PreparePool(processes=1, config=config)
    pool.start()
    try:
        remote = Preparer(local, pool).submit(records).result()
    finally:
        pool.stop()
    assert "1,024-byte limit" in remote.rejections[0].reason
    same(remote, local.prepare(records))


def _otlp_chat_span(feature: str) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    def kv(key: str, value: str | int) -> KeyValue:
        any_value = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
        return KeyValue(key=key, value=any_value)

    start = 1_795_000_000_000_000_000
    chat = Span(
        trace_id=bytes(range(16)), span_id=bytes(range(8)), name="chat gpt-4o", kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=start, end_time_unix_nano=start + 800_000_000,
        attributes=[kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "openai"),
                    kv("gen_ai.request.model", "gpt-4o"), kv("gen_ai.usage.input_tokens", 1000),
                    kv("gen_ai.usage.output_tokens", 200), kv("shop.feature", feature)],
    )
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=Resource(attributes=[kv("service.name", "checkout")]), scope_spans=[ScopeSpans(spans=[chat])]
    )])
    return request.SerializeToString()


def test_workers_decode_other_encodings_with_the_configured_options(caplog: pytest.LogCaptureFixture) -> None:
    from collector.otlp.mapping import OtlpOptions

    caplog.set_level(logging.WARNING, logger="collector.kafka")
    config = PrepareConfig(
        topic_encodings={"spans": "otlp_proto"}, otlp_options=OtlpOptions(feature_attributes=("shop.feature",))
    )
    pool = PreparePool(processes=1, config=config)
    pool.start()
    try:
        batch = Preparer(config.build(), pool).submit([("spans", 0, 0, 0, None, _otlp_chat_span("refunds"), [])])
        assert isinstance(batch, PooledPreparation)
        prepared = batch.result()
    finally:
        pool.stop()
    assert not caplog.records  # prepared by the worker, not by the in-process fallback
    assert prepared.rejections == []
    assert prepared.rows.column("feature") == ["refunds"] and prepared.rows.column("app") == ["checkout"]
