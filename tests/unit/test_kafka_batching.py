"""Kafka message decoding and batch preparation: what becomes an event, a rejection, a dead letter, an offset."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import pytest

from collector.kafka.batching import (
    BatchPreparer,
    PendingRecords,
    PreparedBatch,
    RawRecord,
    compact_records,
    merge_batches,
)
from collector.kafka.consumer import _Writer
from collector.kafka.dead_letter import HEADER_OFFSET, HEADER_REASON, DeadLetter
from collector.kafka.decoders import JsonEventDecoder, TopicDecoders, UndecodableMessage, default_decoders
from collector.kafka.metrics import KafkaMetrics
from collector.pricing import PriceCatalog
from collector.rows import EventBatch, Rejection
from collector.store import WriteResult
from collector.validation import EventValidator
from tests.support.events import make_event


@dataclass(frozen=True)
class Rec:
    """Shaped like kafka-python's ConsumerRecord (the parts the collector reads)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: int = 1_700_000_000_000
    headers: Sequence[tuple[str, bytes]] = ()


class _Preparer:
    """The module's BatchPreparer, fed with records shaped like kafka-python's, as the collector does."""

    def __init__(self) -> None:
        self.inner = BatchPreparer(validator=EventValidator(prices=PriceCatalog()), decoders=default_decoders())

    def prepare(self, records: Sequence[Rec]) -> PreparedBatch:
        return self.inner.prepare(compact_records(records))


@pytest.fixture(scope="module")
def preparer() -> _Preparer:
    return _Preparer()


def test_compact_records_keeps_what_the_collector_reads() -> None:
    record = Rec("t", 3, 42, b"{}", key=b"k", timestamp=7, headers=[("h", b"v")])
    compact: list[RawRecord] = compact_records([record])
    assert compact == [("t", 3, 42, 7, b"k", b"{}", [("h", b"v")])]


def test_json_decoder_reads_objects_and_arrays_and_names_broken_bytes() -> None:
    decoder = JsonEventDecoder()
    single = orjson.dumps(make_event(1))
    [item] = decoder.decode(single, first_index=7)
    assert item.index == 7 and item.raw == single and item.where == ""
    items = decoder.decode(orjson.dumps([make_event(1), make_event(2)]), first_index=3)
    assert [(i.index, i.where) for i in items] == [(3, "item 0"), (4, "item 1")]
    with pytest.raises(UndecodableMessage, match="not valid UTF-8: byte 0xff at position 2"):
        decoder.decode(b'{"\xff": 1}', first_index=0)
    with pytest.raises(UndecodableMessage, match="invalid JSON"):
        decoder.decode(b"{nope", first_index=0)
    with pytest.raises(UndecodableMessage, match="empty message"):
        decoder.decode(b"  ", first_index=0)


def test_topic_encodings_pick_decoders_and_unknown_encodings_fail_at_start() -> None:
    other = JsonEventDecoder()
    decoders = TopicDecoders({"json": JsonEventDecoder(), "otlp": other}, topic_encodings={"spans": "otlp"})
    assert decoders.for_topic("spans") is other
    assert decoders.for_topic("events") is not other
    with pytest.raises(ValueError, match="unknown Kafka message encoding"):
        default_decoders({"spans": "protobuf"})


def test_prepare_maps_each_rejection_to_its_message_and_dead_letters_it_once(preparer: _Preparer) -> None:
    no_model = make_event(3)
    del no_model["model"]
    records = [
        Rec("t", 0, 10, orjson.dumps(make_event(1))),
        Rec("t", 0, 11, orjson.dumps([make_event(2), no_model, {"event_id": "x"}]), headers=[("trace", b"abc")]),
        Rec("t", 1, 5, b"{oops"),
        Rec("t", 1, 6, None, key=b"k"),
        Rec("u", 0, 0, orjson.dumps(make_event(4))),
    ]
    batch = preparer.prepare(records)

    assert sorted(batch.rows.event_ids) == ["evt-000001", "evt-000002", "evt-000004"]
    assert [(r.source_ref, r.index) for r in batch.rejections] == [
        ("t/0@11", 1), ("t/0@11", 2), ("t/1@5", -1), ("t/1@6", -1),
    ]
    assert batch.rejections[0].reason.startswith("item 1: missing required field `model`")
    assert all(r.source == "kafka" for r in batch.rejections)
    assert [letter.offset for letter in batch.dead_letters] == [11, 5, 6]
    letter = batch.dead_letters[0]
    assert letter.rejected_items == 2 and letter.value == records[1].value
    headers = dict(letter.kafka_headers())
    assert headers["trace"] == b"abc" and headers[HEADER_OFFSET] == b"11" and b"`model`" in headers[HEADER_REASON]
    assert batch.next_offsets == {("t", 0): 12, ("t", 1): 7, ("u", 0): 1}
    assert batch.rejected_by_topic == {"t": 4}


def test_dedup_token_follows_offsets_and_content(preparer: _Preparer) -> None:
    records = [Rec("t", p, o, orjson.dumps(make_event(p * 100 + o))) for p in (0, 1) for o in (0, 1)]
    token = preparer.prepare(records).dedup_token()
    # Re-delivered with partitions interleaved differently: same ranges, same token.
    assert preparer.prepare(records[2:] + records[:2]).dedup_token() == token
    assert preparer.prepare(records[:3]).dedup_token() != token
    recreated = [Rec(r.topic, r.partition, r.offset, orjson.dumps(make_event(9_000 + r.offset))) for r in records]
    assert preparer.prepare(recreated).dedup_token() != token  # same offsets, other events


