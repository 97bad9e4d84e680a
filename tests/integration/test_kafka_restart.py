"""A collector SIGKILLed and restarted in place resumes at once (static group membership), three times in a row.

Without static membership the restarted process joins as a new member and the group waits for the killed
member's session to expire before it reassigns the partitions; with the default group.instance.id derived
from the host, the broker hands the restarted member its predecessor's partitions as soon as it joins. The
session timeout here is 60 s, so any recovery well below that shows the mechanism at work; the measured
times are printed (the 10 s target is checked by bench/chaos_soak.py).

The collector runs as a subprocess with its own chDB path; the store is read by a third process at the end.
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
from tests.support.kafka_collector_proc import encode_messages, produce, simulated_events

pytestmark = pytest.mark.integration

RESTARTS = 3
SESSION_TIMEOUT_S = 60


def _committed(broker: KafkaBroker, group: str) -> int:
    try:
        offsets = broker.admin().list_group_offsets({group: None}).get(group, {})
    except KafkaError:
        return 0
    return sum(meta.offset for meta in offsets.values() if meta.offset >= 0)


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "llmpulse.cli", "collect"],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )


def _wait(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> float:
    """Seconds until `predicate()` held; AssertionError with the collector's log after `timeout`."""
    started = time.monotonic()
    deadline = started + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
            raise AssertionError(f"timed out waiting for {what}; collector log:\n{tail}")
        time.sleep(0.05)
    return time.monotonic() - started


def test_sigkilled_collector_resumes_before_the_session_expires_three_times_and_stores_each_event_once(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str], tmp_path: Path
) -> None:
    events = simulated_events(8_000, seed=23)
    topic = kafka_topic("restart", partitions=3)
    dlq = kafka_topic("restart-dlq")
    group = f"{topic}-g"
    messages = list(encode_messages(events, per_message=4))
    # A backlog for the first run, then a fresh chunk while the collector is down after each kill: the restarted
    # member always has uncommitted work, however fast it drained the backlog before the kill.
    first_run = len(messages) - RESTARTS * 250
    produce(kafka_broker.bootstrap, topic, messages[:first_run])
    chunks = [messages[start : start + 250] for start in range(first_run, len(messages), 250)]

    store_url = f"chdb://{tmp_path / 'store'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")},
        "LLMPULSE_CLICKHOUSE_URL": store_url,
        "LLMPULSE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "LLMPULSE_KAFKA_TOPICS": topic,
        "LLMPULSE_KAFKA_GROUP_ID": group,
        "LLMPULSE_KAFKA_DEAD_LETTER_TOPIC": dlq,
        "LLMPULSE_KAFKA_BATCH_MAX_MESSAGES": "150",
        "LLMPULSE_KAFKA_BATCH_MAX_SECONDS": "0.2",
        "LLMPULSE_KAFKA_MAX_POLL_RECORDS": "150",
        # Long on purpose: a dynamic member would stall this long after every kill.
        "LLMPULSE_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_S * 1000),
        # LLMPULSE_KAFKA_GROUP_INSTANCE_ID unset: the default, derived from the host, is under test.
    }
    log = tmp_path / "collector.log"
    rng = random.Random(5)

    proc = _start(env, log)
    recoveries: list[float] = []
    try:
        _wait(lambda: _committed(kafka_broker, group) > 0, 90, "the first commit", log)
        for chunk in chunks:
            # Lands the kill at a different point of the poll/store/commit cycle each time.
            time.sleep(rng.uniform(0.0, 0.3))
            proc.kill()
            proc.wait(30)
            produce(kafka_broker.bootstrap, topic, chunk)
            # Read after producing, so a commit the killed process sent just before dying has landed by now.
            before = _committed(kafka_broker, group)
            proc = _start(env, log)
            recoveries.append(
                _wait(lambda before=before: _committed(kafka_broker, group) > before, SESSION_TIMEOUT_S,
                      "the restarted collector's first commit", log)
            )
        _wait(lambda: _committed(kafka_broker, group) >= len(messages), 120, "the backlog to be consumed", log)
    finally:
        proc.send_signal(signal.SIGTERM)
        exit_code = proc.wait(60)
    assert exit_code == 0, log.read_text(errors="replace")[-4000:]
    print(f"\nrecovery after SIGKILL + restart (restart -> first new commit): "
          f"{', '.join(f'{r:.1f}s' for r in recoveries)} (session timeout {SESSION_TIMEOUT_S}s)")
    # Each restarted member got its partitions back long before the killed one's session could expire.
    assert all(r < SESSION_TIMEOUT_S / 2 for r in recoveries), recoveries

    counted = subprocess.run(
        [sys.executable, "-m", "tests.support.kafka_collector_proc", "counts", store_url],
        cwd=REPO_ROOT, capture_output=True, check=True, timeout=120,
    )
    counts = orjson.loads(counted.stdout)
    assert counts["rows"] == counts["distinct"] == len(events), counts
    assert counts["rejected"] == 0, counts


