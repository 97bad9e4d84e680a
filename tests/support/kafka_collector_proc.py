"""Helpers for the Kafka collector tests: fast producing, expected totals, and store counts from a subprocess.

chDB allows one data path per process and the pytest process already holds one, so a collector running as
a subprocess writes to its own path, and its results are read by another subprocess after it exits:

    python -m tests.support.kafka_collector_proc counts chdb:///tmp/x   ->  {"rows": .., "distinct": .., ...}
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from collector.pricing import PriceCatalog, TokenUsage


@dataclass(frozen=True, slots=True)
class Totals:
    events: int
    cost_usd: float


def simulated_events(count: int, *, seed: int = 11, start: datetime | None = None) -> list[dict[str, Any]]:
    """`count` realistic events from the simulator (clean traffic: every event valid)."""
    from llmpulse.simulate import SimulationConfig, generate, parse_duration

    config = SimulationConfig(
        start=start or datetime(2026, 11, 16, tzinfo=UTC), duration=parse_duration("7d"), seed=seed,
        incidents=[],
    )
    events: list[dict[str, Any]] = []
    for event in generate(config):
        events.append(event)
        if len(events) >= count:
            break
    if len(events) < count:
        raise ValueError(f"the simulation produced only {len(events)} events")
    return events


def _start_time(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def expected_totals(events: Iterable[dict[str, Any]], catalog: PriceCatalog | None = None) -> Totals:
    """What the store must hold: one row per distinct event_id, and the catalog's (or client's) cost."""
    catalog = catalog or PriceCatalog()
    seen: set[str] = set()
    total = 0.0
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        usage = event.get("usage") or {}
        cost = catalog.cost(
            model=event["model"],
            provider=event.get("provider"),
            usage=TokenUsage(
                input_tokens=usage.get("input_tokens", 0),
                output_tokens=usage.get("output_tokens", 0),
                cache_read_input_tokens=usage.get("cache_read_input_tokens", 0),
                cache_creation_input_tokens=usage.get("cache_creation_input_tokens", 0),
                reasoning_output_tokens=usage.get("reasoning_output_tokens", 0),
            ),
            at=_start_time(event["start_time"]),
            client_cost_usd=event.get("cost_usd"),
        )
        if cost.total_usd is not None:
            total += cost.total_usd
    return Totals(len(seen), total)


def costs_match(stored: float, expected: float) -> bool:
    # Summation order differs (ClickHouse adds in parallel): equal up to float rounding.
    return math.isclose(stored, expected, rel_tol=1e-9, abs_tol=1e-9)


def encode_messages(events: Sequence[dict[str, Any]], *, per_message: int = 1) -> Iterator[bytes]:
    """One JSON object per message, or JSON arrays of `per_message` events (fewer, larger messages)."""
    if per_message == 1:
        for event in events:
            yield orjson.dumps(event)
        return
    for start in range(0, len(events), per_message):
        yield orjson.dumps(list(events[start : start + per_message]))


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | None],
    *,
    keys: Iterable[bytes | None] | None = None,
    max_request_size: int = 1024 * 1024,
) -> int:
    """Produce pre-serialised values as fast as kafka-python allows; returns how many were acknowledged.

    lz4 matters more than it seems: kafka-python checksums batches (CRC-32C) in pure Python, and
    compression shrinks what it has to checksum several times over.
    """
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        batch_size=1024 * 1024,
        compression_type="lz4",
        max_request_size=max_request_size,
    )
    futures = []
    try:
        key_iter = iter(keys) if keys is not None else None
        for value in values:
            key = next(key_iter) if key_iter is not None else None
            futures.append(producer.send(topic, value=value, key=key))
        producer.flush(timeout=120)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=30)
    return len(futures)


def store_counts(url: str) -> dict[str, Any]:
    """Counts without FINAL: a duplicate row would show up here, as it would in any dashboard query."""
    from llmpulse.clickhouse import connect

    client = connect(url)
    rows, distinct, cost = client.query(
        "SELECT count(), uniqExact(event_id), sum(cost_usd) FROM events"
    ).result_rows[0]
    rejected = client.query("SELECT count() FROM rejected_events").result_rows[0][0]
    return {"rows": int(rows), "distinct": int(distinct), "cost": float(cost or 0.0), "rejected": int(rejected)}


def main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "counts":
        sys.stdout.write(orjson.dumps(store_counts(argv[1])).decode() + "\n")
        return 0
    sys.stderr.write("usage: python -m tests.support.kafka_collector_proc counts CHDB_URL\n")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