def test_pending_records_flush_triggers_and_partial_take() -> None:
    now = [100.0]
    pending = PendingRecords(clock=lambda: now[0])
    pending.add(compact_records([Rec("t", 0, 0, b"abc"), Rec("t", 1, 0, b"de"), Rec("t", 1, 1, None)]))
    now[0] += 2.5
    assert (len(pending), pending.bytes, pending.age()) == (3, 5, 2.5)
    taken = pending.take({("t", 1)})
    assert [(r[1], r[2]) for r in taken] == [(1, 0), (1, 1)] and (len(pending), pending.bytes) == (1, 3)


class _FailingSink:
    """Events fail `fail_events` times, then succeed; rejections are recorded."""

    def __init__(self, fail_events: int) -> None:
        self.fail_events = fail_events
        self.event_writes = 0
        self.rejection_writes: list[int] = []

    def write_events(self, batch: EventBatch, *, dedup_token: str | None = None) -> WriteResult:
        self.event_writes += 1
        if self.fail_events:
            self.fail_events -= 1
            raise ConnectionError("down")
        return WriteResult(len(batch), 0)

    def write_rejections(self, rejections: Sequence[Rejection]) -> None:
        self.rejection_writes.append(len(rejections))


class _FlakyLetters:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[int] = []

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("broker away")
        self.sent.append(len(letters))

    def close(self) -> None:
        pass


def test_writer_retries_until_durable_and_never_repeats_a_finished_stage(preparer: _Preparer) -> None:
    sink, letters = _FailingSink(fail_events=2), _FlakyLetters(failures=1)
    writer = _Writer(sink=sink, dead_letters=letters, metrics=KafkaMetrics(), max_in_flight=2,
                     backoff_initial_s=0.01, backoff_max_s=0.02)
    batch = preparer.prepare([Rec("t", 0, 0, orjson.dumps(make_event(1))), Rec("t", 0, 1, b"bad")])
    writer.start()
    try:
        writer.submit(batch)
        assert writer.wait_idle(10)
    finally:
        writer.stop()
    assert sink.event_writes == 3  # two failures, one success
    assert sink.rejection_writes == [1]  # stored once, although the dead-letter stage failed after it
    assert letters.sent == [1]
    assert writer.take_completed() == {("t", 0): 2}
    assert not writer.failing


def test_writer_discard_drops_offsets_of_a_batch_still_failing(preparer: _Preparer) -> None:
    sink = _FailingSink(fail_events=10**6)
    writer = _Writer(sink=sink, dead_letters=_FlakyLetters(0), metrics=KafkaMetrics(), max_in_flight=1,
                     backoff_initial_s=0.01, backoff_max_s=0.01)
    writer.start()
    try:
        writer.submit(preparer.prepare([Rec("t", 0, 0, orjson.dumps(make_event(1)))]))
        deadline = time.monotonic() + 5
        while not writer.failing and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.failing and not writer.has_capacity()
        writer.discard()
        assert writer.wait_idle(5)
    finally:
        writer.stop()
    assert writer.take_completed() == {}


def test_take_batch_cuts_the_oldest_records_at_either_limit() -> None:
    pending = PendingRecords(clock=lambda: 5.0)
    pending.add(compact_records([Rec("t", i % 2, i // 2, b"x" * 10) for i in range(10)]))
    first = pending.take_batch(max_messages=4, max_bytes=1_000)
    assert [(r[1], r[2]) for r in first] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert (len(pending), pending.bytes, pending.first_at) == (6, 60, 5.0)  # the rest keeps its age
    assert len(pending.take_batch(max_messages=100, max_bytes=35)) == 3  # 30 bytes fit, 40 do not
    assert len(pending.take_batch(max_messages=100, max_bytes=1)) == 1  # one record always goes
    assert len(pending.take_batch(max_messages=100, max_bytes=1_000)) == 2
    assert (len(pending), pending.bytes, pending.first_at) == (0, 0, None)
    assert pending.take_batch(max_messages=100, max_bytes=1_000) == []


def test_merged_batches_commit_the_furthest_offsets_and_keep_everything_in_order(preparer: _Preparer) -> None:
    first = preparer.prepare([Rec("t", 0, 0, orjson.dumps(make_event(1))), Rec("t", 1, 0, b"bad")])
    second = preparer.prepare([Rec("t", 0, 1, orjson.dumps([make_event(2), {"x": 1}])), Rec("u", 0, 7, b"[]")])
    merged = merge_batches([first, second])
    assert merged.rows.event_ids == ["evt-000001", "evt-000002"]
    assert [r.source_ref for r in merged.rejections] == ["t/1@0", "t/0@1"]
    assert [letter.offset for letter in merged.dead_letters] == [0, 1]
    assert merged.next_offsets == {("t", 0): 2, ("t", 1): 1, ("u", 0): 8}
    assert merged.ranges == {("t", 0): (0, 1), ("t", 1): (0, 0), ("u", 0): (7, 7)}
    assert (merged.messages, merged.rejected_by_topic) == (4, {"t": 2})
    # Deterministic for the same parts, different from either part and from the other order.
    assert merged.dedup_token() == merge_batches([first, second]).dedup_token()
    assert merged.dedup_token() not in {first.dedup_token(), second.dedup_token(),
                                        merge_batches([second, first]).dedup_token()}
    assert merge_batches([first]) is first
