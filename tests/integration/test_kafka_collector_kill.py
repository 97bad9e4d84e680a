"""`llmpulse collect` killed with SIGKILL mid-stream and restarted: nothing lost, nothing doubled.

The collector runs as a subprocess with its own chDB path (the pytest process holds another one); the
store is read by a third process after the collector has exited.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka.errors import KafkaError

from tests.support.kafka_broker import REPO_ROOT, KafkaBroker
from tests.support.kafka_collector_proc import costs_match, encode_messages, expected_totals, produce, simulated_events
from tests.support.processes import alive, children

pytestmark = pytest.mark.integration

KILLS = 3


def _committed(broker: KafkaBroker, group: str) -> int:
    try:
        offsets = broker.admin().list_group_offsets({group: None}).get(group, {})
    except KafkaError:
        return 0  # e.g. the offsets topic of a fresh broker has no coordinator yet
    return sum(meta.offset for meta in offsets.values() if meta.offset >= 0)


def _start_collector(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "llmpulse.cli", "collect"],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )


def _wait(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}; collector log:\n{tail}")
        time.sleep(0.1)


def test_sigkill_mid_stream_three_times_loses_and_doubles_nothing(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str], tmp_path: Path
) -> None:
    events = simulated_events(30_000, seed=17)
    expected = expected_totals(events)
    topic = kafka_topic("kill", partitions=3)
    dlq = kafka_topic("kill-dlq")
    group = f"{topic}-g"
    messages = [*encode_messages(events[:10_000]), *encode_messages(events[10_000:], per_message=20)]
    produce(kafka_broker.bootstrap, topic, messages)
    total_messages = len(messages)

    store_url = f"chdb://{tmp_path / 'store'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")},
        "LLMPULSE_CLICKHOUSE_URL": store_url,
        "LLMPULSE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "LLMPULSE_KAFKA_TOPICS": topic,
        "LLMPULSE_KAFKA_GROUP_ID": group,
        "LLMPULSE_KAFKA_DEAD_LETTER_TOPIC": dlq,
        # Small batches: many insert/commit cycles for the kills to land between.
        "LLMPULSE_KAFKA_BATCH_MAX_MESSAGES": "300",
        "LLMPULSE_KAFKA_BATCH_MAX_SECONDS": "0.2",
        "LLMPULSE_KAFKA_MAX_POLL_RECORDS": "300",
        # A killed member holds its partitions until its session expires: keep that short.
        "LLMPULSE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "LLMPULSE_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    }
    log = tmp_path / "collector.log"
    rng = random.Random(7)

    kills = 0
    for _ in range(KILLS):
        before = _committed(kafka_broker, group)
        if before >= total_messages:
            break
        proc = _start_collector(env, log)
        workers: set[int] = set()
        try:
            # Kill only once this run has made progress of its own, at a random point after a commit:
            # sometimes mid-insert, sometimes between an insert and its commit.
            _wait(lambda before=before: _committed(kafka_broker, group) > before, 90, "progress", log)
            time.sleep(rng.uniform(0.0, 0.4))
            workers = children(proc.pid)
        finally:
            proc.kill()
            proc.wait(30)
        kills += 1
        # `collect` prepares batches in worker processes (LLMPULSE_KAFKA_PREPARE_WORKERS, default 2); they
        # must not outlive a collector killed with SIGKILL.
        assert len(workers) >= 2, workers
        _wait(lambda workers=workers: not any(alive(pid) for pid in workers), 30, "the workers to exit", log)
    assert kills == KILLS, "the stream ended before every kill landed; produce more events"
    assert _committed(kafka_broker, group) < total_messages, "nothing left for the final run"

    final = _start_collector(env, log)
    try:
        _wait(lambda: _committed(kafka_broker, group) >= total_messages, 120, "the final run to finish", log)
    finally:
        final.send_signal(signal.SIGTERM)
        assert final.wait(60) == 0, log.read_text(errors="replace")[-4000:]

    counted = subprocess.run(
        [sys.executable, "-m", "tests.support.kafka_collector_proc", "counts", store_url],
        cwd=REPO_ROOT, capture_output=True, check=True, timeout=120,
    )
    counts = orjson.loads(counted.stdout)
    # No FINAL: the raw row count must already be exact.
    assert counts["rows"] == expected.events == 30_000, counts
    assert counts["distinct"] == 30_000, counts
    assert costs_match(counts["cost"], expected.cost_usd), (counts["cost"], expected.cost_usd)
    assert counts["rejected"] == 0
