"""The real Kafka broker used by the integration tests works end to end with kafka-python."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

pytestmark = pytest.mark.integration

N_MESSAGES = 1_000
BIG = 5 * 1024 * 1024  # 5 MiB, like the collector's poison-message test


def test_produce_and_consume_1000_messages_with_manual_commits(kafka_bootstrap, kafka_topic):
    topic = kafka_topic("roundtrip", partitions=3)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    try:
        futures = [
            producer.send(topic, key=f"k{i % 17}".encode(), value=f"message-{i}".encode())
            for i in range(N_MESSAGES)
        ]
        producer.flush(timeout=30)
        partitions_used = {f.get(timeout=30).partition for f in futures}
    finally:
        producer.close(timeout=10)
    assert partitions_used == {0, 1, 2}

    group = f"{topic}-group"
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    received: list[bytes] = []
    try:
        deadline = time.monotonic() + 60
        while len(received) < N_MESSAGES and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                received.extend(r.value for r in records)
            if batch:
                consumer.commit()
        tps = [TopicPartition(topic, p) for p in range(3)]
        end = consumer.end_offsets(tps)
        committed = {tp: consumer.committed(tp) for tp in tps}
    finally:
        consumer.close()

    assert len(received) == N_MESSAGES
    assert sorted(received) == sorted(f"message-{i}".encode() for i in range(N_MESSAGES))
    assert committed == end
    assert sum(end.values()) == N_MESSAGES

    # A second consumer of the same group starts from the committed offsets: nothing left.
    again = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    leftover: list[bytes] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not again.assignment():
            leftover.extend(r.value for rs in again.poll(timeout_ms=500).values() for r in rs)
        assert again.assignment(), "second consumer never joined the group"
        for _ in range(2):
            leftover.extend(r.value for rs in again.poll(timeout_ms=500).values() for r in rs)
    finally:
        again.close()
    assert leftover == []


def test_broker_accepts_a_5_mib_message(kafka_bootstrap, kafka_topic):
    topic = kafka_topic("big")
    payload = os.urandom(BIG)
    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        max_request_size=8 * 1024 * 1024,
    )
    try:
        meta = producer.send(topic, value=payload).get(timeout=60)
    finally:
        producer.close(timeout=10)
    assert meta.offset == 0

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got: list[bytes] = []
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline:
            got.extend(r.value for rs in consumer.poll(timeout_ms=1000).values() for r in rs)
    finally:
        consumer.close()
    assert len(got) == 1
    assert len(got[0]) == BIG
    assert hashlib.sha256(got[0]).digest() == hashlib.sha256(payload).digest()
