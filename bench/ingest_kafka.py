"""Kafka ingest throughput, end to end, next to its two bounds, in one run.

    .venv/bin/python bench/ingest_kafka.py [--events 100000] [--per-message 1 100] [--prepare-workers 0 2]
                                           [--repeat 3] [--bootstrap HOST:PORT [--broker-pid PID]]

A real broker (scripts/kafka.sh, unless --bootstrap is given) runs on this machine. Each topic is filled
with simulated traffic first (one event per message, and/or JSON arrays of N events per message); then,
per repetition:

  (b) a raw clickhouse-connect insert (`insert_arrow` with the store's insert settings) of the same rows,
      validated beforehand, in 20,000-row chunks into a fresh embedded database: the ceiling of the store;

and per topic:

  (a) a bare kafka-python consume loop reads every message (no decoding): the ceiling of the client;
  (c) `KafkaCollector` reads the same topic into a fresh embedded database: poll, decode, validate,
      price, insert (with the event_id lookup), commit; timed from the first message consumed until every
      event is stored. Once per --prepare-workers value: 0 prepares batches on the poll thread, N in N
      worker processes (the default of `llmpulse collect` is 2).

Both consumers check record CRCs the way the collector does by default (when the crc32c C extension is
installed, which is a dependency). The machine is shared, so the load average is printed at the start and
the end, every rate comes with its ratio to the baselines of the same repetition, and with --repeat the
summary shows medians. Last, CPU seconds per process during the collector runs (collector process, prepare
workers, broker JVM) and a cProfile of the collector's poll and writer threads show where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from kafka import KafkaConsumer  # noqa: E402

from collector.kafka.consumer import KafkaCollector, KafkaConsumerConfig, build_consumer, crc32c_accelerated  # noqa: E402
from collector.kafka.dead_letter import build_dead_letter_producer  # noqa: E402
from collector.kafka.decoders import default_decoders  # noqa: E402
from collector.kafka.metrics import KafkaMetrics  # noqa: E402
from collector.kafka.prepare_pool import DEFAULT_CHUNK_MESSAGES  # noqa: E402
from collector.pricing import PriceCatalog  # noqa: E402
from collector.rows import EventBatch  # noqa: E402
from collector.store import EVENTS_INSERT_SETTINGS, ClickHouseEventStore  # noqa: E402
from collector.validation import EventValidator, RawItem  # noqa: E402
from llmpulse.clickhouse import connect  # noqa: E402
from llmpulse.migrate import Retention, migrate  # noqa: E402
from llmpulse.simulate import SimulationConfig, generate, parse_duration  # noqa: E402
from tests.support.kafka_collector_proc import encode_messages, produce  # noqa: E402

RETENTION = Retention(events_days=3650, text_days=3650, rejected_days=3650)
RAW_INSERT_CHUNK = 20_000
_TICKS = os.sysconf("SC_CLK_TCK")


def simulated(n: int) -> list[dict[str, Any]]:
    config = SimulationConfig(start=datetime(2026, 11, 16, tzinfo=UTC), duration=parse_duration("14d"), seed=21,
                              incidents=[])
    events: list[dict[str, Any]] = []
    for event in generate(config):
        events.append(event)
        if len(events) >= n:
            break
    return events


def cpu_seconds(pid: int | None, tid: int | None = None) -> float:
    """User + system CPU so far of a process (all its threads), or of one of its threads; 0 if unreadable."""
    if pid is None:
        return 0.0
    path = f"/proc/{pid}/task/{tid}/stat" if tid is not None else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def thread_cpu_by_name(pid: int, skip: set[int]) -> dict[str, float]:
    """CPU seconds so far of a process's threads grouped by thread name (chDB names its threads), minus `skip`."""
    by_name: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        if int(task.name) in skip:
            continue
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        # Numbered pools ("QueryPipelineEx3") are one pool.
        name = name.rstrip("0123456789") or name
        by_name[name] = by_name.get(name, 0.0) + cpu_seconds(pid, int(task.name))
    return by_name


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def bare_consume(bootstrap: str, topic: str, messages: int) -> tuple[float, float]:
    """(seconds, CPU seconds of this process) to read `messages`."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:8]}", enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
        check_crcs=crc32c_accelerated(),
    )
    try:
        seen = 0
        started: float | None = None
        while seen < messages:
            polled = consumer.poll(timeout_ms=500, max_records=5_000)
            if polled and started is None:
                started = time.perf_counter()  # after the group join, as for the collector's steady state
                cpu = time.process_time()
            seen += sum(len(records) for records in polled.values())
        assert started is not None
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        consumer.close(autocommit=False)


def raw_insert(rows: EventBatch, chunk: int = RAW_INSERT_CHUNK) -> tuple[float, float]:
    """(seconds, CPU seconds of this process, chDB's threads included) to insert `rows`."""
    client = connect(CHDB_URL, database=f"raw_{uuid.uuid4().hex[:8]}")
    migrate(client, RETENTION)
    table = rows.to_arrow()
    started, cpu = time.perf_counter(), time.process_time()
    for offset in range(0, table.num_rows, chunk):
        # The store's insert settings (no event_id lookup): the best the store could do with these rows.
        client.insert_arrow("events", table.slice(offset, chunk), settings=EVENTS_INSERT_SETTINGS)
    return time.perf_counter() - started, time.process_time() - cpu


@dataclass
class CollectorRun:
    seconds: float
    events_per_insert: float
    # CPU seconds while the run was timed: the collector's poll thread, its writer thread, its other
    # threads (chDB's engine threads, kafka-python's IO thread), the prepare workers, the broker JVM.
    cpu: dict[str, float]
    profile: str
    # "other collector threads" by thread name.
    other_threads: dict[str, float] = field(default_factory=dict)


def collector_run(
    bootstrap: str, topic: str, events: int, validator: EventValidator, *, workers: int, broker_pid: int | None,
    profile: bool, chunk: int = DEFAULT_CHUNK_MESSAGES,
) -> CollectorRun:
    client = connect(CHDB_URL, database=f"e2e_{uuid.uuid4().hex[:8]}")
    migrate(client, RETENTION)
    metrics = KafkaMetrics()
    pool = None
    knobs: dict[str, Any] = {}
    if workers:
        from collector.kafka.prepare_pool import PrepareConfig, PreparePool

        pool = PreparePool(processes=workers, config=PrepareConfig(), chunk_messages=chunk)
        pool.start(wait=True)  # started here so that its start-up is not counted, nor its CPU
        knobs["prepare_pool"] = pool
    collector = KafkaCollector(
        build_consumer(KafkaConsumerConfig(bootstrap=bootstrap, group_id=f"e2e-{uuid.uuid4().hex[:8]}")),
        topics=[topic],
        validator=validator,
        sink=ClickHouseEventStore(client),
        dead_letters=build_dead_letter_producer(bootstrap, f"{topic}-dlq", client_id="bench",
                                                max_message_bytes=1024 * 1024),
        decoders=default_decoders(),
        metrics=metrics,
        **knobs,
    )
    profilers: list[tuple[str, cProfile.Profile]] = []
    if profile:
        collector.run = _profiled(collector.run, "poll thread", profilers)  # type: ignore[method-assign]
        writer = collector._writer
        writer._run = _profiled(writer._run, "writer thread", profilers)  # type: ignore[method-assign]

    def stored() -> float:
        return metrics.registry.get_sample_value("llmpulse_kafka_events_stored_total") or 0.0

    def consumed() -> float:
        return metrics.registry.get_sample_value("llmpulse_kafka_messages_consumed_total", {"topic": topic}) or 0.0

    worker_pids = pool.worker_pids() if pool is not None else []
    me = os.getpid()

    def cpu_now() -> dict[str, float]:
        assert collector._thread is not None and collector._writer._thread is not None
        poll = cpu_seconds(me, collector._thread.native_id)
        write = cpu_seconds(me, collector._writer._thread.native_id)
        return {
            "poll thread": poll,
            "writer thread": write,
            "other collector threads": cpu_seconds(me) - poll - write,
            "prepare workers": sum(cpu_seconds(pid) for pid in worker_pids),
            "broker": cpu_seconds(broker_pid),
        }

    try:
        collector.start()
        joined_by = time.monotonic() + 120
        while consumed() == 0:  # the clock starts with the first message, after the group join
            if time.monotonic() > joined_by:
                # Seen once on a loaded machine: kafka-python's poll spinning on a join that never ends.
                raise RuntimeError("the collector consumed nothing within 120 s (consumer group join stuck?)")
            time.sleep(0.002)
        started = time.perf_counter()
        cpu = cpu_now()
        assert collector._thread is not None and collector._writer._thread is not None
        named_threads = {t for t in (collector._thread.native_id, collector._writer._thread.native_id) if t is not None}
        others = thread_cpu_by_name(me, named_threads)
        while stored() < events:
            time.sleep(0.02)  # reading the registry costs GIL time the collector's threads would miss
        elapsed = time.perf_counter() - started
        cpu_end = cpu_now()
        others_end = thread_cpu_by_name(me, named_threads)
        collector.stop()
    finally:
        if pool is not None:
            pool.stop()
    inserts = metrics.registry.get_sample_value("llmpulse_kafka_batch_events_count") or 1.0
    report = ""
    for name, profiler in profilers:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(14)
        report += f"\n--- cProfile, {name} (top 14 by own time) ---\n" + _trim(out.getvalue())
    return CollectorRun(
        seconds=elapsed, events_per_insert=stored() / inserts, cpu={k: cpu_end[k] - cpu[k] for k in cpu},
        profile=report, other_threads={k: v - others.get(k, 0.0) for k, v in others_end.items()},
    )


def _profiled(fn: Callable[[], None], name: str, sink: list[tuple[str, cProfile.Profile]]) -> Callable[[], None]:
    profiler = cProfile.Profile()
    sink.append((name, profiler))

    def run() -> None:
        profiler.enable()
        try:
            fn()
        finally:
            profiler.disable()

    return run


def _trim(text: str) -> str:
    lines = [line.replace(str(ROOT) + "/", "").replace(sys.prefix + "/lib/python3.11/site-packages/", "")
             for line in text.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    head = [line for line in lines[:start] if "function calls" in line]
    return "\n".join(head + lines[start:]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-message", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--prepare-workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bootstrap", help="an existing broker; default: start one with scripts/kafka.sh")
    parser.add_argument("--broker-pid", type=int, help="with --bootstrap: the broker's PID, for its CPU time")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--prepare-chunk", type=int, nargs="+", default=[DEFAULT_CHUNK_MESSAGES],
                        help="messages per chunk handed to a prepare worker; several values: compared in each run")
    args = parser.parse_args()
    global CHDB_URL
    data_dir = tempfile.mkdtemp(prefix="llmpulse-bench-kafka-")
    CHDB_URL = f"chdb://{data_dir}"

    broker = None
    bootstrap = args.bootstrap
    broker_pid = args.broker_pid
    if bootstrap is None:
        from tests.support.kafka_broker import KafkaBroker

        broker = KafkaBroker()
        bootstrap = broker.start()
        assert broker.data_dir is not None
        broker_pid = int((broker.data_dir / "kafka.pid").read_text().strip())
    try:
        _run(bootstrap, broker_pid, args)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)  # ~0.5 GB of embedded store per run


