"""Groups small submissions into large inserts: flush on size or time, one writer thread, explicit start/stop."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from collector.metrics import IngestMetrics
from collector.rows import EventBatch, Rejection
from collector.store import EventSink, WriteResult

log = logging.getLogger(__name__)


class InserterOverloaded(RuntimeError):
    """More rows are waiting than the configured bound; the caller should answer 'retry later'."""


class InserterStopped(RuntimeError):
    pass


@dataclass(slots=True)
class _Submission:
    batch: EventBatch
    rejections: Sequence[Rejection]
    future: Future[WriteResult] = field(default_factory=Future)
    enqueued_at: float = field(default_factory=time.monotonic)


class BulkInserter:
    """Owns the only path from validated batches to the sink inside a process.

    A submission's future resolves once its rows are durable, so an API can acknowledge only what is
    stored; a failed write fails the future and nothing is acknowledged.
    """

    def __init__(
        self,
        sink: EventSink,
        *,
        max_rows: int = 20_000,
        max_delay_s: float = 0.25,
        max_pending_rows: int = 400_000,
        eager_rows: int | None = None,
        write_attempts: int = 3,
        retry_backoff_s: float = 0.2,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self._sink = sink
        self._max_rows = max_rows
        self._max_delay_s = max_delay_s
        self._max_pending_rows = max_pending_rows
        # Waiting only helps coalesce small submissions; once this many rows wait, a further wait just
        # adds latency (bulk senders already send big batches), so write now.
        self._eager_rows = eager_rows if eager_rows is not None else max(1, max_rows // 10)
        self._write_attempts = write_attempts
        self._retry_backoff_s = retry_backoff_s
        self._metrics = metrics
        self._pending: deque[_Submission] = deque()
        self._pending_rows = 0
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llmpulse-inserter", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Write out everything submitted, then end the writer thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def submit(self, batch: EventBatch, rejections: Sequence[Rejection] = ()) -> Future[WriteResult]:
        submission = _Submission(batch, rejections)
        with self._cond:
            if self._stopping or self._thread is None:
                raise InserterStopped("the inserter is not running")
            if self._pending_rows and self._pending_rows + len(batch) > self._max_pending_rows:
                raise InserterOverloaded(
                    f"{self._pending_rows} rows are waiting to be written (limit {self._max_pending_rows})"
                )
            was_idle = not self._pending
            self._pending.append(submission)
            self._pending_rows += len(batch)
            # The writer sleeps without a deadline while idle, and until the oldest deadline otherwise.
            if was_idle or self._pending_rows >= self._eager_rows or rejections:
                self._cond.notify_all()
        return submission.future

    def flush(self, timeout_s: float = 60.0) -> None:
        """Block until everything submitted so far is written."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._cond.notify_all()
            while self._pending or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("inserter did not drain in time")
                self._cond.wait(min(remaining, 0.05))

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def _take(self) -> list[_Submission]:
        """Called with the lock held: the oldest submissions up to about max_rows."""
        taken: list[_Submission] = []
        rows = 0
        while self._pending and (not taken or rows + len(self._pending[0].batch) <= self._max_rows):
            submission = self._pending.popleft()
            rows += len(submission.batch)
            taken.append(submission)
        self._pending_rows -= rows
        return taken

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._pending:
                        age = time.monotonic() - self._pending[0].enqueued_at
                        urgent = any(s.rejections for s in self._pending)
                        if self._stopping or urgent or self._pending_rows >= self._eager_rows:
                            break
                        if age >= self._max_delay_s:
                            break
                        self._cond.wait(self._max_delay_s - age)
                    elif self._stopping:
                        return
                    else:
                        self._cond.wait()
                taken = self._take()
                self._in_flight = len(taken)
            try:
                self._write(taken)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _write(self, taken: list[_Submission]) -> None:
        merged = taken[0].batch if len(taken) == 1 else EventBatch()
        if len(taken) > 1:
            for submission in taken:
                merged.extend(submission.batch)
        rejections = [r for s in taken for r in s.rejections]
        error: BaseException | None = None
        result = WriteResult(0, 0)
        for attempt in range(1, self._write_attempts + 1):
            started = time.perf_counter()
            try:
                self._sink.write_rejections(rejections)
                rejections = []
                result = self._sink.write_events(merged)
                error = None
                break
            except Exception as exc:
                error = exc
                log.warning("insert of %d rows failed (attempt %d): %s", len(merged), attempt, exc)
                if self._metrics:
                    self._metrics.insert_failures.inc()
                if attempt < self._write_attempts:
                    time.sleep(self._retry_backoff_s * (2 ** (attempt - 1)))
            finally:
                if self._metrics:
                    self._metrics.insert_seconds.observe(time.perf_counter() - started)
        if error is not None:
            for submission in taken:
                submission.future.set_exception(error)
            return
        if self._metrics:
            self._metrics.batch_rows.observe(len(merged))
            self._metrics.events_stored.inc(result.inserted)
            self._metrics.events_duplicate.inc(result.duplicates)
        offset = 0
        for submission in taken:
            size = len(submission.batch)
            submission.future.set_result(result if len(taken) == 1 else result.slice(offset, offset + size))
            offset += size
