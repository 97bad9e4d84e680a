"""The collector's one ingest path, shared by HTTP, file and Kafka front ends: validate, price, hand to the writer."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass

from collector.auth import Principal
from collector.inserter import BulkInserter
from collector.metrics import IngestMetrics, count_redactions
from collector.rows import EventBatch, Rejection
from collector.store import WriteResult
from collector.validation import EventValidator, RawItem, ValidationResult
from collector.validation_pool import BodyRequest, ValidationPool, validate_body
from collector.worker_pool import WorkerLost

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    validation: ValidationResult
    written: Future[WriteResult]

    @property
    def rejections(self) -> list[Rejection]:
        return self.validation.rejections


class IngestService:
    """Validation (inline, or in worker processes when a pool is given) followed by the bulk writer."""

    def __init__(
        self,
        *,
        validator: EventValidator,
        inserter: BulkInserter,
        metrics: IngestMetrics,
        pool: ValidationPool | None = None,
    ) -> None:
        self.validator = validator
        self.inserter = inserter
        self.metrics = metrics
        self.pool = pool

    def start(self) -> None:
        if self.pool is not None:
            self.pool.start()
        self.inserter.start()

    def stop(self) -> None:
        self.inserter.stop()
        if self.pool is not None:
            self.pool.stop()

    def ingest(
        self, items: Iterable[RawItem], *, source: str, source_ref: str, principal: Principal | None = None
    ) -> IngestOutcome:
        """Validate now; the returned future resolves once accepted rows and rejections are stored.

        `principal`: the authenticated caller of a network front end (HTTP, OTLP/HTTP, OTLP/gRPC): each item
        for an app its key may not write is rejected with a reason naming the app and the key, and kept in
        rejected_events. None only for trusted sources (files, Kafka)."""
        result = self.validator.validate(items, source=source, source_ref=source_ref, principal=principal)
        return self._submit(result, source)

    def ingest_body(self, request: BodyRequest) -> IngestOutcome:
        """A whole request body (gzip, JSON or NDJSON); raises PayloadError when it is unusable as a whole.
        `request.principal` is checked per item, as in `ingest`."""
        if self.pool is not None:
            try:
                return self._submit(self.pool.validate(request), request.source)
            except WorkerLost as exc:
                log.warning("validating a request body in a worker process failed (%s); validating it here", exc)
        return self._submit(validate_body(self.validator, request), request.source)

    def reject_whole(self, rejection: Rejection) -> Future[WriteResult]:
        """A payload unusable as a whole (not gzip, not JSON) is still kept, as one rejected item."""
        self.metrics.events_rejected.labels(rejection.source).inc()
        counts: dict[str, int] = {}
        masked = Rejection(
            index=rejection.index,
            reason=rejection.reason,
            payload=self.validator.mask_payload(rejection.payload, counts),
            source=rejection.source,
            source_ref=rejection.source_ref,
        )
        count_redactions(self.metrics.redactions, counts)
        return self.inserter.submit(EventBatch(), [masked])

    def _submit(self, result: ValidationResult, source: str) -> IngestOutcome:
        future = self.inserter.submit(result.batch, result.rejections)
        self.metrics.events_accepted.labels(source).inc(result.accepted)
        self.metrics.events_rejected.labels(source).inc(len(result.rejections))
        self.metrics.events_unpriced.labels(source).inc(result.unpriced)
        if result.redactions:
            count_redactions(self.metrics.redactions, result.redactions)
        return IngestOutcome(result, future)
