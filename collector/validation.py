"""From raw bytes to priced event rows and reasoned rejections. Pure: no I/O, the clock is injected."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from collector.auth import Principal
from collector.events import ChatMessage, TraceEvent
from collector.fast_path import PlainEvent, plain_event, unknown_fields
from collector.normalize import normalize_outcome
from collector.pricing import PriceCatalog
from collector.redaction import DEFAULT_POLICY, Counts, RedactionPolicy, Redactor
from collector.rows import EventBatch, Rejection

KNOWN_FIELDS = frozenset(TraceEvent.model_fields)


class PayloadError(ValueError):
    """The body as a whole cannot be read (not gzip, not JSON, wrong shape); no item in it is usable."""


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_text_bytes: int = 32 * 1024
    max_event_bytes: int = 1024 * 1024


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~0.7 µs more to build, once per event
class RawItem:
    """One candidate event: its position, the decoded JSON value (or why it could not be decoded), its bytes.

    `value` may also be a `PlainEvent` a decoder already validated from `raw` (collector.fast_path).
    """

    index: int
    value: Any
    raw: bytes | None
    decode_error: str | None = None
    where: str = ""
    # An upper bound of the item's encoded size, so small bodies skip re-encoding items to measure them.
    max_size: int | None = None


@dataclass(slots=True)
class ValidationResult:
    batch: EventBatch = field(default_factory=EventBatch)
    rejections: list[Rejection] = field(default_factory=list)
    unpriced: int = 0
    # Matches masked before storage, per kind (collector.redaction), for llmpulse_redactions_total.
    redactions: Counts = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return len(self.batch)


def gunzip_if_needed(body: bytes, content_encoding: str | None, *, max_bytes: int) -> bytes:
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise PayloadError(f"unsupported Content-Encoding {content_encoding!r}; use gzip or none")
    try:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise PayloadError(f"body is not valid gzip: {exc}") from None
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"decompressed body exceeds {max_bytes} bytes")
    return data


class PayloadTooLarge(PayloadError):
    pass


def _json_error(exc: orjson.JSONDecodeError) -> str:
    return f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def iter_ndjson_lines(lines: Iterable[bytes], *, where: str = "line") -> Iterator[RawItem]:
    """One item per non-blank line; a broken line is an item with a decode error, not a failed batch."""
    index = 0
    for line_no, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            value = orjson.loads(stripped)
            yield RawItem(index, value, stripped, None, f"{where} {line_no}", len(stripped))
        except orjson.JSONDecodeError as exc:
            yield RawItem(index, None, stripped, _json_error(exc), f"{where} {line_no}", len(stripped))
        index += 1


def iter_ndjson(data: bytes, *, where: str = "line") -> Iterator[RawItem]:
    return iter_ndjson_lines(data.split(b"\n"), where=where)


def iter_json_document(data: bytes) -> Iterator[RawItem]:
    """A JSON array of events, or a single event object."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        yield RawItem(index, item, None, None, f"item {index}", len(data))


def looks_like_ndjson(data: bytes) -> bool:
    head = data.lstrip()[:1]
    if head == b"[":
        return False
    first_newline = data.find(b"\n", 0, len(data) - 1 if data.endswith(b"\n") else len(data))
    return first_newline != -1 and bool(data[first_newline:].strip())


def iter_body(data: bytes, content_type: str | None) -> Iterator[RawItem]:
    """Pick the framing from the content type; plain `application/json` that holds several lines is NDJSON."""
    media = (content_type or "application/json").split(";")[0].strip().lower()
    if media in ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"):
        return iter_ndjson(data)
    if media in ("application/json", "text/json", "application/*+json"):
        if looks_like_ndjson(data):
            return iter_ndjson(data)
        return iter_json_document(data)
    raise UnsupportedMediaType(
        f"unsupported Content-Type {content_type!r}: send application/json (array or object) or application/x-ndjson"
    )


class UnsupportedMediaType(PayloadError):
    pass


def _truncate_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    if len(text) * 4 <= max_bytes:
        return text, False
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text, False
    return encoded[:max_bytes].decode("utf-8", "ignore"), True


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict):
            text = part.get("text") or part.get("content")
            if isinstance(text, str):
                parts.append(text)
    return "\n".join(parts)


