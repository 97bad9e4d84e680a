"""`llmpulse collect`: a Kafka consumer-group member that stores trace events in ClickHouse.

Guarantees, and how they are kept:

- Nothing is lost. Auto-commit is off; a partition's offset is committed only after every message before it
  is durable: its events inserted, its rejections stored, its dead-letter copy acknowledged. A crash at
  any point re-delivers from the last commit.
- Nothing is counted twice. A re-delivered batch is dropped by ClickHouse's insert deduplication when it
  has the same offsets (the insert token is derived from the batch's per-partition offset ranges), and
  otherwise by the store, which skips event_ids it already holds.
- The group keeps its members. Inserts run on a writer thread, so the poll thread keeps calling poll()
  (well within max.poll.interval.ms) while ClickHouse is slow or down; it pauses fetching meanwhile and
  resumes when the writer catches up.
- A rebalance loses nothing and re-delivers nothing that was stored. kafka-python 3 runs rebalance
  listeners on its IO thread, where a blocking commit() raises "Cannot block on net.run() from the IO
  thread itself". The listener is therefore an AsyncConsumerRebalanceListener: it hands the flush to a
  worker thread, awaits it without blocking the IO loop (heartbeats keep flowing), and then awaits
  commit_async() while this member still owns the partitions.

Threads: the poll thread (`run`), which alone polls, hands batches to be prepared and commits; the
writer thread; and, during a revocation only, one worker thread, while the poll thread is blocked inside
poll(). With a `PreparePool` (the default of `llmpulse collect`), batches are decoded, validated and priced
in worker processes while the poll thread goes on polling; the writer still takes them strictly in the
order they were handed over (see collector/kafka/prepare_pool.py), so everything above holds unchanged.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import FencedInstanceIdError, RetriableError
from kafka.future import Future as KafkaFuture
from kafka.structs import OffsetAndMetadata

from collector.kafka.batching import (
    BatchPreparer,
    Partition,
    PendingRecords,
    PreparedBatch,
    compact_records,
    merge_batches,
)
from collector.kafka.dead_letter import DeadLetterSink
from collector.kafka.decoders import TopicDecoders
from collector.kafka.metrics import KafkaMetrics
from collector.kafka.prepare_pool import Preparation, Prepared, PreparePool, Preparer
from collector.metrics import count_redactions, redactions_counter
from collector.store import EventSink
from collector.validation import EventValidator

log = logging.getLogger(__name__)

T = TypeVar("T")


class ConsumerLike(Protocol):
    """The part of kafka-python's KafkaConsumer the collector uses (a seam for tests and other clients)."""

    def subscribe(self, topics: Sequence[str] = (), pattern: str | None = None, listener: Any = None) -> None: ...
    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> Mapping[Any, list[Any]]: ...
    def pause(self, *partitions: Any) -> None: ...
    def resume(self, *partitions: Any) -> None: ...
    def paused(self) -> set[Any]: ...
    def assignment(self) -> set[Any]: ...
    def seek(self, partition: Any, offset: int) -> None: ...
    def commit(self, offsets: Any = None, timeout_ms: int | None = None) -> None: ...
    def commit_async(self, offsets: Any = None, callback: Any = None) -> Any: ...
    def highwater(self, partition: Any) -> int | None: ...
    def group_metadata(self) -> Any: ...
    def close(self, autocommit: bool = True, timeout_ms: int | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class KafkaConsumerConfig:
    """How to reach the brokers and how to behave in the group; turned into a KafkaConsumer by `build_consumer`."""

    bootstrap: str
    group_id: str
    client_id: str = "llmpulse-collector"
    group_instance_id: str | None = None
    auto_offset_reset: str = "earliest"
    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    max_partition_fetch_bytes: int = 8 * 1024 * 1024
    fetch_max_bytes: int = 64 * 1024 * 1024
    # A member that joins before a topic's metadata is visible gets no partitions until the next refresh;
    # kafka-python's default of 5 minutes would leave a new topic (or new partitions) unconsumed that long.
    metadata_max_age_ms: int = 30_000
    # None: check record CRCs only when the `crc32c` C extension is installed. kafka-python's pure-Python
    # CRC-32C costs ~10x the rest of consuming; brokers validate CRCs on produce and TCP checksums cover
    # the wire, so the check only guards against corruption at rest on the broker.
    check_crcs: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def crc32c_accelerated() -> bool:
    return importlib.util.find_spec("crc32c") is not None


def build_consumer(config: KafkaConsumerConfig) -> KafkaConsumer:
    check_crcs = crc32c_accelerated() if config.check_crcs is None else config.check_crcs
    return KafkaConsumer(
        bootstrap_servers=config.bootstrap,
        group_id=config.group_id,
        client_id=config.client_id,
        group_instance_id=config.group_instance_id,
        enable_auto_commit=False,
        auto_offset_reset=config.auto_offset_reset,
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        max_poll_interval_ms=config.max_poll_interval_ms,
        max_partition_fetch_bytes=config.max_partition_fetch_bytes,
        fetch_max_bytes=config.fetch_max_bytes,
        metadata_max_age_ms=config.metadata_max_age_ms,
        check_crcs=check_crcs,
        **dict(config.extra),
    )


@dataclass(slots=True)
class _Job:
    # One batch as submitted; the writer may join the prepared batches queued behind it into one insert.
    preparations: list[Preparation]
    epoch: int
    # Set from the preparations once they are done (the writer waits for them, in submission order).
    batch: PreparedBatch | None = None
    # Stages done so far (0 = nothing): a retry resumes at the failed stage, so rejections and dead
    # letters that already went out are not written twice.
    stage: int = 0


class _Writer:
    """Makes batches durable in submission order, retrying each with capped exponential backoff.

    A batch may still be in preparation (in a worker process) when it is submitted: the writer waits for
    it before the next one, whatever order the preparations finish in. When batches queue up behind the
    one it waited for and are already prepared, it stores them together, in order, as one insert (one set
    of offsets to commit): ClickHouse spends less per event on larger inserts, so a writer that falls
    behind catches up instead of falling further behind.

    Completed batches leave their next offsets in `take_completed()` for the caller to commit.
    """

    def __init__(
        self,
        *,
        sink: EventSink,
        dead_letters: DeadLetterSink,
        metrics: KafkaMetrics,
        max_in_flight: int,
        backoff_initial_s: float,
        backoff_max_s: float,
    ) -> None:
        self._sink = sink
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        # Batches taken off the queue and not yet durable (or dropped).
        self._busy = 0
        self._completed: dict[Partition, int] = {}
        self._epoch = 0
        self._stopping = False
        self.failing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="llmpulse-kafka-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """End the thread; whatever is not yet durable stays uncommitted and will be re-delivered."""
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def has_capacity(self) -> bool:
        with self._cond:
            return len(self._queue) + self._busy < self._max_in_flight

    def submit(self, batch: Preparation | PreparedBatch) -> None:
        preparation = Prepared(batch) if isinstance(batch, PreparedBatch) else batch
        with self._cond:
            self._queue.append(_Job([preparation], self._epoch))
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._cond.wait(min(remaining, 0.1))
            return True

    def take_completed(self) -> dict[Partition, int]:
        with self._cond:
            completed, self._completed = self._completed, {}
            return completed

    def restore_completed(self, offsets: Mapping[Partition, int]) -> None:
        """Give back offsets whose commit failed, so a later commit (or the revocation) includes them."""
        with self._cond:
            for key, offset in offsets.items():
                if offset > self._completed.get(key, -1):
                    self._completed[key] = offset

    def discard(self) -> None:
        """Forget queued and completed batches; the one in flight finishes but its offsets are dropped."""
        with self._cond:
            self._epoch += 1
            self._queue.clear()
            self._completed.clear()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
                self._busy = 1
            try:
                if self._await_preparation(job):
                    self._join_prepared(job)
                    self._write(job)
            finally:
                with self._cond:
                    self._busy = 0
                    self._cond.notify_all()

    def _join_prepared(self, job: _Job) -> None:
        """Add the batches queued right behind `job` that are already prepared (consecutive, in order)."""
        with self._cond:
            queue = self._queue
            while queue and queue[0].epoch == job.epoch and all(p.done() for p in queue[0].preparations):
                job.preparations.extend(queue.popleft().preparations)
            self._busy = len(job.preparations)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _await_preparation(self, job: _Job) -> bool:
        """Wait until the job's batch is prepared; False if stopped or discarded meanwhile."""
        [preparation] = job.preparations
        if not preparation.done():
            preparation.add_done_callback(self._wake)
            with self._cond:
                self._cond.wait_for(lambda: preparation.done() or self._stopping or job.epoch != self._epoch)
        with self._cond:
            return not self._stopping and job.epoch == self._epoch

    def _write(self, job: _Job) -> None:
        backoff = self._backoff_initial_s
        while True:
            with self._cond:
                if self._stopping or job.epoch != self._epoch:
                    return
            try:
                self._advance(job)
            except Exception as exc:
                self.failing = True
                self._metrics.insert_failures.inc()
                log.warning(
                    "storing a batch of %s messages failed (stage %d), retrying in %.1fs: %s",
                    job.batch.messages if job.batch is not None else "?", job.stage + 1, backoff, exc,
                )
                with self._cond:
                    # Woken early by stop() or discard(); a plain sleep would hold shutdown up.
                    self._cond.wait_for(lambda: self._stopping or job.epoch != self._epoch, timeout=backoff)
                backoff = min(backoff * 2, self._backoff_max_s)
                continue
            if self.failing:
                log.info("the store takes batches again; resuming")
            self.failing = False
            assert job.batch is not None
            with self._cond:
                if job.epoch == self._epoch:
                    for key, offset in job.batch.next_offsets.items():
                        if offset > self._completed.get(key, -1):
                            self._completed[key] = offset
            return

    def _advance(self, job: _Job) -> None:
        if job.batch is None:
            # Raises only if a worker failed and preparing in this process failed too: retried.
            batches = [preparation.result() for preparation in job.preparations]
            for prepared in batches:
                self._metrics.prepare_seconds.observe(prepared.prepare_seconds)
            job.batch = merge_batches(batches)
        batch = job.batch
        if job.stage == 0:
            started = time.perf_counter()
            try:
                result = self._sink.write_events(batch.rows, dedup_token=batch.dedup_token())
            finally:
                self._metrics.insert_seconds.observe(time.perf_counter() - started)
            self._metrics.batch_events.observe(len(batch.rows))
            self._metrics.batch_messages.observe(batch.messages)
            self._metrics.events_stored.inc(result.inserted)
            self._metrics.events_duplicate.inc(result.duplicates)
            if result.duplicates:
                log.info("%d of %d events were already stored (re-delivered after a crash or rebalance)",
                         result.duplicates, len(batch.rows))
            job.stage = 1
        if job.stage == 1:
            self._sink.write_rejections(batch.rejections)
            for topic, count in batch.rejected_by_topic.items():
                self._metrics.events_rejected.labels(topic).inc(count)
            count_redactions(redactions_counter(self._metrics.registry), batch.redactions)
            job.stage = 2
        if job.stage == 2:
            self._dead_letters.send(batch.dead_letters)
            for letter in batch.dead_letters:
                self._metrics.messages_dead_lettered.labels(letter.topic).inc()
            job.stage = 3


class _IoLoopBridge:
    """Lets a coroutine on kafka-python's IO loop wait for blocking work done in a worker thread.

    The result is handed back through the loop's `call_soon_threadsafe`, which also wakes the loop's
    select(); without that (a future kafka-python without `_net`), the result is set directly and the
    loop notices it at its next wake-up, at the latest with the next heartbeat.
    """

    def __init__(self, consumer: ConsumerLike) -> None:
        loop = getattr(consumer, "_net", None)
        self._call_soon_threadsafe: Callable[[Callable[[], None]], object] | None = getattr(
            loop, "call_soon_threadsafe", None
        )

    async def run_in_thread(self, work: Callable[[], T], *, name: str) -> T:
        done = KafkaFuture()

        def settle(apply: Callable[[], object]) -> None:
            def on_loop() -> None:
                # Return nothing: the loop would treat a returned (resolved) Future as something to await.
                apply()

            if self._call_soon_threadsafe is not None:
                try:
                    self._call_soon_threadsafe(on_loop)
                    return
                except Exception:
                    log.debug("IO loop refused a callback; resolving directly", exc_info=True)
            on_loop()

        def body() -> None:
            try:
                value = work()
            except BaseException as exc:
                error = exc
                settle(lambda: done.failure(error))
            else:
                settle(lambda: done.success(value))

        threading.Thread(target=body, name=name, daemon=True).start()
        result: T = await done
        return result


class _RebalanceListener(AsyncConsumerRebalanceListener):
    def __init__(self, collector: KafkaCollector) -> None:
        self._collector = collector

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        collector = self._collector
        if not revoked:
            return  # the first join of an eager rebalance revokes an empty assignment
        try:
            offsets = await collector._bridge.run_in_thread(
                lambda: collector._drain_for_revocation(revoked), name="llmpulse-kafka-revoke"
            )
        except Exception:
            log.exception("flushing before the revocation of %s failed; it will be re-delivered", revoked)
            return
        if not offsets:
            return
        try:
            await collector._consumer.commit_async(offsets)
        except Exception as exc:
            # Not fatal: the new owner re-reads from the last commit and the store drops what it holds.
            log.warning("commit before the revocation of %s failed: %s", revoked, exc)
            return
        collector._note_committed(offsets, when="revocation")

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self._collector._on_assigned(assigned)

    async def on_partitions_lost(self, lost: Collection[TopicPartition]) -> None:
        # The group already gave these away: committing would be refused, flushing could race the new owner.
        self._collector._on_lost(lost)


class KafkaCollector:
    """Consumes trace events from Kafka topics into the store; see the module docstring for guarantees.

    Run it with `run()` on a thread of your own (the CLI's main thread, which handles signals) or with
    `start()`; end it with `request_stop()` / `stop()`: it stops fetching, stores and commits what it
    has, and leaves the group.
    """

    def __init__(
        self,
        consumer: ConsumerLike,
        *,
        topics: Sequence[str],
        validator: EventValidator,
        sink: EventSink,
        dead_letters: DeadLetterSink,
        decoders: TopicDecoders,
        metrics: KafkaMetrics,
        batch_max_messages: int = 20_000,
        batch_max_bytes: int = 16 * 1024 * 1024,
        batch_max_seconds: float = 1.0,
        poll_timeout_ms: int = 200,
        max_poll_records: int = 5_000,
        max_in_flight_batches: int = 2,
        retry_backoff_s: float = 0.5,
        retry_backoff_max_s: float = 30.0,
        revoke_timeout_s: float = 30.0,
        shutdown_timeout_s: float = 30.0,
        commit_timeout_ms: int = 30_000,
        lag_refresh_s: float = 1.0,
        prepare_pool: PreparePool | None = None,
        group_instance_id: str | None = None,
        leave_static_group: Callable[[], None] | None = None,
    ) -> None:
        """`prepare_pool`: prepare batches in its worker processes (built with the same validation and
        decoder settings as `validator` and `decoders`); None prepares them on the poll thread. The
        collector starts the pool if it is not running and then also stops it when it ends.

        `group_instance_id`: the consumer's static membership id, if any. A static member never sends
        LeaveGroup when it closes (KIP-345: a restart in place then keeps its partitions without a
        rebalance, which is also what a SIGKILLed member gets), so after a requested stop the collector
        calls `leave_static_group` to hand its partitions over at once instead of after the session timeout.
        """
        if not topics:
            raise ValueError("no Kafka topics to consume (LLMPULSE_KAFKA_TOPICS)")
        self._consumer = consumer
        self._topics = list(topics)
        self._preparer = Preparer(BatchPreparer(validator=validator, decoders=decoders), prepare_pool,
                                 local_until_ready=True)
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._batch_max_messages = batch_max_messages
        self._batch_max_bytes = batch_max_bytes
        self._batch_max_seconds = batch_max_seconds
        self._poll_timeout_ms = poll_timeout_ms
        self._max_poll_records = max_poll_records
        self._revoke_timeout_s = revoke_timeout_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._commit_timeout_ms = commit_timeout_ms
        self._lag_refresh_s = lag_refresh_s
        self._writer = _Writer(
            sink=sink,
            dead_letters=dead_letters,
            metrics=metrics,
            # Batches in preparation count too: one per worker on top keeps every worker busy.
            max_in_flight=max_in_flight_batches + self._preparer.workers,
            backoff_initial_s=retry_backoff_s,
            backoff_max_s=retry_backoff_max_s,
        )
        self._bridge = _IoLoopBridge(consumer)
        self._listener = _RebalanceListener(self)
        # Guards what the revocation worker shares with the poll thread (which is blocked in poll()
        # meanwhile, so this is belt and braces rather than a contention point).
        self._lock = threading.RLock()
        self._pending = PendingRecords()
        # Per partition: the next offset not yet durable (last commit, or the first offset fetched).
        self._durable_next: dict[Partition, int] = {}
        self._assigned: set[Partition] = set()
        self._paused = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_lag_refresh = 0.0
        self._poll_failures = 0
        self.revocations = 0
        self.group_instance_id = group_instance_id
        self._leave_static_group = leave_static_group

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the poll loop on a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="llmpulse-kafka-poll", daemon=True)
            self._thread.start()

    def request_stop(self) -> None:
        """Ask the poll loop to finish (safe from signal handlers and other threads)."""
        self._stop.set()

    def stop(self, timeout_s: float | None = None) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self._shutdown_timeout_s + 30)
            self._thread = None

    def run(self) -> None:
        """Poll, batch and store until `request_stop()`; then flush, commit and leave the group."""
        pool = self._preparer.pool
        own_pool = pool is not None and not pool.running
        if own_pool:
            assert pool is not None
            pool.start()  # workers come up while the consumer joins the group
        self._consumer.subscribe(topics=self._topics, listener=self._listener)
        self._writer.start()
        clean = False
        try:
            while not self._stop.is_set():
                self._step()
            self._drain_on_shutdown()
            clean = True
        finally:
            self._writer.stop()
            if own_pool:
                assert pool is not None
                pool.stop()
            try:
                # Leaving the group runs the revocation listener once more (nothing left to flush) and
                # sends LeaveGroup, so the partitions move to the other members at once.
                self._consumer.close(autocommit=False)
            except Exception:
                log.exception("closing the Kafka consumer failed")
            if clean and self._leave_static_group is not None:
                try:
                    self._leave_static_group()
                except Exception as exc:
                    log.warning("leaving the group as static member %s failed (its partitions move to the other "
                                "members when its session times out): %s", self.group_instance_id, exc)
            try:
                self._dead_letters.close()
            except Exception:
                log.exception("closing the dead-letter producer failed")
            self._metrics.paused.set(0)
            log.info("Kafka collector stopped%s", "" if clean else " after an error")

    @property
    def paused(self) -> bool:
        return self._paused

    def group_metadata(self) -> Any:
        return self._consumer.group_metadata()

    # -- the poll loop --------------------------------------------------------------------------

    def _poll(self, timeout_ms: int, max_records: int | None = None) -> Mapping[Any, list[Any]]:
        """poll(), riding out a cluster that is briefly unreachable (a broker restart, a leader moving).

        kafka-python 3 raises a retriable error out of poll() when, e.g., refreshing metadata for the group
        coordinator finds no broker; the member keeps its state and the next poll() reconnects. Waiting a
        little (up to 1 s, woken at once by a stop request) keeps the loop from spinning meanwhile.
        """
        try:
            polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except RetriableError as exc:
            if self._poll_failures == 0:
                log.warning("the Kafka cluster is unreachable (%s: %s); retrying", type(exc).__name__, exc)
            self._poll_failures += 1
            delay = min(0.05 * 2 ** min(self._poll_failures, 5), 1.0)
            if self._stop.is_set():
                time.sleep(delay)  # draining for shutdown: bounded by its deadline
            else:
                self._stop.wait(delay)
            return {}
        if self._poll_failures:
            log.info("the Kafka cluster answers again (after %d failed polls)", self._poll_failures)
            self._poll_failures = 0
        return polled

    def _step(self) -> None:
        self._apply_backpressure()
        polled = self._poll(self._poll_timeout_ms, self._max_poll_records)
        if polled:
            self._accept(polled)
        while self._flush_due() and self._writer.has_capacity():
            self._submit_batch()
        self._commit_completed()
        self._refresh_lag()

    def _accept(self, polled: Mapping[Any, list[Any]]) -> None:
        with self._lock:
            for tp, records in polled.items():
                if not records:
                    continue
                compact = compact_records(records)
                self._durable_next.setdefault((tp.topic, tp.partition), compact[0][2])
                self._pending.add(compact)
                self._metrics.messages_consumed.labels(tp.topic).inc(len(compact))

    def _flush_due(self) -> bool:
        pending = self._pending
        return bool(pending) and (
            len(pending) >= self._batch_max_messages
            or pending.bytes >= self._batch_max_bytes
            or pending.age() >= self._batch_max_seconds
        )

    def _submit_batch(self) -> None:
        """Hand the oldest pending records, up to the batch limits, to be prepared and stored."""
        with self._lock:
            records = self._pending.take_batch(self._batch_max_messages, self._batch_max_bytes)
        if records:
            self._writer.submit(self._preparer.submit(records))

    def _submit_pending(self) -> None:
        """Hand over everything pending (shutdown, revocation), in batches of bounded size."""
        while True:
            with self._lock:
                records = self._pending.take_batch(self._batch_max_messages, self._batch_max_bytes)
            if not records:
                return
            self._writer.submit(self._preparer.submit(records))

    def _apply_backpressure(self) -> None:
        """Pause fetching while the store fails or the writer is full; poll() keeps the membership alive."""
        should_pause = self._writer.failing or (self._flush_due() and not self._writer.has_capacity())
        if should_pause:
            assignment = self._consumer.assignment()
            unpaused = assignment - self._consumer.paused()
            if unpaused:
                self._consumer.pause(*unpaused)
            if not self._paused:
                # Being behind is routine while a backlog drains; only a failing store is worth a warning.
                if self._writer.failing:
                    log.warning("pausing %d partition(s): the store is failing", len(assignment))
                else:
                    log.debug("pausing %d partition(s): the writer is behind", len(assignment))
                self._paused = True
                self._metrics.paused.set(1)
        elif self._paused:
            paused = self._consumer.paused()
            if paused:
                self._consumer.resume(*paused)
            log.debug("resuming fetching")
            self._paused = False
            self._metrics.paused.set(0)

    def _commit_completed(self) -> None:
        completed = self._writer.take_completed()
        if not completed:
            return
        owned = {(tp.topic, tp.partition) for tp in self._consumer.assignment()}
        # Never commit for partitions this member no longer owns: that could move another member's offset.
        completed = {key: offset for key, offset in completed.items() if key in owned}
        if not completed:
            return
        offsets = _to_kafka_offsets(completed)
        try:
            self._consumer.commit(offsets, timeout_ms=self._commit_timeout_ms)
        except FencedInstanceIdError:
            # Another process joined with this member's group.instance.id and took over its partitions;
            # retrying cannot succeed, and this member must stop (kafka-python only logs the fencing on
            # its heartbeat thread, so the first commit after it is where the collector learns of it).
            raise
        except Exception as exc:
            # Typically a rebalance in progress: the revocation listener commits these instead.
            log.warning("offset commit failed, will retry: %s", exc)
            self._writer.restore_completed(completed)
            return
        self._note_committed(offsets, when="batch")

    def _note_committed(self, offsets: Mapping[TopicPartition, OffsetAndMetadata], *, when: str) -> None:
        with self._lock:
            for tp, meta in offsets.items():
                self._durable_next[(tp.topic, tp.partition)] = meta.offset
        self._metrics.commits.labels(when).inc()

    def _refresh_lag(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_lag_refresh < self._lag_refresh_s:
            return
        self._last_lag_refresh = now
        for tp in self._consumer.assignment():
            key = (tp.topic, tp.partition)
            highwater = self._consumer.highwater(tp)
            floor = self._durable_next.get(key)
            if highwater is not None and floor is not None:
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(highwater - floor, 0))

    def _drain_on_shutdown(self) -> None:
        """Stop fetching, push everything buffered through the writer, commit it; bounded in time."""
        log.info("stopping: storing and committing what was consumed")
        assignment = self._consumer.assignment()
        if assignment:
            self._consumer.pause(*assignment)
        self._submit_pending()
        deadline = time.monotonic() + self._shutdown_timeout_s
        while not self._writer.idle() and time.monotonic() < deadline:
            # Paused, so nothing new arrives; polling keeps the membership (and a rebalance) working.
            polled = self._poll(100)
            if polled:
                self._accept(polled)
                self._submit_pending()
            self._commit_completed()
        if not self._writer.idle():
            log.warning("the store did not take the last batches within %.0fs; they will be re-delivered",
                        self._shutdown_timeout_s)
        self._commit_completed()

    # -- rebalance (called from the listener) ---------------------------------------------------

    def _drain_for_revocation(self, revoked: Collection[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """On a worker thread while the poll thread waits in poll(): store everything, return what to commit."""
        self.revocations += 1
        self._metrics.rebalances.labels("revoked").inc()
        self._submit_pending()
        timeout = self._revoke_timeout_s
        if self._writer.failing:
            # The store is down: the group should not wait long for a flush that will not happen.
            timeout = min(timeout, 5.0)
        if not self._writer.wait_idle(timeout):
            log.warning("the store did not take the batches in flight before the revocation of %s; "
                        "they will be re-delivered to the partitions' next owner", sorted(revoked))
            self._forget_undurable(revoked)
        completed = self._writer.take_completed()
        revoked_keys = {(tp.topic, tp.partition) for tp in revoked}
        with self._lock:
            for key in revoked_keys:
                self._durable_next.pop(key, None)
        return _to_kafka_offsets(completed)

    def _forget_undurable(self, revoked: Collection[TopicPartition]) -> None:
        """Drop batches not yet durable; partitions kept (cooperative rebalancing) rewind to re-read them."""
        self._writer.discard()
        revoked_keys = {(tp.topic, tp.partition) for tp in revoked}
        with self._lock:
            for key, offset in self._durable_next.items():
                if key not in revoked_keys and key in self._assigned:
                    self._consumer.seek(TopicPartition(*key), offset)

    def _on_assigned(self, assigned: Collection[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in assigned}
        with self._lock:
            gone = self._assigned - keys
            self._assigned = keys
        for topic, partition in gone:
            with contextlib.suppress(KeyError):
                self._metrics.consumer_lag.remove(topic, str(partition))
        self._metrics.assigned_partitions.set(len(keys))
        self._metrics.rebalances.labels("assigned").inc()
        if self._paused and assigned:
            self._consumer.pause(*assigned)
        log.info("assigned %d partition(s): %s", len(keys), sorted(keys))

    def _on_lost(self, lost: Collection[TopicPartition]) -> None:
        self._metrics.rebalances.labels("lost").inc()
        log.warning("lost partitions %s (membership expired); uncommitted work will be re-delivered", sorted(lost))
        lost_keys = {(tp.topic, tp.partition) for tp in lost}
        with self._lock:
            self._pending.take(lost_keys)
        self._forget_undurable(lost)
        with self._lock:
            for key in lost_keys:
                self._durable_next.pop(key, None)


def _to_kafka_offsets(offsets: Mapping[Partition, int]) -> dict[TopicPartition, OffsetAndMetadata]:
    return {TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()}
