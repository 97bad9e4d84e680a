"""Bulk load of NDJSON / JSON-array files (gzip or not, or stdin) through the same ingest path as HTTP."""

from __future__ import annotations

import gzip
import io
import itertools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from collector.inserter import InserterOverloaded
from collector.service import IngestService
from collector.store import WriteResult
from collector.validation import RawItem, iter_json_document, iter_ndjson_lines

SOURCE = "file"
CHUNK_LINES = 10_000


@dataclass(slots=True)
class FileIngestReport:
    files: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    unpriced: int = 0
    stored: int = 0
    sample_reasons: list[str] = field(default_factory=list)


def _open(path: str, stdin: BinaryIO) -> tuple[BinaryIO, int]:
    """A binary stream (transparently gunzipped) and the byte size to report progress against."""
    if path == "-":
        raw: BinaryIO = stdin
        size = 0
    else:
        raw = Path(path).open("rb")  # noqa: SIM115 -- closed by the caller
        size = Path(path).stat().st_size
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var]
    if buffered.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered), size  # type: ignore[return-value]
    return buffered, size


def _chunks(stream: BinaryIO, name: str) -> Iterator[list[RawItem]]:
    """NDJSON streams in fixed-size chunks; a JSON array has to be read whole."""
    head = stream.peek(64) if hasattr(stream, "peek") else b""
    if head.lstrip().startswith(b"["):
        yield list(iter_json_document(stream.read()))
        return
    items = iter_ndjson_lines(stream, where=f"{name} line")
    while chunk := list(itertools.islice(items, CHUNK_LINES)):
        yield chunk


def ingest_files(
    paths: list[str],
    service: IngestService,
    *,
    stdin: BinaryIO | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    max_in_flight: int = 8,
) -> FileIngestReport:
    """Load files; returns once every accepted row and every rejection is stored."""
    report = FileIngestReport()
    in_flight: list[Future[WriteResult]] = []

    def settle(keep: int) -> None:
        while len(in_flight) > keep:
            result = in_flight.pop(0).result()
            report.stored += result.inserted
            report.duplicates += result.duplicates

    for path in paths:
        name = "stdin" if path == "-" else path
        stream, size = _open(path, stdin or io.BytesIO())
        try:
            for chunk in _chunks(stream, name):
                source_ref = f"{name}"
                while True:
                    try:
                        outcome = service.ingest(chunk, source=SOURCE, source_ref=source_ref)
                        break
                    except InserterOverloaded:
                        settle(0) if in_flight else time.sleep(0.1)
                report.accepted += outcome.validation.accepted
                report.rejected += len(outcome.rejections)
                report.unpriced += outcome.validation.unpriced
                for rejection in outcome.rejections[: max(0, 20 - len(report.sample_reasons))]:
                    report.sample_reasons.append(rejection.reason)
                in_flight.append(outcome.written)
                settle(max_in_flight)
                if on_progress is not None:
                    on_progress(_position(stream), size)
        finally:
            if path != "-":
                stream.close()
        report.files += 1
    settle(0)
    return report


def _position(stream: BinaryIO) -> int:
    raw = getattr(stream, "fileobj", None) or stream
    try:
        return int(raw.tell())
    except (OSError, ValueError):
        return 0
