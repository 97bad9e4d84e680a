"""Validation in worker processes, so one API process uses more than one core.

Validating and pricing an event is pure Python and holds the GIL; the ClickHouse insert (Arrow, parsed
natively) does not. Moving validation to worker processes lets the API process spend its GIL on HTTP
and the store, while workers return ready Arrow tables (IPC bytes: cheap to pass, zero-copy to read).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import pyarrow as pa

from collector.auth import Principal
from collector.pricing import PriceCatalog, PriceOverride
from collector.redaction import DEFAULT_POLICY, Counts, RedactionPolicy
from collector.rows import EventBatch, Rejection
from collector.validation import EventValidator, IngestLimits, ValidationResult, gunzip_if_needed, iter_body
from collector.worker_pool import WorkerPool

_worker_validator: EventValidator | None = None


@dataclass(frozen=True, slots=True)
class BodyRequest:
    body: bytes
    content_type: str | None
    content_encoding: str | None
    max_bytes: int
    source: str
    source_ref: str
    # The caller: items for apps its key may not write are rejected per item (None: not checked).
    principal: Principal | None = None


@dataclass(frozen=True, slots=True)
class _PooledResult:
    arrow_ipc: bytes
    rejections: list[Rejection]
    unpriced: int
    # Counted in the worker, added to the API process's metrics by the service.
    redactions: Counts


def validate_body(validator: EventValidator, request: BodyRequest) -> ValidationResult:
    """Decode (gzip, JSON/NDJSON) and validate one request body; raises PayloadError for unusable bodies."""
    data = gunzip_if_needed(request.body, request.content_encoding, max_bytes=request.max_bytes)
    return validator.validate(
        iter_body(data, request.content_type),
        source=request.source,
        source_ref=request.source_ref,
        principal=request.principal,
    )


def _init_worker(limits: IngestLimits, overrides: Sequence[PriceOverride], redaction: RedactionPolicy) -> None:
    global _worker_validator
    _worker_validator = EventValidator(prices=PriceCatalog(overrides), limits=limits, redaction=redaction)


def _validate_in_worker(request: BodyRequest) -> _PooledResult:
    assert _worker_validator is not None, "worker not initialised"
    result = validate_body(_worker_validator, request)
    table = result.batch.to_arrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return _PooledResult(sink.getvalue().to_pybytes(), result.rejections, result.unpriced, result.redactions)


class ValidationPool:
    """A fixed pool of validator processes with explicit start/stop."""

    def __init__(
        self,
        *,
        processes: int,
        limits: IngestLimits,
        overrides: Sequence[PriceOverride] = (),
        redaction: RedactionPolicy = DEFAULT_POLICY,
    ) -> None:
        self._workers = WorkerPool(
            processes=processes,
            initializer=_init_worker,
            initargs=(limits, list(overrides), redaction),
            name="validation",
        )

    def start(self) -> None:
        self._workers.start(wait=True)

    def stop(self) -> None:
        self._workers.stop()

    def worker_pids(self) -> list[int]:
        """PIDs of the live workers (for diagnostics)."""
        return self._workers.worker_pids()

    def submit(self, request: BodyRequest) -> Future[_PooledResult]:
        """Fails with `collector.worker_pool.WorkerLost` if no worker is alive or the request's worker dies."""
        return self._workers.submit(_validate_in_worker, request)

    def validate(self, request: BodyRequest) -> ValidationResult:
        pooled = self.submit(request).result()
        table = pa.ipc.open_stream(pooled.arrow_ipc).read_all()
        return ValidationResult(
            batch=EventBatch.from_arrow(table),
            rejections=pooled.rejections,
            unpriced=pooled.unpriced,
            redactions=pooled.redactions,
        )