def flatten_messages(
    value: str | list[ChatMessage] | list[dict[str, Any]] | None,
    max_bytes: int,
    *,
    original: Any = None,
    redactor: Redactor | None = None,
    counts: Counts | None = None,
) -> tuple[str, str, bool]:
    """(text for analysis, original messages as JSON or '', truncated?).

    `original`: the messages as the client sent them (decoded JSON), kept verbatim when given; re-dumping
    the validated models costs several times more. `redactor`: masks before truncation (a cut must not leave
    half a key behind); each match is counted once in `counts`, though it is in both the text and the JSON.
    """
    if value is None:
        return "", "", False
    if isinstance(value, str):
        if redactor is not None:
            value = redactor.redact(value, counts)
        text, cut = _truncate_utf8(value, max_bytes)
        return text, "", cut
    text = "\n\n".join(
        _content_text(message.get("content") if isinstance(message, dict) else message.content) for message in value
    )
    messages: Any = (
        original
        if isinstance(original, list)
        else [m if isinstance(m, dict) else m.model_dump(exclude_none=True) for m in value]
    )
    messages_json = orjson.dumps(messages).decode()
    if redactor is not None:
        text = redactor.redact(text)
        if redactor.redact(messages_json) != messages_json:
            # Masking the JSON text itself could cut through quotes; mask its strings and dump it again.
            messages_json = orjson.dumps(redactor.redact_value(messages, counts)).decode()
    text, cut = _truncate_utf8(text, max_bytes)
    messages_json, cut_json = _truncate_utf8(messages_json, max_bytes)
    return text, messages_json, cut or cut_json


def describe_validation_error(exc: ValidationError) -> str:
    reasons = []
    for error in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in error["loc"]) or "event"
        msg = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            reasons.append(f"missing required field `{loc}`")
        else:
            reasons.append(f"field `{loc}`: {msg}")
    more = len(exc.errors()) - 5
    if more > 0:
        reasons.append(f"and {more} more")
    return "; ".join(reasons)


