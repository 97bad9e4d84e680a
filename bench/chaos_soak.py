"""Chaos soak: steady traffic through Kafka while consumers are SIGKILLed and the broker restarts; nothing may be
lost or doubled, and every recovery is timed against the 10 s target.

    .venv/bin/python bench/chaos_soak.py [--rate 200] [--collect-kills 3] [--serve-kills 3] [--seed 1]

One real broker (scripts/kafka.sh on a temporary data dir), one topic with 3 partitions, one producer thread
sending simulated events at a steady rate (idempotent, acks=all; a send that fails, e.g. while the broker is
down, is sent again until acknowledged, so every event reaches the topic at least once). The consumer is a
real process writing to one embedded ClickHouse (chDB) path: first `llmpulse collect`, SIGKILLed at random
moments and restarted in place; then (after a clean SIGTERM hand-over) `llmpulse serve --kafka` (the API
process with its Kafka consumer), SIGKILLed and restarted the same way; in between, the broker is stopped and
started again on the same data dir. Recovery = from the restart (process or broker) to the first new offset
commit of the group. chDB allows one process per path, hence one consumer at a time; the default static
membership (group.instance.id from the host) is what makes a restart in place fast. The baseline, in the
same run: one more SIGKILL + restart of a collector with dynamic membership (LLMPULSE_KAFKA_GROUP_INSTANCE_ID
empty), which has to wait for the dead member's session to expire. If `serve --kafka` cannot start (its log
says why), a second `collect` process with an instance id of its own stands in for it.

At the end the producer stops, the last consumer drains the topic and stops cleanly, and this process opens
the store: rows (without FINAL), distinct event_ids and the produced event_ids must all be equal. Bounded:
about 2-3 minutes with the defaults. The exit status is 1 if anything was lost or doubled.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from kafka import KafkaProducer  # noqa: E402
from kafka.errors import KafkaError  # noqa: E402

from tests.support.kafka_broker import KafkaBroker  # noqa: E402
from tests.support.kafka_collector_proc import simulated_events  # noqa: E402

TARGET_S = 10.0


@dataclass
class Recovery:
    what: str
    seconds: float


@dataclass
class SteadyProducer:
    """Sends `events` at `rate` per second from a thread; re-sends whatever was not acknowledged."""

    bootstrap: str
    topic: str
    events: list[dict[str, object]]
    rate: float
    sent: int = 0
    resent: int = 0
    acked: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _abort: bool = False
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="soak-producer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(300)

    def abort(self) -> None:
        """Stop without waiting for acknowledgements (the soak failed anyway)."""
        self._abort = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    def _new_producer(self) -> KafkaProducer:
        # Not idempotent: a producer id does not survive every broker restart, and a duplicate in the topic
        # is exactly what the collector must absorb anyway (the check is on the store).
        return KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False,
                             linger_ms=5, delivery_timeout_ms=20_000, request_timeout_ms=5_000, max_block_ms=5_000)

    def _run(self) -> None:
        producer = self._new_producer()
        retry: list[dict[str, object]] = []
        started = time.monotonic()
        index = 0
        failing_since: float | None = None
        try:
            while not self._stop.is_set() and index < len(self.events):
                due = int((time.monotonic() - started) * self.rate)
                while index < min(due, len(self.events)):
                    self._send(producer, self.events[index], retry)
                    index += 1
                with self._lock:
                    again, retry[:] = list(retry), []
                if again:
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > 10:
                        # A client that keeps failing after the broker is back: start afresh.
                        with contextlib.suppress(Exception):
                            producer.close(1)
                        producer = self._new_producer()
                        failing_since = None
                else:
                    failing_since = None
                for event in again:
                    self.resent += 1
                    self._send(producer, event, retry)
                time.sleep(0.01)
            self.events = self.events[:index]
            # Everything produced so far must be acknowledged before the soak checks the store.
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and not self._abort:
                with contextlib.suppress(KafkaError):
                    producer.flush(30)
                with self._lock:
                    again, retry[:] = list(retry), []
                if not again and len(self.acked) >= len({str(e["event_id"]) for e in self.events}):
                    break
                for event in again:
                    self.resent += 1
                    self._send(producer, event, retry)
                time.sleep(0.2)
        finally:
            with contextlib.suppress(KafkaError):
                producer.close(5 if self._abort else 30)

    def _send(self, producer: KafkaProducer, event: dict[str, object], retry: list[dict[str, object]]) -> None:
        event_id = str(event["event_id"])

        def ok(_meta: object) -> None:
            with self._lock:
                self.acked.add(event_id)

        def failed(_exc: object) -> None:
            with self._lock:
                retry.append(event)

        self.sent += 1
        try:
            producer.send(self.topic, value=orjson.dumps(event)).add_callback(ok).add_errback(failed)
        except KafkaError:
            with self._lock:
                retry.append(event)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Consumer:
    """`llmpulse collect` or `llmpulse serve --kafka` as a child process, logging to one file."""

    def __init__(self, kind: str, env: dict[str, str], log: Path) -> None:
        self.kind = kind
        self.env = env
        self.log = log
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["collect"] if self.kind == "collect" else [
            "serve", "--kafka", "--no-analyzers", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "llmpulse.cli", *args], cwd=ROOT, env=self.env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(90)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _committed(broker: KafkaBroker, group: str) -> int:
    try:
        offsets = broker.admin().list_group_offsets({group: None}).get(group, {})
    except Exception:  # the broker is restarting, or the admin client lost it: no answer, not zero
        with_reset(broker)
        return -1
    return sum(meta.offset for meta in offsets.values() if meta.offset >= 0)


def with_reset(broker: KafkaBroker) -> None:
    # A fresh admin client after a broker restart (the old one may hold a dead connection).
    broker.reset_admin()


def _wait_commit_after(broker: KafkaBroker, group: str, before: int, timeout: float, consumer: Consumer) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _committed(broker, group) > before:
            return time.monotonic() - started
        if not consumer.alive():
            raise SystemExit(f"the {consumer.kind} process exited; log: {consumer.log}")
        time.sleep(0.05)
    raise SystemExit(f"no commit within {timeout:.0f}s after the restart; log: {consumer.log}")


def _end_offsets(broker: KafkaBroker, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="events per second")
    parser.add_argument("--collect-kills", type=int, default=3)
    parser.add_argument("--serve-kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="hard bound on the whole soak")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    soak_started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="llmpulse-soak-"))
    print(f"chaos soak: rate {args.rate:.0f} events/s, {args.collect_kills} collect kills, "
          f"{args.serve_kills} serve kills, 1 broker restart, 1 baseline kill with dynamic membership; "
          f"load {os.getloadavg()[0]:.2f}; logs in {work}")

    broker = KafkaBroker(keep_data=False)
    broker.start()
    recoveries: list[Recovery] = []
    producer: SteadyProducer | None = None
    finished = False
    consumer: Consumer | None = None
    try:
        topic = f"soak-{uuid.uuid4().hex[:8]}"
        broker.create_topic(topic, partitions=3)
        group = f"{topic}-g"
        store_url = f"chdb://{work / 'store'}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LLMPULSE_")},
            "LLMPULSE_CLICKHOUSE_URL": store_url,
            "LLMPULSE_KAFKA_BOOTSTRAP": broker.bootstrap,
            "LLMPULSE_KAFKA_TOPICS": topic,
            "LLMPULSE_KAFKA_GROUP_ID": group,
            "LLMPULSE_KAFKA_DEAD_LETTER_TOPIC": f"{topic}-dlq",
            "LLMPULSE_KAFKA_BATCH_MAX_SECONDS": "0.5",
            "LLMPULSE_AUTH_DISABLED": "true",
            "LLMPULSE_ANALYZERS_ENABLED": "false",
        }
        # Enough events for the whole soak at the rate; the producer stops when told.
        events = simulated_events(int(args.rate * 400), seed=args.seed)
        producer = SteadyProducer(broker.bootstrap, topic, events, args.rate)
        producer.start()

        def chaos_kill(consumer: Consumer, label: str) -> None:
            time.sleep(rng.uniform(2.0, 6.0))
            consumer.kill()
            before = _committed(broker, group)
            consumer.start()
            seconds = _wait_commit_after(broker, group, before, 120, consumer)
            recoveries.append(Recovery(label, seconds))
            print(f"  SIGKILL {label}: first new commit {seconds:.1f}s after the restart")

        consumer = Consumer("collect", env, work / "collect.log")
        consumer.start()
        _wait_commit_after(broker, group, 0, 120, consumer)
        for i in range(args.collect_kills):
            chaos_kill(consumer, f"collect #{i + 1}")

        # Hand over to the API process: a clean stop leaves the group (static members otherwise do not).
        time.sleep(rng.uniform(1.0, 3.0))
        code = consumer.terminate()
        print(f"  SIGTERM collect: exit {code}")
        consumer = Consumer("serve", env, work / "serve.log")
        before = _committed(broker, group)
        consumer.start()
        try:
            seconds = _wait_commit_after(broker, group, before, 120, consumer)
        except SystemExit as exc:
            # The API process could not start (see its log): the second consumer kind becomes a second
            # collector with an id of its own, so the soak still exercises a hand-over between members.
            print(f"  serve --kafka did not start ({exc}); continuing with a second collect process")
            consumer = Consumer("collect", {**env, "LLMPULSE_KAFKA_GROUP_INSTANCE_ID": "llmpulse-soak-second"},
                                work / "collect-2.log")
            consumer.start()
            seconds = _wait_commit_after(broker, group, before, 120, consumer)
        label = "serve" if consumer.kind == "serve" else "collect-2"
        print(f"  {label} took over: first new commit {seconds:.1f}s after its start")

        half = args.serve_kills // 2
        for i in range(half):
            chaos_kill(consumer, f"{label} #{i + 1}")

        time.sleep(rng.uniform(2.0, 5.0))
        before = _committed(broker, group)
        stopped = time.monotonic()
        broker.restart()
        with_reset(broker)
        seconds = _wait_commit_after(broker, group, max(before, 0), 180, consumer)
        recoveries.append(Recovery("broker restart", seconds))
        print(f"  broker restart ({time.monotonic() - stopped - seconds:.1f}s down): "
              f"first new commit {seconds:.1f}s after it was up again")

        for i in range(half, args.serve_kills):
            chaos_kill(consumer, f"{label} #{i + 1}")

        # Baseline, same run: one SIGKILL + restart with dynamic membership (no group.instance.id), which is
        # what the collector did before static membership: the group waits for the dead member's session.
        time.sleep(1.0)
        consumer.terminate()
        consumer = Consumer("collect", {**env, "LLMPULSE_KAFKA_GROUP_INSTANCE_ID": ""}, work / "dynamic.log")
        before = _committed(broker, group)
        consumer.start()
        _wait_commit_after(broker, group, before, 120, consumer)
        label = "collect (dynamic)"
        chaos_kill(consumer, "baseline: collect with dynamic membership")

        time.sleep(3.0)
        producer.stop()
        produced_ids = {str(e["event_id"]) for e in producer.events}
        target = _end_offsets(broker, topic)
        deadline = time.monotonic() + 180
        while _committed(broker, group) < target:
            if time.monotonic() > deadline or time.monotonic() - soak_started > args.max_seconds:
                raise SystemExit(f"the consumer did not catch up (committed {_committed(broker, group)} of "
                                 f"{target}); log: {consumer.log}")
            time.sleep(0.2)
        code = consumer.terminate()
        print(f"  drained {target} messages; SIGTERM {label}: exit {code}")
        finished = True
    finally:
        if not finished:
            if producer is not None:
                producer.abort()
            if consumer is not None and consumer.alive():
                consumer.kill()
        with_reset(broker)
        broker.stop()

    from llmpulse.clickhouse import connect

    client = connect(store_url)
    rows, distinct = client.query("SELECT count(), uniqExact(event_id) FROM events").result_rows[0]
    stored_ids = {row[0] for row in client.query("SELECT DISTINCT event_id FROM events").result_rows}
    lost = len(produced_ids - stored_ids)
    extra = len(stored_ids - produced_ids)
    doubled = int(rows) - int(distinct)
    elapsed = time.monotonic() - soak_started
    kills = [r.seconds for r in recoveries if r.what != "broker restart" and not r.what.startswith("baseline")]
    baseline = [r.seconds for r in recoveries if r.what.startswith("baseline")]
    print()
    print(f"events produced {len(produced_ids)} (sends {producer.sent}, re-sent after a failure {producer.resent}); "
          f"stored rows {rows}, distinct {distinct}; lost {lost}, doubled {doubled}, unexpected {extra}")
    print(f"recovery after SIGKILL + restart ({len(kills)} kills): median {statistics.median(kills):.1f}s, "
          f"max {max(kills):.1f}s; target {TARGET_S:.0f}s -> max/target = {max(kills) / TARGET_S:.2f}")
    print(f"baseline, dynamic membership (session timeout 20s): {baseline[0]:.1f}s -> static/dynamic = "
          f"{statistics.median(kills) / baseline[0]:.2f} (median static recovery over the baseline)")
    broker_recovery = [r.seconds for r in recoveries if r.what == "broker restart"]
    print(f"recovery after the broker restart: {broker_recovery[0]:.1f}s "
          f"(target {TARGET_S:.0f}s -> {broker_recovery[0] / TARGET_S:.2f})")
    print(f"soak took {elapsed:.0f}s; load {os.getloadavg()[0]:.2f}")
    ok = lost == 0 and doubled == 0 and extra == 0 and int(distinct) == len(produced_ids)
    print("RESULT: " + ("nothing lost, nothing doubled" if ok else "FAILED: events lost or doubled"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
