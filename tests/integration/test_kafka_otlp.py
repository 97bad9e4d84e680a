"""OTLP on Kafka: messages as the OpenTelemetry Collector's Kafka exporter writes them (otlp_proto), consumed
through the same dead-letter and exactly-once machinery as native events."""

from __future__ import annotations

import time
from collections.abc import Callable

from clickhouse_connect.driver.client import Client
from kafka import KafkaProducer

from collector.kafka.consumer import KafkaCollector, KafkaConsumerConfig, build_consumer
from collector.kafka.dead_letter import build_dead_letter_producer
from collector.kafka.decoders import default_decoders
from collector.kafka.metrics import KafkaMetrics
from collector.pricing import PriceCatalog
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator
from tests.integration.test_otlp_http import chat_attrs, export, span


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _collector(bootstrap: str, topic: str, dlq: str, group: str, client: Client) -> KafkaCollector:
    collector = KafkaCollector(
        build_consumer(
            KafkaConsumerConfig(
                bootstrap=bootstrap,
                group_id=group,
                session_timeout_ms=6_000,
                metadata_max_age_ms=2_000,
                heartbeat_interval_ms=500,
            )
        ),
        topics=[topic],
        validator=EventValidator(prices=PriceCatalog()),
        sink=ClickHouseEventStore(client),
        dead_letters=build_dead_letter_producer(bootstrap, dlq, client_id="test-otlp", max_message_bytes=1024 * 1024),
        decoders=default_decoders({topic: "otlp_proto"}),
        metrics=KafkaMetrics(),
        batch_max_seconds=0.3,
    )
    collector.start()
    return collector


def test_otlp_proto_messages_are_stored_once_even_when_the_exporter_resends_them(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], store_client: Client
) -> None:
    topic, dlq = kafka_topic("otlp", partitions=3), kafka_topic("otlp-dlq")
    messages = []
    for batch in range(20):
        spans = [span(batch * 10 + i, "chat gpt-4o-mini", chat_attrs()) for i in range(5)]
        spans.append(span(batch * 10 + 5, "GET /checkout", {"http.request.method": "GET"}))  # not an LLM span
        messages.append(export(spans).SerializeToString())
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for payload in messages + messages[:7]:  # an exporter retry re-sends the first seven
        producer.send(topic, payload)
    producer.send(topic, b"\x0a\x05trunc")  # a truncated protobuf
    producer.flush()
    producer.close()

    collector = _collector(kafka_bootstrap, topic, dlq, "otlp-group", store_client)
    try:
        _wait(lambda: store_client.query("SELECT count() FROM rejected_events").result_rows[0][0] >= 1, "dead letter")
        _wait(lambda: store_client.query("SELECT count() FROM events").result_rows[0][0] >= 100, "100 events")
        time.sleep(1.0)  # anything doubled would have arrived by now
    finally:
        collector.stop(timeout_s=60)

    rows, distinct, models, apps = store_client.query(
        "SELECT count(), uniqExact(event_id), groupUniqArray(model), groupUniqArray(app) FROM events"
    ).result_rows[0]
    assert rows == distinct == 100  # 20 messages x 5 LLM spans; re-sent spans and the HTTP span are not rows
    assert models == ["gpt-4o-mini"] and apps == ["checkout"]
    cost = store_client.query("SELECT count(cost_usd) FROM events").result_rows[0][0]
    assert cost == 100
    reason = store_client.query("SELECT reason, source FROM rejected_events").result_rows
    assert len(reason) == 1 and reason[0][1] == "kafka" and "protobuf" in reason[0][0].lower()
