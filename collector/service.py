"""The collector's one ingest path, shared by HTTP, file and Kafka front ends: validate, price, hand to the writer."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass

from collector.inserter import BulkInserter
from collector.metrics import IngestMetrics
from collector.rows import Rejection
from collector.store import WriteResult
from collector.validation import EventValidator, RawItem, ValidationResult


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    validation: ValidationResult
    written: Future[WriteResult]

    @property
    def rejections(self) -> list[Rejection]:
        return self.validation.rejections


class IngestService:
    def __init__(self, *, validator: EventValidator, inserter: BulkInserter, metrics: IngestMetrics) -> None:
        self.validator = validator
        self.inserter = inserter
        self.metrics = metrics

    def ingest(self, items: Iterable[RawItem], *, source: str, source_ref: str) -> IngestOutcome:
        """Validate now; the returned future resolves once accepted rows and rejections are stored."""
        result = self.validator.validate(items, source=source, source_ref=source_ref)
        future = self.inserter.submit(result.batch, result.rejections)
        self.metrics.events_accepted.labels(source).inc(result.accepted)
        self.metrics.events_rejected.labels(source).inc(len(result.rejections))
        self.metrics.events_unpriced.labels(source).inc(result.unpriced)
        return IngestOutcome(result, future)

    def reject_whole(self, rejection: Rejection) -> Future[WriteResult]:
        """A payload unusable as a whole (not gzip, not JSON) is still kept, as one rejected item."""
        from collector.rows import EventBatch

        self.metrics.events_rejected.labels(rejection.source).inc()
        return self.inserter.submit(EventBatch(), [rejection])
