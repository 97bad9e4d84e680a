"""One OTLP export, whatever the transport: what the HTTP routes and the gRPC services share.

Traces: `start_trace_export` decodes nothing (the caller did) but fills spans from waiting content, then hands
them to the ingest service with the caller's principal; once `outcome.written` resolved, `finish_trace_export`
writes late content onto the stored events. Logs: `export_logs` stores content and joins it. Both raise what
the ingest path raises (InserterOverloaded, InserterStopped, PayloadError); the transport picks its status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from collector.auth import Principal
from collector.otlp.content import ContentJoiner, TraceJoin
from collector.otlp.decode import OtlpDecoded, ingest_otlp
from collector.otlp.logs import LogsDecoded
from collector.service import IngestOutcome, IngestService

log = logging.getLogger(__name__)

MAX_REASONS_IN_MESSAGE = 5


@dataclass(frozen=True, slots=True)
class TraceExport:
    decoded: OtlpDecoded
    outcome: IngestOutcome
    join: TraceJoin | None

    @property
    def rejected(self) -> int:
        return len(self.outcome.rejections)

    def partial_message(self) -> str:
        return partial_message([r.reason for r in self.outcome.rejections], self.decoded.spans, "spans")


def partial_message(reasons: list[str], total: int, what: str) -> str:
    if not reasons:
        return ""
    shown = reasons[:MAX_REASONS_IN_MESSAGE]
    more = len(reasons) - len(shown)
    tail = f"; and {more} more" if more > 0 else ""
    kept = " (kept in rejected_events)" if what == "spans" else ""
    return f"{len(reasons)} of {total} {what} rejected{kept}: " + "; ".join(shown) + tail


def start_trace_export(
    service: IngestService,
    decoded: OtlpDecoded,
    *,
    joiner: ContentJoiner | None,
    principal: Principal | None,
    source: str,
    source_ref: str,
) -> TraceExport:
    join = joiner.before_validation(decoded.items) if joiner is not None and decoded.items else None
    outcome = ingest_otlp(service, decoded, source=source, source_ref=source_ref, principal=principal)
    return TraceExport(decoded, outcome, join)


def finish_trace_export(export: TraceExport, joiner: ContentJoiner | None, principal: Principal | None) -> None:
    """After the events are stored. A failure here loses no event: the content stays in otlp_content."""
    if joiner is None or export.join is None:
        return
    try:
        joiner.after_write(export.join, principal)
    except Exception as exc:
        log.warning("joining late OTLP content to stored spans failed (the content is kept): %s", exc)


@dataclass(frozen=True, slots=True)
class LogsExport:
    decoded: LogsDecoded
    accepted: int
    refused: list[str]

    @property
    def rejected(self) -> int:
        return len(self.refused)

    def partial_message(self) -> str:
        return partial_message(self.refused, self.decoded.log_records, "log records")


def export_logs(joiner: ContentJoiner, decoded: LogsDecoded, *, principal: Principal | None) -> LogsExport:
    if decoded.skipped:
        joiner.metrics.records.labels("skipped").inc(decoded.skipped)
    accepted, refused = joiner.accept_content(decoded.records, principal)
    return LogsExport(decoded, accepted, refused)