class EventValidator:
    """Validates decoded items against contract v1, prices them, and shapes them into rows."""

    def __init__(
        self,
        *,
        prices: PriceCatalog,
        limits: IngestLimits | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fast_path: bool = True,
        redaction: RedactionPolicy = DEFAULT_POLICY,
    ) -> None:
        """`fast_path`: skip the contract model for events already in their final shape (collector.fast_path);
        off, every event goes through the model (the same outcome, slower). `redaction`: what is masked in
        texts, metadata values, tags and rejected payloads before anything is stored (docs/security.md)."""
        self._prices = prices
        self._limits = limits or IngestLimits()
        self._clock = clock
        self._fast_path = fast_path
        self.redaction = redaction
        self._redactor = Redactor(redaction) if redaction.enabled else None

    def validate(
        self, items: Iterable[RawItem], *, source: str, source_ref: str, principal: Principal | None = None
    ) -> ValidationResult:
        """`principal`: the caller; an item for an app its key may not write is rejected (with a reason naming
        the app and the key) and kept in rejected_events, the rest go on. None: a trusted source (files, Kafka)."""
        result = ValidationResult()
        ingested_at = self._clock()
        counts = result.redactions
        for item in items:
            outcome = self._validate_one(item, source=source, ingested_at=ingested_at, principal=principal,
                                         counts=counts)
            if isinstance(outcome, str):
                result.rejections.append(
                    Rejection(
                        index=item.index,
                        reason=f"{item.where}: {outcome}" if item.where else outcome,
                        payload=self.mask_payload(self._raw(item), counts),
                        source=source,
                        source_ref=source_ref,
                    )
                )
            else:
                row, priced = outcome
                result.batch.append(row)
                if not priced:
                    result.unpriced += 1
        return result

    def mask_payload(self, payload: bytes, counts: Counts | None = None) -> bytes:
        """A rejected payload with secrets masked too: rejected_events is storage like any other. Bytes that
        are not UTF-8 pass through unchanged around the masked text."""
        if self._redactor is None or not payload:
            return payload
        text = payload.decode("utf-8", "surrogateescape")
        masked = self._redactor.redact(text, counts)
        return payload if masked is text else masked.encode("utf-8", "surrogateescape")

    @staticmethod
    def _raw(item: RawItem) -> bytes:
        if item.raw is not None:
            return item.raw
        try:
            return orjson.dumps(item.value)
        except TypeError:
            return repr(item.value).encode()

    def _validate_one(
        self, item: RawItem, *, source: str, ingested_at: datetime, principal: Principal | None, counts: Counts
    ) -> str | tuple[tuple[Any, ...], bool]:
        if item.decode_error is not None:
            return item.decode_error
        value = item.value
        if type(value) is PlainEvent:
            # Decoded straight into the fast path's struct (collector.fast_path.decode_plain_event).
            if item.raw is None:
                raise ValueError("an item decoded as a PlainEvent must keep its bytes")
            size = len(item.raw)
            if size > self._limits.max_event_bytes:
                return self._too_large(size)
            if principal is not None and not principal.may_write(value.app):
                return _app_not_allowed(principal, value.app)
            return self._to_row(
                value, value.input, value.output, None, source=source, ingested_at=ingested_at, counts=counts
            )
        if not isinstance(value, dict):
            return f"expected a JSON object, got {type(value).__name__}"
        size = item.max_size if item.max_size is not None else len(self._raw(item))
        if size > self._limits.max_event_bytes and item.raw is None:
            size = len(self._raw(item))
        if size > self._limits.max_event_bytes:
            return self._too_large(size)
        plain = plain_event(value) if self._fast_path else None
        if plain is not None:
            event: TraceEvent | PlainEvent = plain
            extra = unknown_fields(value)
        else:
            try:
                event = TraceEvent.model_validate(value)
            except ValidationError as exc:
                return describe_validation_error(exc)
            extra = event.model_extra
        if principal is not None and not principal.may_write(event.app):
            return _app_not_allowed(principal, event.app)
        return self._to_row(
            event,
            value.get("input"),
            value.get("output"),
            extra,
            source=source,
            ingested_at=ingested_at,
            counts=counts,
        )

    def _too_large(self, size: int) -> str:
        return (
            f"event is {size:,} bytes, over the {self._limits.max_event_bytes:,}-byte limit "
            "(LLMPULSE_MAX_EVENT_BYTES)"
        )

    def _to_row(
        self,
        event: TraceEvent | PlainEvent,
        original_input: Any,
        original_output: Any,
        extra: dict[str, Any] | None,
        *,
        source: str,
        ingested_at: datetime,
        counts: Counts,
    ) -> tuple[tuple[Any, ...], bool]:
        """`original_input`/`original_output`: the decoded JSON the client sent, stored verbatim for messages;
        `extra`: fields outside the contract, kept in metadata."""
        max_text = self._limits.max_text_bytes
        redactor = self._redactor
        raw_input, raw_output = event.input, event.output
        # Plain strings are the common case; messages need flattening.
        if type(raw_input) is str and len(raw_input) * 4 <= max_text:
            input_text = raw_input if redactor is None else redactor.redact(raw_input, counts)
            input_messages, input_cut = "", False
        else:
            input_text, input_messages, input_cut = flatten_messages(
                raw_input, max_text, original=original_input, redactor=redactor, counts=counts
            )
        if type(raw_output) is str and len(raw_output) * 4 <= max_text:
            output_text = raw_output if redactor is None else redactor.redact(raw_output, counts)
            output_messages, output_cut = "", False
        else:
            output_text, output_messages, output_cut = flatten_messages(
                raw_output, max_text, original=original_output, redactor=redactor, counts=counts
            )
        metadata = event.metadata
        if extra:
            metadata = dict(metadata)
            for key, item in extra.items():
                metadata.setdefault(key, item if isinstance(item, str) else orjson.dumps(item).decode())
        # Instrumentations' class names and providers' spellings -> the contract's values (collector/normalize.py).
        error_type, finish_reason, metadata = normalize_outcome(event.error_type, event.finish_reason, metadata)
        tags = event.tags
        if redactor is not None:
            if metadata:
                metadata = {key: redactor.redact(item, counts) for key, item in metadata.items()}
            if tags:
                tags = [redactor.redact(tag, counts) for tag in tags]
        usage = event.usage
        start_time = event.start_time
        latency_ms = event.latency_ms or 0.0
        cost = self._prices.cost(
            model=event.model, provider=event.provider, usage=usage, at=start_time, client_cost_usd=event.cost_usd
        )
        row = (
            event.event_id,
            event.schema_version,
            event.app,
            event.environment,
            event.feature or "",
            event.operation,
            event.provider or "",
            event.model,
            event.response_model or "",
            event.prompt_id or "",
            event.prompt_version or "",
            event.trace_id or "",
            event.span_id or "",
            event.parent_span_id or "",
            event.user_id or "",
            event.session_id or "",
            start_time,
            event.end_time or start_time + timedelta(milliseconds=latency_ms),
            latency_ms,
            event.ttft_ms,
            event.status,
            error_type,
            finish_reason,
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens,
            usage.reasoning_output_tokens,
            cost.input_usd,
            cost.cache_read_usd,
            cost.cache_write_usd,
            cost.output_usd,
            cost.reasoning_usd,
            cost.total_usd,
            cost.source.value,
            input_text,
            output_text,
            input_messages,
            output_messages,
            input_cut,
            output_cut,
            metadata,
            tags,
            source,
            ingested_at,
        )
        return row, cost.total_usd is not None


def _app_not_allowed(principal: Principal, app: str) -> str:
    allowed = ", ".join(sorted(principal.apps))
    return f"API key {principal.name!r} may not write app {app!r} (it may write: {allowed})"


def decode_file_bytes(data: bytes, *, name: str) -> Iterator[RawItem]:
    """Files are NDJSON, a JSON array, or either gzipped (by magic number, whatever the name)."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise PayloadError(f"{name}: not valid gzip: {exc}") from None
    if data.lstrip()[:1] == b"[":
        return iter_json_document(data)
    return iter_ndjson(data, where=f"{name} line")
