"""Cost of masking secrets before storage, per event, as a ratio to validating the same events unmasked.

    .venv/bin/python bench/redaction.py [--events 20000] [--rounds 5]

Validation is the whole per-event work of every ingest path (HTTP, files, Kafka, OTLP all go through
`EventValidator`), so the ratio is what masking adds to ingest CPU. Three policies, interleaved round by
round on the same decoded events: none, the default set (secrets and card numbers), and every built-in
kind. Two traffic mixes: simulated traffic (llmpulse.simulate: realistic prompts and responses, ids,
metadata) and a secret-dense copy where every event's input carries a key, a card number and an email.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.pricing import PriceCatalog  # noqa: E402
from collector.redaction import BUILTIN_KINDS, DEFAULT_POLICY, NO_REDACTION_POLICY, RedactionPolicy  # noqa: E402
from collector.validation import EventValidator, RawItem  # noqa: E402
from llmpulse.simulate import SimulationConfig, generate  # noqa: E402

SECRETS = (
    " my key is sk-proj-4fQk29XbLm0PzR7tYw3VnA8sDc1GhJ5e and the card 4111 1111 1111 1111,"
    " reach me at jane.doe@example.com"
)


def simulated(n_events: int) -> list[dict[str, Any]]:
    config = SimulationConfig(
        start=datetime(2026, 11, 1, tzinfo=UTC), duration=timedelta(days=1), seed=5, clean=True,
        rate_per_minute=max(10.0, n_events / 1440 * 1.05),
    )
    events = []
    for event in generate(config):
        events.append(event)
        if len(events) == n_events:
            break
    return events


def secret_dense(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    dense = []
    for event in events:
        copy = dict(event)
        text = copy.get("input")
        copy["input"] = (text if isinstance(text, str) else "") + SECRETS
        dense.append(copy)
    return dense


def time_validation(validator: EventValidator, raw: list[bytes]) -> float:
    # Decoded per run (as every ingest path does), so the model/fast path sees fresh objects.
    items = [RawItem(i, orjson.loads(line), line, None, "", len(line)) for i, line in enumerate(raw)]
    started = time.perf_counter()
    result = validator.validate(items, source="bench", source_ref="bench")
    elapsed = time.perf_counter() - started
    assert not result.rejections, result.rejections[:1]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    base = simulated(args.events)
    mixes = {"simulated": base, "secret-dense": secret_dense(base)}
    policies = {
        "none": NO_REDACTION_POLICY,
        "default": DEFAULT_POLICY,
        "all kinds": RedactionPolicy(kinds=BUILTIN_KINDS),
    }
    validators = {name: EventValidator(prices=PriceCatalog(), redaction=p) for name, p in policies.items()}
    print(f"{len(base):,} events per run, {args.rounds} interleaved rounds, median per policy")
    for mix, events in mixes.items():
        raw = [orjson.dumps(e) for e in events]
        for validator in validators.values():
            time_validation(validator, raw[:2000])  # warm-up: compiled patterns, caches
        times: dict[str, list[float]] = {name: [] for name in validators}
        for _ in range(args.rounds):
            for name, validator in validators.items():
                times[name].append(time_validation(validator, raw))
        baseline = statistics.median(times["none"])
        print(f"\n{mix}:")
        for name, runs in times.items():
            median = statistics.median(runs)
            per_event_us = median / len(raw) * 1e6
            added_us = (median - baseline) / len(raw) * 1e6
            print(
                f"  {name:<10} {per_event_us:6.2f} µs/event  ratio {median / baseline:5.2f}x"
                f"  (+{added_us:.2f} µs/event for masking)"
            )


if __name__ == "__main__":
    main()