def _run(bootstrap: str, broker_pid: int | None, args: argparse.Namespace) -> None:
    from kafka import KafkaAdminClient

    n_events: int = args.events
    events = simulated(n_events)
    size = sum(len(orjson.dumps(e)) for e in events[:2_000]) / 2_000
    print(f"{n_events:,} simulated events, {size:,.0f} bytes each on average; broker on this machine "
          f"({os.cpu_count()} cores); CRC checks "
          f"{'on (crc32c C extension)' if crc32c_accelerated() else 'off (no crc32c C extension)'}")
    print(f"load average at the start: {load_average()}")
    validator = EventValidator(prices=PriceCatalog())

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    topics: dict[int, tuple[str, int]] = {}
    for n in args.per_message:
        topic = f"bench-{n}-{uuid.uuid4().hex[:8]}"
        admin.create_topics({topic: {"num_partitions": 4, "replication_factor": 1}})
        started = time.perf_counter()
        count = produce(bootstrap, topic, encode_messages(events, per_message=n))
        print(f"pre-filled {topic}: {count:,} messages ({n} event(s) each) in {time.perf_counter() - started:.1f}s")
        topics[n] = (topic, count)
    admin.close()

    items = [RawItem(i, e, None) for i, e in enumerate(events)]
    rows = validator.validate(items, source="kafka", source_ref="bench").batch
    # The benchmark's own data (100,000 events as dicts, their rows) would otherwise be re-scanned by every
    # full garbage collection of the collector running in this process; `llmpulse collect` holds no such heap.
    gc.freeze()

    raw_rates: list[float] = []
    bare_rates: dict[int, list[float]] = {n: [] for n in topics}
    e2e: dict[tuple[int, int, int], list[tuple[float, CollectorRun]]] = {}
    configs = [(workers, chunk) for workers in args.prepare_workers
               for chunk in (args.prepare_chunk if workers else [0])]
    us = 1e6 / n_events
    for repetition in range(1, args.repeat + 1):
        print(f"\n== repetition {repetition}/{args.repeat} (load average {load_average()})")
        raw_s, raw_cpu = raw_insert(rows)
        raw_rate = n_events / raw_s
        raw_rates.append(raw_rate)
        print(f"(b) raw insert_arrow of the validated rows ({RAW_INSERT_CHUNK:,}-row chunks): "
              f"{raw_s:6.2f}s {raw_rate:>10,.0f} events/s; CPU {raw_cpu * us:.0f} µs/event")
        for n, (topic, count) in topics.items():
            bare_s, bare_cpu = bare_consume(bootstrap, topic, count)
            bare_rate = n_events / bare_s
            bare_rates[n].append(bare_rate)
            print(f"{n} event(s) per message ({count:,} messages):")
            print(f"  (a) bare kafka-python consume loop: {bare_s:6.2f}s {bare_rate:>10,.0f} events/s "
                  f"({count / bare_s:,.0f} messages/s); CPU {bare_cpu * us:.1f} µs/event")
            for workers, chunk in configs:
                run = collector_run(bootstrap, topic, n_events, validator, workers=workers, broker_pid=broker_pid,
                                    profile=False, chunk=chunk)
                rate = n_events / run.seconds
                e2e.setdefault((n, workers, chunk), []).append((rate, run))
                cpu = ", ".join(f"{name} {seconds * us:.0f}" for name, seconds in run.cpu.items())
                print(f"  (c) collector, {_workers(workers, chunk)}: {run.seconds:6.2f}s {rate:>10,.0f} events/s "
                      f"= {rate / bare_rate:.2f} x (a), {rate / raw_rate:.2f} x (b); "
                      f"{run.events_per_insert:,.0f} events per insert")
                print(f"      CPU µs/event: {cpu}; total {sum(run.cpu.values()) * us:.0f}")
                top = sorted(run.other_threads.items(), key=lambda item: -item[1])[:6]
                print("      other collector threads by name, µs/event: "
                      + ", ".join(f"{name} {seconds * us:.1f}" for name, seconds in top if seconds * us >= 0.1))
    print(f"\nload average at the end: {load_average()}")

    summary = "median of" if args.repeat > 1 else "from"
    print(f"\nSummary ({summary} {args.repeat} repetition(s)); (b) raw insert {statistics.median(raw_rates):,.0f} "
          "events/s")
    print("| events/message | (a) bare consume, events/s | prepare | (c) collector, events/s | "
          "(c)/(a) | (c)/(b) | CPU µs/event, all processes |\n|---:|---:|---|---:|---:|---:|---:|")
    for (n, workers, chunk), runs in e2e.items():
        rates = [rate for rate, _ in runs]
        ratios_a = [rate / bare for rate, bare in zip(rates, bare_rates[n], strict=True)]
        ratios_b = [rate / raw for rate, raw in zip(rates, raw_rates, strict=True)]
        cpu_us = statistics.median(sum(run.cpu.values()) * us for _, run in runs)
        print(f"| {n} | {statistics.median(bare_rates[n]):,.0f} | {_workers(workers, chunk)} | "
              f"{statistics.median(rates):,.0f} | "
              f"{statistics.median(ratios_a):.2f} | {statistics.median(ratios_b):.2f} | {cpu_us:.0f} |")

    if not args.no_profile:
        workers, chunk = configs[-1]
        for n, (topic, _count) in topics.items():
            run = collector_run(bootstrap, topic, n_events, validator, workers=workers, broker_pid=broker_pid,
                                profile=True, chunk=chunk)
            print(f"\nProfile of the collector process, an extra run not counted above ({n} event(s) per message, "
                  f"{_workers(workers, chunk)}, {n_events / run.seconds:,.0f} events/s with profiling on):"
                  f"{run.profile}")


def _workers(workers: int, chunk: int) -> str:
    return f"{workers} prepare workers, {chunk:,}-message chunks" if workers else "prepare on the poll thread"


# Set in main(): spawned prepare workers import this module too, and must not make directories.
CHDB_URL = ""

if __name__ == "__main__":
    main()
