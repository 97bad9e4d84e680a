"""Batch preparation (decode, validate, price, shape as Arrow) in worker processes, pipelined with polling.

Preparing a batch is pure Python and holds the GIL for ~30-50 µs per event; on the poll thread it capped
one collector at about one core. Worker processes take it off the collector's GIL: the poll thread hands
each batch to the pool as compact tuples and goes back to polling, and the writer takes prepared batches
strictly in submission order (`Preparation.result()` blocks until that batch is ready), so offsets are
still committed in order and only after durability.

Workers are spawned (not forked: the parent may already run chDB and other threads), build their own
validator and decoders from a picklable `PrepareConfig`, ignore SIGINT (Ctrl-C reaches the whole process
group; the collector drains and then stops them), and exit when the collector process dies, even by
SIGKILL, instead of lingering as orphans.

If a worker dies (OOM killer, a SIGTERM sent to the whole process group), the batches it held are prepared
in the collector process instead and a new worker takes its place: nothing is lost or reordered. The
pool is a `collector.worker_pool.WorkerPool`, not a `ProcessPoolExecutor`, because the latter can hang for
good when a worker dies while returning a batch (see there).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa

from collector.kafka.batching import BatchPreparer, Partition, PreparedBatch, RawRecord, merge_batches
from collector.kafka.dead_letter import DeadLetter
from collector.kafka.decoders import default_decoders
from collector.otlp.mapping import OtlpOptions
from collector.pricing import PriceCatalog, PriceOverride
from collector.redaction import DEFAULT_POLICY, RedactionPolicy
from collector.rows import EventBatch, Rejection
from collector.validation import EventValidator, IngestLimits
from collector.worker_pool import WorkerPool

log = logging.getLogger(__name__)

# Messages per chunk a worker prepares at once (see PreparePool).
DEFAULT_CHUNK_MESSAGES = 2_500


@dataclass(frozen=True, slots=True)
class PrepareConfig:
    """What a worker needs to build the same validator and decoders as the collector process."""

    limits: IngestLimits = field(default_factory=IngestLimits)
    price_overrides: tuple[PriceOverride, ...] = ()
    topic_encodings: Mapping[str, str] = field(default_factory=dict)
    otlp_options: OtlpOptions | None = None
    redaction: RedactionPolicy = DEFAULT_POLICY

    def build(self) -> BatchPreparer:
        return BatchPreparer(
            validator=EventValidator(
                prices=PriceCatalog(list(self.price_overrides)), limits=self.limits, redaction=self.redaction
            ),
            decoders=default_decoders(dict(self.topic_encodings), otlp_options=self.otlp_options),
        )


@dataclass(frozen=True, slots=True)
class WireBatch:
    """A PreparedBatch as it crosses the process boundary: rows as Arrow IPC bytes (one memcpy to pickle)."""

    arrow_ipc: bytes
    rejections: list[Rejection]
    dead_letters: list[DeadLetter]
    next_offsets: dict[Partition, int]
    ranges: dict[Partition, tuple[int, int]]
    messages: int
    rejected_by_topic: dict[str, int]
    dedup_token: str
    prepare_seconds: float
    redactions: dict[str, int]


def to_wire(batch: PreparedBatch) -> WireBatch:
    table = batch.rows.to_arrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return WireBatch(
        arrow_ipc=sink.getvalue().to_pybytes(),
        rejections=batch.rejections,
        dead_letters=batch.dead_letters,
        next_offsets=batch.next_offsets,
        ranges=batch.ranges,
        messages=batch.messages,
        rejected_by_topic=batch.rejected_by_topic,
        dedup_token=batch.dedup_token(),
        prepare_seconds=batch.prepare_seconds,
        redactions=batch.redactions,
    )


def from_wire(wire: WireBatch) -> PreparedBatch:
    table = pa.ipc.open_stream(wire.arrow_ipc).read_all()
    return PreparedBatch(
        rows=EventBatch.from_arrow(table),
        rejections=wire.rejections,
        dead_letters=wire.dead_letters,
        next_offsets=wire.next_offsets,
        ranges=wire.ranges,
        messages=wire.messages,
        rejected_by_topic=wire.rejected_by_topic,
        prepare_seconds=wire.prepare_seconds,
        redactions=wire.redactions,
        _token=wire.dedup_token,
    )


# -- worker process side ----------------------------------------------------------------------------

_worker_preparer: BatchPreparer | None = None


def _init_worker(config: PrepareConfig) -> None:
    global _worker_preparer
    _worker_preparer = config.build()
    # The first timezone-aware timestamp pyarrow converts loads its time zone database (~0.4 s): now,
    # rather than in the first batch.
    pa.array([datetime.now(UTC)], type=pa.timestamp("ms", tz="UTC"))
    # What exists now (modules, validators, the price catalog) lives as long as the worker: keep it out of
    # every later collection.
    gc.freeze()


def _prepare_in_worker(records: list[RawRecord]) -> WireBatch:
    assert _worker_preparer is not None, "worker not initialised"
    # A batch allocates hundreds of thousands of objects (decoded JSON, models, rows), nearly all freed by
    # reference counting when it is done; the cyclic collector, triggered every 700 allocations meanwhile,
    # took ~30% of the worker's time re-scanning them. It runs again once the batch is done.
    gc.disable()
    try:
        return to_wire(_worker_preparer.prepare(records))
    finally:
        gc.enable()


# -- collector process side -------------------------------------------------------------------------


class Preparation(Protocol):
    """A batch being prepared; the writer waits for it in submission order."""

    def done(self) -> bool: ...
    def add_done_callback(self, callback: Callable[[], None]) -> None: ...
    def result(self) -> PreparedBatch: ...


class Prepared:
    """A batch prepared in this process (no worker pool, or the pool's fallback)."""

    def __init__(self, batch: PreparedBatch) -> None:
        self._batch = batch

    def done(self) -> bool:
        return True

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        callback()

    def result(self) -> PreparedBatch:
        return self._batch


class PooledPreparation:
    """A batch being prepared by a worker; falls back to `fallback` in this process if the worker fails."""

    def __init__(
        self, future: Future[WireBatch], records: list[RawRecord], fallback: Callable[[list[RawRecord]], PreparedBatch]
    ) -> None:
        self._future = future
        self._records: list[RawRecord] | None = records
        self._fallback = fallback
        self._batch: PreparedBatch | None = None

    def done(self) -> bool:
        return self._batch is not None or self._future.done()

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        self._future.add_done_callback(lambda _: callback())

    def result(self) -> PreparedBatch:
        if self._batch is None:
            try:
                self._batch = from_wire(self._future.result())
            except Exception as exc:
                assert self._records is not None
                log.warning("preparing a batch of %d messages in a worker process failed (%s: %s); "
                            "preparing it in the collector process", len(self._records), type(exc).__name__, exc)
                self._batch = self._fallback(self._records)
            self._records = None  # the batch holds what is needed from here on
        return self._batch


class ChunkedPreparation:
    """A batch prepared as consecutive chunks (possibly by different workers), merged in order when done."""

    def __init__(self, parts: Sequence[Preparation]) -> None:
        self._parts = list(parts)
        self._batch: PreparedBatch | None = None

    def done(self) -> bool:
        return self._batch is not None or all(part.done() for part in self._parts)

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        # Called once per finished part; the caller re-checks done().
        for part in self._parts:
            part.add_done_callback(callback)

    def result(self) -> PreparedBatch:
        if self._batch is None:
            self._batch = merge_batches([part.result() for part in self._parts])
            self._parts = []
        return self._batch


class PreparePool:
    """A fixed pool of worker processes that prepare batches; `start()`/`stop()` bracket its life."""

    def __init__(self, *, processes: int, config: PrepareConfig, chunk_messages: int = DEFAULT_CHUNK_MESSAGES) -> None:
        """`chunk_messages`: a batch is handed to the workers in chunks of at most this many messages and
        merged again for one insert. A worker preparing a 20,000-message batch at once works on ~50 MB of
        Python objects and spends ~10-30% more per event on cache misses than on chunks that stay in its
        CPU caches; chunks also spread one batch over all workers."""
        if chunk_messages < 1:
            raise ValueError("chunk_messages must be at least 1")
        self._workers = WorkerPool(processes=processes, initializer=_init_worker, initargs=(config,),
                                   name="kafka-prepare")
        self.processes = processes
        self.chunk_messages = chunk_messages

    @property
    def running(self) -> bool:
        return self._workers.running

    def start(self, *, wait: bool = False) -> None:
        """Spawn the workers (in parallel with the group join); `wait`: until each is ready (seconds under load)."""
        self._workers.start(wait=wait)

    def stop(self) -> None:
        self._workers.stop()

    def worker_pids(self) -> list[int]:
        """PIDs of the live workers (for diagnostics and benchmarks)."""
        return self._workers.worker_pids()

    @property
    def ready(self) -> bool:
        """At least one worker has started and set itself up (spawning takes seconds, more under load)."""
        return bool(self._workers.worker_pids())

    def submit(self, records: list[RawRecord]) -> Future[WireBatch]:
        """Raises when no worker is alive; the future fails with `WorkerLost` if its worker dies."""
        return self._workers.submit(_prepare_in_worker, records)


class Preparer:
    """Where the collector's batches get prepared: in worker processes when a pool is given, else here."""

    def __init__(
        self, local: BatchPreparer, pool: PreparePool | None = None, *, local_until_ready: bool = False
    ) -> None:
        """`local_until_ready`: until a worker is up (the first seconds after a start, more under load), prepare
        batches here instead of queueing them for it, so a collector restarted after a crash commits again
        sooner."""
        self._local = local
        self.pool = pool
        self._local_until_ready = local_until_ready

    @property
    def workers(self) -> int:
        return self.pool.processes if self.pool is not None else 0

    def prepare_here(self, records: Sequence[RawRecord]) -> PreparedBatch:
        return self._local.prepare(records)

    def submit(self, records: list[RawRecord]) -> Preparation:
        if self.pool is None or not self.pool.running or (self._local_until_ready and not self.pool.ready):
            return Prepared(self._local.prepare(records))
        size = self.pool.chunk_messages
        if len(records) <= size:
            return self._submit_to_pool(records)
        return ChunkedPreparation([self._submit_to_pool(records[i : i + size]) for i in range(0, len(records), size)])

    def _submit_to_pool(self, records: list[RawRecord]) -> Preparation:
        assert self.pool is not None
        try:
            future = self.pool.submit(records)
        except Exception as exc:
            log.warning("the prepare pool refused a batch (%s); preparing it in the collector process", exc)
            return Prepared(self._local.prepare(records))
        return PooledPreparation(future, records, self._local.prepare)
