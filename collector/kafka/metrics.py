"""The Kafka collector's own Prometheus metrics, registered on an injected registry.

`llmpulse collect` serves a registry of its own; `llmpulse serve --kafka` passes the API's registry so
one /metrics shows both front ends.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from collector.metrics import BATCH_ROWS_BUCKETS, INSERT_SECONDS_BUCKETS


class KafkaMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.consumer_lag = Gauge(
            "llmpulse_kafka_consumer_lag",
            "Messages in the partition not yet stored and committed (high watermark - committed offset).",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.messages_consumed = Counter(
            "llmpulse_kafka_messages_consumed", "Kafka messages read.", ["topic"], registry=self.registry
        )
        self.batch_events = Histogram(
            "llmpulse_kafka_batch_events", "Valid events per ClickHouse insert.", buckets=BATCH_ROWS_BUCKETS,
            registry=self.registry,
        )
        self.batch_messages = Histogram(
            "llmpulse_kafka_batch_messages", "Kafka messages per ClickHouse insert.", buckets=BATCH_ROWS_BUCKETS,
            registry=self.registry,
        )
        self.insert_seconds = Histogram(
            "llmpulse_kafka_insert_duration_seconds", "Duration of one ClickHouse insert attempt of a batch.",
            buckets=INSERT_SECONDS_BUCKETS, registry=self.registry,
        )
        self.prepare_seconds = Histogram(
            "llmpulse_kafka_prepare_duration_seconds",
            "Time to decode, validate and price one batch (in a worker process when there are workers).",
            buckets=INSERT_SECONDS_BUCKETS, registry=self.registry,
        )
        self.insert_failures = Counter(
            "llmpulse_kafka_insert_failures", "Failed attempts to store a batch (retried with backoff).",
            registry=self.registry,
        )
        self.events_stored = Counter(
            "llmpulse_kafka_events_stored", "Events inserted into ClickHouse.", registry=self.registry
        )
        self.events_duplicate = Counter(
            "llmpulse_kafka_events_duplicate", "Events skipped because their event_id was already stored.",
            registry=self.registry,
        )
        self.events_rejected = Counter(
            "llmpulse_kafka_events_rejected", "Items rejected and kept in rejected_events.", ["topic"],
            registry=self.registry,
        )
        self.messages_dead_lettered = Counter(
            "llmpulse_kafka_messages_dead_lettered", "Messages copied to the dead-letter topic.", ["topic"],
            registry=self.registry,
        )
        self.paused = Gauge(
            "llmpulse_kafka_paused", "1 while fetching is paused because the store is failing or behind.",
            registry=self.registry,
        )
        self.commits = Counter(
            "llmpulse_kafka_offset_commits", "Offset commits after durable writes.", ["when"], registry=self.registry
        )
        self.rebalances = Counter(
            "llmpulse_kafka_rebalances", "Partition revocations handled.", ["kind"], registry=self.registry
        )
        self.assigned_partitions = Gauge(
            "llmpulse_kafka_assigned_partitions", "Partitions this member owns.", registry=self.registry
        )
