"""Per-topic message decoders: Kafka message bytes -> candidate events (RawItems) for the shared validator.

The seam exists because topics carry different encodings: native JSON events today, OTLP payloads later.
A decoder only frames and parses; contract validation, pricing and rejection bookkeeping stay in
`collector.validation`, so every encoding gets the same rules as the HTTP and file paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import orjson

from collector.fast_path import decode_plain_event
from collector.validation import RawItem

if TYPE_CHECKING:
    from collector.otlp.mapping import OtlpOptions

JSON_ENCODING = "json"


class UndecodableMessage(ValueError):
    """The message as a whole cannot be read (bad bytes, bad framing): it is dead-lettered whole."""


class MessageDecoder(Protocol):
    """Turns one message value into candidate events, numbered from `first_index` on.

    `RawItem.where` should say where in the message an item sits (it prefixes rejection reasons);
    `RawItem.raw` should be the item's own bytes when they are at hand, so rejections keep them verbatim.
    """

    def decode(self, value: bytes, *, first_index: int) -> list[RawItem]: ...


class JsonEventDecoder:
    """Native contract-v1 events: one JSON object, or a JSON array of objects, per message."""

    def __init__(self, *, fast_path: bool = True) -> None:
        """`fast_path`: decode a one-event message that is already in its final shape straight into a
        validated event (collector.fast_path), ~4x cheaper than JSON decoding plus validation."""
        self._fast_path = fast_path

    def decode(self, value: bytes, *, first_index: int) -> list[RawItem]:
        if self._fast_path and value[:1] == b"{" and (event := decode_plain_event(value)) is not None:
            return [RawItem(first_index, event, value, None, "", len(value))]
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise UndecodableMessage(_describe_json_error(value, exc)) from None
        size = len(value)
        if isinstance(document, list):
            # Items of an array have no bytes of their own; `size` bounds each, so the validator only
            # re-encodes an item to measure it when the whole message is over the per-event limit.
            return [
                RawItem(first_index + i, item, None, None, f"item {i}", size) for i, item in enumerate(document)
            ]
        return [RawItem(first_index, document, value, None, "", size)]


def _describe_json_error(value: bytes, exc: orjson.JSONDecodeError) -> str:
    # orjson reports broken UTF-8 as a generic JSON error; say what actually is wrong and where.
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8: byte 0x{value[bad.start]:02x} at position {bad.start}"
    if not value.strip():
        return "empty message"
    return f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


class TopicDecoders:
    """Which decoder reads which topic: an explicit per-topic encoding, else the default encoding."""

    def __init__(
        self,
        decoders: Mapping[str, MessageDecoder],
        *,
        topic_encodings: Mapping[str, str] | None = None,
        default_encoding: str = JSON_ENCODING,
    ) -> None:
        encodings = dict(topic_encodings or {})
        unknown = sorted({e for e in [*encodings.values(), default_encoding] if e not in decoders})
        if unknown:
            raise ValueError(
                f"unknown Kafka message encoding(s) {', '.join(unknown)}; known: {', '.join(sorted(decoders))}"
            )
        self._default = decoders[default_encoding]
        self._by_topic = {topic: decoders[encoding] for topic, encoding in encodings.items()}

    def for_topic(self, topic: str) -> MessageDecoder:
        return self._by_topic.get(topic, self._default)


def default_decoders(
    topic_encodings: Mapping[str, str] | None = None, *, otlp_options: OtlpOptions | None = None
) -> TopicDecoders:
    """The decoders this release knows: native JSON events, and OTLP traces as the OpenTelemetry Collector's
    Kafka exporter writes them (`otlp_proto`, `otlp_json`)."""
    from collector.otlp.kafka import otlp_decoders

    known: dict[str, MessageDecoder] = {JSON_ENCODING: JsonEventDecoder(), **otlp_decoders(otlp_options)}
    return TopicDecoders(known, topic_encodings=topic_encodings)
