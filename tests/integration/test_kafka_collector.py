"""The Kafka collector on a real broker and the real embedded ClickHouse, consumer threads in this process."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver.client import Client
from kafka import KafkaConsumer, TopicPartition

from collector.kafka.consumer import KafkaCollector, KafkaConsumerConfig, build_consumer
from collector.kafka.dead_letter import (
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
    build_dead_letter_producer,
)
from collector.kafka.decoders import default_decoders
from collector.kafka.metrics import KafkaMetrics
from collector.kafka.prepare_pool import PrepareConfig, PreparePool
from collector.pricing import PriceCatalog
from collector.rows import EventBatch, Rejection
from collector.store import ClickHouseEventStore, EventSink, WriteResult
from collector.validation import EventValidator
from tests.support.events import make_event
from tests.support.kafka_collector_proc import (
    costs_match,
    encode_messages,
    expected_totals,
    produce,
    simulated_events,
)

pytestmark = pytest.mark.integration

BIG = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def validator() -> EventValidator:
    return EventValidator(prices=PriceCatalog())


@pytest.fixture(scope="module")
def prepare_pool() -> Iterator[PreparePool]:
    """Two prepare worker processes (the default of `llmpulse collect`), shared by the tests that use them:
    a collector handed a running pool uses it and leaves it running."""
    pool = PreparePool(processes=2, config=PrepareConfig())
    pool.start(wait=True)
    yield pool
    pool.stop()


@pytest.fixture()
def collectors(kafka_bootstrap: str, validator: EventValidator) -> Iterator[Callable[..., KafkaCollector]]:
    """A factory of started collectors; every one is stopped at the end of the test."""
    made: list[KafkaCollector] = []

    def make(
        topics: Sequence[str],
        group: str,
        sink: EventSink,
        *,
        dlq_topic: str,
        consumer: dict[str, Any] | None = None,
        dlq_max_bytes: int = 1024 * 1024,
        **knobs: Any,
    ) -> KafkaCollector:
        config = {
            "session_timeout_ms": 6_000,
            "heartbeat_interval_ms": 500,
            "max_poll_interval_ms": 30_000,
            "metadata_max_age_ms": 2_000,
            **(consumer or {}),
        }
        tuning = {
            "batch_max_messages": 5_000,
            "batch_max_seconds": 0.3,
            "retry_backoff_s": 0.2,
            "retry_backoff_max_s": 1.0,
            **knobs,
        }
        collector = KafkaCollector(
            build_consumer(KafkaConsumerConfig(bootstrap=kafka_bootstrap, group_id=group, **config)),
            topics=topics,
            validator=validator,
            sink=sink,
            dead_letters=build_dead_letter_producer(
                kafka_bootstrap, dlq_topic, client_id="test", max_message_bytes=dlq_max_bytes
            ),
            decoders=default_decoders(),
            metrics=KafkaMetrics(),
            **tuning,
        )
        collector.start()
        made.append(collector)
        return collector

    yield make
    for collector in made:
        collector.stop(timeout_s=60)


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def totals(client: Client) -> tuple[int, int, float]:
    """Rows, distinct event_ids and cost, read without FINAL (as dashboards read them)."""
    rows, distinct, cost = client.query("SELECT count(), uniqExact(event_id), sum(cost_usd) FROM events").result_rows[0]
    return int(rows), int(distinct), float(cost or 0.0)


def stored(client: Client) -> int:
    return int(client.query("SELECT count() FROM events").result_rows[0][0])


def metric(collector: KafkaCollector, name: str, labels: dict[str, str] | None = None) -> float:
    value = collector._metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> tuple[dict[int, int], dict[int, int]]:
    """(committed, end) offsets per partition of `group` on `topic`."""
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        end = {tp.partition: offset for tp, offset in probe.end_offsets(tps).items()}
        committed = {tp.partition: probe.committed(tp) or 0 for tp in tps}
    finally:
        probe.close(autocommit=False)
    return committed, end


# -- (1) volume: 100,000 events, exact count and cost -----------------------------------------------


def test_100k_events_are_stored_exactly_once_with_their_cost(
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    store_client: Client,
    collectors: Callable[..., KafkaCollector],
    prepare_pool: PreparePool,
) -> None:
    events = simulated_events(100_000)
    expected = expected_totals(events)
    topic = kafka_topic("volume", partitions=4)
    dlq = kafka_topic("volume-dlq")
    # One event per message for a fifth of the traffic, arrays of 100 for the rest (as batching SDKs send).
    produce(kafka_bootstrap, topic, encode_messages(events[:20_000]))
    produce(kafka_bootstrap, topic, encode_messages(events[20_000:], per_message=100))

    started = time.monotonic()
    # Prepared in worker processes, as `llmpulse collect` does by default.
    collector = collectors([topic], f"{topic}-g", ClickHouseEventStore(store_client), dlq_topic=dlq,
                           batch_max_messages=20_000, prepare_pool=prepare_pool)
    wait_until(lambda: stored(store_client) >= expected.events, timeout=120, what="100,000 stored events")
    elapsed = time.monotonic() - started
    collector.stop()

    rows, distinct, cost = totals(store_client)
    assert (rows, distinct) == (100_000, 100_000)
    assert costs_match(cost, expected.cost_usd), (cost, expected.cost_usd)
    assert store_client.query("SELECT count() FROM rejected_events").result_rows[0][0] == 0
    committed, end = committed_offsets(kafka_bootstrap, f"{topic}-g", topic, 4)
    assert committed == end
    print(f"\n100,000 events consumed and stored in {elapsed:.1f}s ({100_000 / elapsed:,.0f} events/s)")


# -- (3) ClickHouse fails for longer than max.poll.interval.ms --------------------------------------


class FlakySink:
    """The real store behind a switch: fails (the first failure also hangs) until `recover_at`."""

    def __init__(self, inner: EventSink, *, recover_at: float, hang_s: float) -> None:
        self._inner = inner
        self._recover_at = recover_at
        self._hang_s = hang_s
        self.failures = 0

    def _gate(self) -> None:
        if time.monotonic() < self._recover_at:
            self.failures += 1
            if self.failures == 1:
                time.sleep(self._hang_s)  # a slow ClickHouse before it goes away entirely
            raise ConnectionError("injected fault: ClickHouse unavailable")

    def write_events(self, batch: EventBatch, *, dedup_token: str | None = None) -> WriteResult:
        self._gate()
        return self._inner.write_events(batch, dedup_token=dedup_token)

    def write_rejections(self, rejections: Sequence[Rejection]) -> None:
        self._gate()
        self._inner.write_rejections(rejections)


def test_store_outage_longer_than_max_poll_interval_pauses_without_losing_events_or_membership(
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    store_client: Client,
    collectors: Callable[..., KafkaCollector],
) -> None:
    topic = kafka_topic("outage", partitions=3)
    dlq = kafka_topic("outage-dlq")
    first = simulated_events(6_000, seed=3)
    produce(kafka_bootstrap, topic, encode_messages(first[:3_000]))

    outage_s, max_poll_interval_ms = 10.0, 6_000
    sink = FlakySink(ClickHouseEventStore(store_client), recover_at=float("inf"), hang_s=8.0)
    collector = collectors([topic], f"{topic}-g", sink, dlq_topic=dlq,
                           consumer={"max_poll_interval_ms": max_poll_interval_ms}, batch_max_messages=1_000)
    wait_until(lambda: sink.failures >= 1, timeout=30, what="the first failed insert")
    sink._recover_at = time.monotonic() + outage_s
    membership = collector.group_metadata()
    assert membership.generation_id > 0 and membership.member_id

    # More traffic arrives during the outage; the collector must hold it back, not drop it.
    produce(kafka_bootstrap, topic, encode_messages(first[3_000:]))
    saw_paused = False
    while time.monotonic() < sink._recover_at:
        saw_paused = saw_paused or metric(collector, "llmpulse_kafka_paused") == 1.0
        time.sleep(0.2)
    assert saw_paused, "fetching was never paused during the outage"
    assert stored(store_client) == 0

    wait_until(lambda: stored(store_client) >= 6_000, timeout=60, what="recovery")
    wait_until(lambda: metric(collector, "llmpulse_kafka_paused") == 0.0, timeout=10, what="resume")
    after = collector.group_metadata()
    # Same member, same generation: the outage (longer than max.poll.interval.ms) caused no eviction and
    # no rebalance.
    assert (after.member_id, after.generation_id) == (membership.member_id, membership.generation_id)
    assert collector.revocations == 0
    assert metric(collector, "llmpulse_kafka_insert_failures_total") >= 2
    collector.stop()
    rows, distinct, cost = totals(store_client)
    expected = expected_totals(first)
    assert (rows, distinct) == (6_000, 6_000)
    assert costs_match(cost, expected.cost_usd)


# -- (4) poison messages --------------------------------------------------------------------------


def test_poison_messages_go_to_the_dead_letter_topic_and_rejected_events(
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    store_client: Client,
    collectors: Callable[..., KafkaCollector],
) -> None:
    topic = kafka_topic("poison")
    dlq = kafka_topic("poison-dlq")
    no_model = make_event(9)
    del no_model["model"]
    huge = orjson.dumps(make_event(10, input="x" * BIG))
    messages: list[bytes | None] = [
        orjson.dumps(make_event(1)),
        b'{"event_id": "broken", "app": ',  # invalid JSON
        orjson.dumps(make_event(2)),
        b'{"event_id": "latin1", "app": "caf\xe9"}',  # invalid UTF-8
        orjson.dumps(no_model),  # schema violation
        huge,  # 5 MiB: over the per-event limit
        orjson.dumps([make_event(3), {"event_id": "no-app", "model": "gpt-4o"}, make_event(4)]),
        None,  # a tombstone (null value; Kafka needs a key for it)
        orjson.dumps(make_event(5)),
    ]
    keys = [f"k{i}".encode() for i in range(len(messages))]
    produce(kafka_bootstrap, topic, messages, keys=keys, max_request_size=8 * 1024 * 1024)

    collector = collectors([topic], f"{topic}-g", ClickHouseEventStore(store_client), dlq_topic=dlq,
                           dlq_max_bytes=8 * 1024 * 1024)
    wait_until(lambda: stored(store_client) >= 5, timeout=60, what="the good events")
    wait_until(lambda: metric(collector, "llmpulse_kafka_offset_commits_total", {"when": "batch"}) >= 1,
               timeout=30, what="a commit")

    good = {r[0] for r in store_client.query("SELECT event_id FROM events").result_rows}
    assert good == {f"evt-{i:06d}" for i in (1, 2, 3, 4, 5)}

    rejected = store_client.query(
        "SELECT source_ref, item_index, reason, length(payload) FROM rejected_events ORDER BY source_ref, item_index"
    ).result_rows
    by_offset = {int(ref.rsplit("@", 1)[1]): (index, reason, size) for ref, index, reason, size in rejected}
    assert set(by_offset) == {1, 3, 4, 5, 6, 7}
    assert by_offset[1][0] == -1 and "invalid JSON" in by_offset[1][1]
    assert by_offset[3][0] == -1 and "not valid UTF-8" in by_offset[3][1]
    assert "missing required field `model`" in by_offset[4][1]
    assert "over the 1,048,576-byte limit" in by_offset[5][1] and by_offset[5][2] == len(huge)
    assert by_offset[6][0] == 1 and "item 1" in by_offset[6][1] and "`app`" in by_offset[6][1]
    assert "empty message" in by_offset[7][1]
    assert all(ref.startswith(f"{topic}/0@") for ref, *_ in rejected)

    letters = _read_all(kafka_bootstrap, dlq, expected=6)
    assert [int(h[HEADER_OFFSET]) for _, h in letters] == [1, 3, 4, 5, 6, 7]
    for value, headers in letters:
        assert headers[HEADER_TOPIC] == topic.encode() and headers[HEADER_PARTITION] == b"0"
        assert headers[HEADER_REASON]
        assert value == (messages[int(headers[HEADER_OFFSET])] or b"")  # the original bytes
    assert len(letters[3][0]) == len(huge)
    assert b"missing required field" in letters[2][1][HEADER_REASON]
    assert metric(collector, "llmpulse_kafka_messages_dead_lettered_total", {"topic": topic}) == 6
    assert metric(collector, "llmpulse_kafka_events_rejected_total", {"topic": topic}) == 6


def _read_all(bootstrap: str, topic: str, *, expected: int) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             max_partition_fetch_bytes=16 * 1024 * 1024)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        got: list[tuple[bytes, dict[str, bytes]]] = []
        deadline = time.monotonic() + 30
        while len(got) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend((r.value, dict(r.headers)) for r in records)
    finally:
        consumer.close()
    return got


# -- (4b) prepare worker processes: many small batches in flight ----------------------------------


class RecordingSink:
    """The real store, noting the event_ids of each insert in the order the writer makes them."""

    def __init__(self, inner: EventSink) -> None:
        self._inner = inner
        self.inserts: list[list[str]] = []

    def write_events(self, batch: EventBatch, *, dedup_token: str | None = None) -> WriteResult:
        result = self._inner.write_events(batch, dedup_token=dedup_token)
        self.inserts.append(batch.event_ids)
        return result

    def write_rejections(self, rejections: Sequence[Rejection]) -> None:
        self._inner.write_rejections(rejections)


def test_batches_prepared_by_workers_are_stored_in_offset_order_exactly_once(
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    store_client: Client,
    collectors: Callable[..., KafkaCollector],
    prepare_pool: PreparePool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = kafka_topic("pooled")  # one partition: offset order is one total order to check
    dlq = kafka_topic("pooled-dlq")
    events = simulated_events(3_000, seed=9)
    messages: list[bytes | None] = []
    for start in range(0, len(events), 100):
        # Alternate single events and arrays of 20, so batches take the workers different times.
        chunk = events[start : start + 100]
        messages.extend(encode_messages(chunk, per_message=1 if start % 200 else 20))
    messages[10:10] = [b'{"event_id": "broken", ']  # whole message unreadable
    messages[500:500] = [orjson.dumps([{"event_id": "no-model", "app": "a"}])]  # one bad item
    messages[900:900] = [None]  # a tombstone
    produce(kafka_bootstrap, topic, messages, keys=[b"k"] * len(messages))
    valid = [event["event_id"] for event in events]

    caplog.set_level(logging.WARNING, logger="collector.kafka")
    sink = RecordingSink(ClickHouseEventStore(store_client))
    # Batches of 100 messages: ~30 of them, several in preparation while earlier ones are inserted.
    collector = collectors([topic], f"{topic}-g", sink, dlq_topic=dlq, prepare_pool=prepare_pool,
                           batch_max_messages=100, max_poll_records=100, batch_max_seconds=0.1)
    wait_until(lambda: committed_offsets(kafka_bootstrap, f"{topic}-g", topic, 1)[0] == {0: len(messages)},
               timeout=90, what="every message stored and committed", interval=0.5)
    collector.stop()

    # Stored in offset order, each event once, whatever order the workers finished their batches in.
    assert [event_id for insert in sink.inserts for event_id in insert] == valid
    rows, distinct, cost = totals(store_client)
    assert (rows, distinct) == (3_000, 3_000)
    assert costs_match(cost, expected_totals(events).cost_usd)
    assert store_client.query("SELECT count() FROM rejected_events").result_rows[0][0] == 3
    assert metric(collector, "llmpulse_kafka_messages_dead_lettered_total", {"topic": topic}) == 3
    assert metric(collector, "llmpulse_kafka_prepare_duration_seconds_count") >= 10
    assert not [r for r in caplog.records if "worker process failed" in r.getMessage()]

    # Everything read again (a new group starts from the beginning, as after lost commits): nothing
    # is counted twice.
    again = collectors([topic], f"{topic}-again", sink, dlq_topic=dlq, prepare_pool=prepare_pool,
                       batch_max_messages=100, max_poll_records=100, batch_max_seconds=0.1)
    wait_until(lambda: committed_offsets(kafka_bootstrap, f"{topic}-again", topic, 1)[0] == {0: len(messages)},
               timeout=90, what="the second pass", interval=0.5)
    again.stop()
    assert metric(again, "llmpulse_kafka_events_duplicate_total") == 3_000
    assert totals(store_client)[:2] == (3_000, 3_000)


def test_a_prepare_worker_killed_mid_stream_loses_and_doubles_nothing(
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    store_client: Client,
    collectors: Callable[..., KafkaCollector],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = kafka_topic("worker-kill", partitions=2)
    dlq = kafka_topic("worker-kill-dlq")
    events = simulated_events(10_000, seed=13)
    produce(kafka_bootstrap, topic, encode_messages(events))
    caplog.set_level(logging.WARNING, logger="collector")
    pool = PreparePool(processes=2, config=PrepareConfig())  # its own: this test breaks it
    pool.start(wait=True)
    try:
        collector = collectors([topic], f"{topic}-g", ClickHouseEventStore(store_client), dlq_topic=dlq,
                               prepare_pool=pool, batch_max_messages=200, max_poll_records=200,
                               batch_max_seconds=0.1)
        wait_until(lambda: metric(collector, "llmpulse_kafka_offset_commits_total", {"when": "batch"}) >= 1,
                   timeout=60, what="a first commit", interval=0.02)
        victim = pool.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)  # as the OOM killer would
        wait_until(lambda: stored(store_client) >= 10_000, timeout=90, what="all 10,000 stored")
        collector.stop()
    finally:
        pool.stop()
    rows, distinct, cost = totals(store_client)
    assert (rows, distinct) == (10_000, 10_000)
    assert costs_match(cost, expected_totals(events).cost_usd)
    committed, end = committed_offsets(kafka_bootstrap, f"{topic}-g", topic, 2)
    assert committed == end
    assert stored(store_client) == 10_000
    assert victim not in pool.worker_pids()
    # The pool logs every death; whether a batch was in flight on the victim at that instant is up to the
    # scheduler (the fallback for that case is tested in tests/unit/test_kafka_prepare_pool.py).
    assert any(f"(pid {victim}) died" in r.getMessage() for r in caplog.records), "the worker's death went unnoticed"


# -- (5) two collectors, one group, rebalances ----------------------------------------------------


def test_two_collectors_share_partitions_and_rebalances_flush_before_revocation(
    kafka_bootstrap: str,
    kafka_topic: Callable[..., str],
    store_client: Client,
    collectors: Callable[..., KafkaCollector],
) -> None:
    topic = kafka_topic("shared", partitions=6)
    dlq = kafka_topic("shared-dlq")
    group = f"{topic}-g"
    events = simulated_events(12_000, seed=5)
    keys = [e["event_id"].encode() for e in events]
    produce(kafka_bootstrap, topic, encode_messages(events[:6_000]), keys=keys[:6_000])
    store = ClickHouseEventStore(store_client)
    # Batches never close by size or time here: only a rebalance or a shutdown makes them durable, so
    # whatever is stored below was flushed by the revocation listener.
    hold = {"batch_max_messages": 1_000_000, "batch_max_seconds": 3_600.0}

    a = collectors([topic], group, store, dlq_topic=dlq, **hold)
    wait_until(lambda: metric(a, "llmpulse_kafka_messages_consumed_total", {"topic": topic}) >= 6_000,
               timeout=60, what="A to read the first 6,000 messages")
    assert stored(store_client) == 0

    b = collectors([topic], group, store, dlq_topic=dlq, **hold)
    wait_until(lambda: metric(a, "llmpulse_kafka_assigned_partitions") + metric(b, "llmpulse_kafka_assigned_partitions")
               == 6 and metric(b, "llmpulse_kafka_assigned_partitions") > 0, timeout=60, what="the rebalance")
    # A's revocation listener stored and committed everything it held, from kafka-python's IO thread
    # (a plain commit() there raises "Cannot block on net.run() from the IO thread itself")...
    assert a.revocations >= 1
    assert metric(a, "llmpulse_kafka_offset_commits_total", {"when": "revocation"}) >= 1
    assert stored(store_client) == 6_000
    committed, end = committed_offsets(kafka_bootstrap, group, topic, 6)
    assert committed == end
    # ...so B, taking over half of the partitions, re-reads none of it.
    time.sleep(1.0)
    assert metric(b, "llmpulse_kafka_messages_consumed_total", {"topic": topic}) == 0

    produce(kafka_bootstrap, topic, encode_messages(events[6_000:]), keys=keys[6_000:])
    wait_until(
        lambda: metric(a, "llmpulse_kafka_messages_consumed_total", {"topic": topic})
        + metric(b, "llmpulse_kafka_messages_consumed_total", {"topic": topic}) >= 12_000,
        timeout=60, what="A and B to read the second 6,000",
    )
    read_by_a = metric(a, "llmpulse_kafka_messages_consumed_total", {"topic": topic}) - 6_000
    read_by_b = metric(b, "llmpulse_kafka_messages_consumed_total", {"topic": topic})
    assert read_by_a > 0 and read_by_b > 0, "the work was not shared"

    # A leaves: it stores and commits its share on the way out, B's revocation stores B's share.
    a.stop()
    wait_until(lambda: metric(b, "llmpulse_kafka_assigned_partitions") == 6, timeout=60, what="B to take over")
    wait_until(lambda: stored(store_client) >= 12_000, timeout=30, what="all 12,000 stored")
    b.stop()

    rows, distinct, cost = totals(store_client)
    assert (rows, distinct) == (12_000, 12_000)
    assert costs_match(cost, expected_totals(events).cost_usd)
    committed, end = committed_offsets(kafka_bootstrap, group, topic, 6)
    assert committed == end


def test_stop_from_another_thread_while_polling_is_prompt(
    kafka_topic: Callable[..., str], store_client: Client, collectors: Callable[..., KafkaCollector]
) -> None:
    topic = kafka_topic("idle")
    collector = collectors([topic], f"{topic}-g", ClickHouseEventStore(store_client), dlq_topic=kafka_topic("idle-dlq"))
    time.sleep(1.0)
    started = time.monotonic()
    stopper = threading.Thread(target=collector.stop)
    stopper.start()
    stopper.join(30)
    assert not stopper.is_alive()
    assert time.monotonic() - started < 10
