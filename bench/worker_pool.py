"""What the crash-safe worker pool costs: collector.worker_pool.WorkerPool against ProcessPoolExecutor.

Both run the Kafka collector's real prepare task (`_prepare_in_worker`: decode, validate, price, Arrow
IPC) on the same simulated one-event messages, in the collector's chunk size, with the same number of
spawned workers. Repetitions alternate between the two so that the VM's drift hits both alike. Printed:
wall time, events/s, and CPU per event in this process (pickling tasks, unpickling results, the pool's
threads) and in the workers, with WorkerPool's ratio to ProcessPoolExecutor.

    .venv/bin/python bench/worker_pool.py --events 200000 --repeat 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_kafka import cpu_seconds, load_average, simulated
from collector.kafka.batching import RawRecord
from collector.kafka.prepare_pool import (
    DEFAULT_CHUNK_MESSAGES,
    PrepareConfig,
    WireBatch,
    _init_worker,
    _prepare_in_worker,
)
from collector.worker_pool import WorkerPool
from tests.support.kafka_collector_proc import encode_messages

Submit = Callable[[list[RawRecord]], "Future[WireBatch]"]


@dataclass(frozen=True)
class Run:
    seconds: float
    parent_cpu: float
    worker_cpu: float


@contextmanager
def worker_pool(processes: int, config: PrepareConfig) -> Iterator[tuple[Submit, list[int]]]:
    pool = WorkerPool(processes=processes, initializer=_init_worker, initargs=(config,), name="bench")
    pool.start(wait=True)
    try:
        yield (lambda chunk: pool.submit(_prepare_in_worker, chunk)), pool.worker_pids()
    finally:
        pool.stop()


@contextmanager
def process_pool_executor(processes: int, config: PrepareConfig) -> Iterator[tuple[Submit, list[int]]]:
    executor = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=(config,))
    try:
        # Workers start on first use; wait until all have run the initializer, as WorkerPool(wait=True) does.
        for future in [executor.submit(time.sleep, 0.5) for _ in range(processes)]:
            future.result()
        yield (lambda chunk: executor.submit(_prepare_in_worker, chunk)), list(executor._processes)
    finally:
        executor.shutdown()


POOLS = {"ProcessPoolExecutor": process_pool_executor, "WorkerPool": worker_pool}


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_pass(submit: Submit, chunks: list[list[RawRecord]], pids: list[int]) -> Run:
    workers_before = sum(cpu_seconds(pid) for pid in pids)
    cpu_before, start = process_cpu(), time.perf_counter()
    futures = [submit(chunk) for chunk in chunks]
    for future in futures:  # in submission order, as the collector's writer takes them
        future.result()
    seconds = time.perf_counter() - start
    return Run(seconds, process_cpu() - cpu_before, sum(cpu_seconds(pid) for pid in pids) - workers_before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK_MESSAGES)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    values = list(encode_messages(simulated(args.events)))
    records: list[RawRecord] = [("bench", 0, offset, 0, None, value, ()) for offset, value in enumerate(values)]
    chunks = [records[i : i + args.chunk] for i in range(0, len(records), args.chunk)]
    config = PrepareConfig()
    print(f"{len(records):,} one-event messages ({sum(map(len, values)) / len(values):,.0f} bytes each on average) "
          f"in {len(chunks)} chunks of {args.chunk:,}; {args.processes} spawned workers; "
          f"{os.cpu_count()} cores; load average at the start: {load_average()}")

    runs: dict[str, list[Run]] = {name: [] for name in POOLS}
    for repetition in range(args.repeat):
        order = list(POOLS) if repetition % 2 == 0 else list(reversed(POOLS))
        for name in order:
            with POOLS[name](args.processes, config) as (submit, pids):
                one_pass(submit, chunks[: args.processes * 2], pids)  # warm-up: first imports, caches
                run = one_pass(submit, chunks, pids)
            runs[name].append(run)
            n = len(records)
            print(f"  {repetition + 1}/{args.repeat} {name:<19} {run.seconds:6.2f}s {n / run.seconds:9,.0f} events/s; "
                  f"CPU µs/event: this process {run.parent_cpu / n * 1e6:4.1f}, "
                  f"workers {run.worker_cpu / n * 1e6:4.1f}")

    print(f"load average at the end: {load_average()}\n")
    print(f"Median of {args.repeat}:")
    print("| pool | events/s | CPU µs/event, this process | CPU µs/event, workers |")
    print("|---|---:|---:|---:|")
    medians: dict[str, tuple[float, float, float]] = {}
    for name, pool_runs in runs.items():
        n = len(records)
        medians[name] = (
            statistics.median(n / r.seconds for r in pool_runs),
            statistics.median(r.parent_cpu / n * 1e6 for r in pool_runs),
            statistics.median(r.worker_cpu / n * 1e6 for r in pool_runs),
        )
        rate, parent, workers = medians[name]
        print(f"| {name} | {rate:,.0f} | {parent:.1f} | {workers:.1f} |")
    new, old = medians["WorkerPool"], medians["ProcessPoolExecutor"]
    print(f"\nWorkerPool / ProcessPoolExecutor: events/s {new[0] / old[0]:.2f} x, CPU in this process "
          f"{new[1] / old[1]:.2f} x, CPU in the workers {new[2] / old[2]:.2f} x")


if __name__ == "__main__":
    main()