def test_a_second_collector_with_the_same_instance_id_fences_the_first_which_stops_with_one_line(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = kafka_topic("fenced")
    group = f"{topic}-g"
    base = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")},
        "LLMPULSE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "LLMPULSE_KAFKA_TOPICS": topic,
        "LLMPULSE_KAFKA_GROUP_ID": group,
        "LLMPULSE_KAFKA_DEAD_LETTER_TOPIC": kafka_topic("fenced-dlq"),
        "LLMPULSE_KAFKA_PREPARE_WORKERS": "0",
        "LLMPULSE_KAFKA_BATCH_MAX_SECONDS": "0.1",
        # The mistake under test: two processes configured with one id.
        "LLMPULSE_KAFKA_GROUP_INSTANCE_ID": f"{topic}-same",
    }
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _start({**base, "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'first'}"}, first_log)
    second: subprocess.Popen[bytes] | None = None
    try:
        _wait(lambda: "assigned 1 partition" in first_log.read_text(errors="replace"), 90, "the first member",
              first_log)
        second = _start({**base, "LLMPULSE_CLICKHOUSE_URL": f"chdb://{tmp_path / 'second'}"}, second_log)
        _wait(lambda: "assigned 1 partition" in second_log.read_text(errors="replace"), 90, "the second member",
              second_log)
        # The first member learns of the fencing at its next commit, i.e. with the next message.
        produce(kafka_broker.bootstrap, topic, encode_messages(simulated_events(5, seed=3)))
        _wait(lambda: first.poll() is not None, 60, "the fenced member to stop", first_log)
        assert first.returncode == 2
        output = first_log.read_text(errors="replace")
        assert "Traceback" not in output
        assert f"joined with group.instance.id '{topic}-same' and fenced this one" in " ".join(output.split())
        assert second.poll() is None, "the newer member keeps running"
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)


def test_a_collector_rides_out_a_broker_restart_and_stores_each_event_once(tmp_path: Path) -> None:
    """While the broker is down, kafka-python 3 raises retriable errors out of poll() (no broker for the group
    coordinator's metadata); the collector keeps polling until the broker is back, then goes on committing."""
    events = simulated_events(2_000, seed=31)
    messages = list(encode_messages(events, per_message=4))
    half = len(messages) // 2
    # A broker of its own: the session broker is shared with the other tests.
    with KafkaBroker() as broker:
        topic = broker.create_topic("broker-restart", partitions=3)
        group = f"{topic}-g"
        produce(broker.bootstrap, topic, messages[:half])
        store_url = f"chdb://{tmp_path / 'store'}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")},
            "LLMPULSE_CLICKHOUSE_URL": store_url,
            "LLMPULSE_KAFKA_BOOTSTRAP": broker.bootstrap,
            "LLMPULSE_KAFKA_TOPICS": topic,
            "LLMPULSE_KAFKA_GROUP_ID": group,
            "LLMPULSE_KAFKA_DEAD_LETTER_TOPIC": f"{topic}-dlq",
            "LLMPULSE_KAFKA_BATCH_MAX_SECONDS": "0.2",
        }
        log = tmp_path / "collector.log"
        proc = _start(env, log)
        try:
            _wait(lambda: _committed(broker, group) >= half, 90, "the first half to be committed", log)
            broker.restart()
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            produce(broker.bootstrap, topic, messages[half:])
            recovery = _wait(lambda: _committed(broker, group) >= len(messages), 120,
                             "the second half after the broker restart", log)
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            exit_code = proc.wait(60)
        output = log.read_text(errors="replace")
        assert exit_code == 0, output[-4000:]
        assert "Traceback" not in output, output[-4000:]
        print(f"\nafter the broker restart: all committed {recovery:.1f}s after producing the second half")
    counted = subprocess.run(
        [sys.executable, "-m", "tests.support.kafka_collector_proc", "counts", store_url],
        cwd=REPO_ROOT, capture_output=True, check=True, timeout=120,
    )
    counts = orjson.loads(counted.stdout)
    assert counts["rows"] == counts["distinct"] == len(events), counts
