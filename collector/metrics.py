"""The collector's own Prometheus metrics, on a registry per process (or per test app)."""

from __future__ import annotations

import threading
import weakref

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# LLM-scale: an insert can take seconds when ClickHouse is busy, and batches reach tens of thousands of rows.
INSERT_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_ROWS_BUCKETS = (1, 10, 100, 500, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000)


_redaction_counters: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()
_redaction_lock = threading.Lock()


def redactions_counter(registry: CollectorRegistry) -> Counter:
    """`llmpulse_redactions_total{kind}` on `registry`, created once: the HTTP API and the Kafka consumer of
    one `serve` process share a registry, and a metric can be registered on it only once."""
    with _redaction_lock:
        counter = _redaction_counters.get(registry)
        if counter is None:
            counter = Counter(
                "llmpulse_redactions",
                "Matches masked as [REDACTED:kind] before storage, per kind (docs/security.md).",
                ["kind"],
                registry=registry,
            )
            _redaction_counters[registry] = counter
        return counter


def count_redactions(counter: Counter, counts: dict[str, int]) -> None:
    for kind, count in counts.items():
        counter.labels(kind).inc(count)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events_accepted = Counter(
            "llmpulse_events_accepted", "Events that passed validation.", ["source"], registry=self.registry
        )
        self.events_rejected = Counter(
            "llmpulse_events_rejected",
            "Items rejected and kept in rejected_events.",
            ["source"],
            registry=self.registry,
        )
        self.events_unpriced = Counter(
            "llmpulse_events_unpriced",
            "Accepted events whose model has no known price.",
            ["source"],
            registry=self.registry,
        )
        self.events_stored = Counter(
            "llmpulse_events_stored", "Events inserted into ClickHouse.", registry=self.registry
        )
        self.events_duplicate = Counter(
            "llmpulse_events_duplicate",
            "Events dropped because their event_id was already stored.",
            registry=self.registry,
        )
        self.insert_seconds = Histogram(
            "llmpulse_insert_duration_seconds",
            "Duration of one ClickHouse insert attempt.",
            buckets=INSERT_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "llmpulse_insert_batch_rows",
            "Rows per ClickHouse insert.",
            buckets=BATCH_ROWS_BUCKETS,
            registry=self.registry,
        )
        self.insert_failures = Counter(
            "llmpulse_insert_failures", "Failed ClickHouse insert attempts.", registry=self.registry
        )
        self.pending_rows = Gauge(
            "llmpulse_insert_pending_rows", "Validated rows waiting to be inserted.", registry=self.registry
        )
        self.otlp_spans_skipped = Counter(
            "llmpulse_otlp_spans_skipped",
            "OTLP spans that are not LLM, tool, retrieval or agent spans: accepted, not stored.",
            ["source"],
            registry=self.registry,
        )
        self.redactions = redactions_counter(self.registry)
        self.auth_failures = Counter(
            "llmpulse_auth_failures",
            "Requests refused by API key checks: status 401 (no, unknown or revoked key) or 403 (scope).",
            ["status"],
            registry=self.registry,
        )
