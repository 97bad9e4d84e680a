"""OTLP payloads on Kafka topics: the OTLP decoders in the shape of the Kafka collector's `MessageDecoder`.

The OpenTelemetry Collector's Kafka exporter writes one `ExportTraceServiceRequest` per message, as
`otlp_proto` (its default) or `otlp_json`. Registering these with the collector's `TopicDecoders` is all the
Kafka side needs:

    TopicDecoders({JSON_ENCODING: JsonEventDecoder(), **otlp_decoders(on_skipped=...)}, topic_encodings=...)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from collector.kafka.decoders import UndecodableMessage
from collector.otlp.decode import decode_otlp_json, decode_otlp_proto
from collector.otlp.mapping import OtlpOptions
from collector.validation import PayloadError, RawItem

OTLP_PROTO_ENCODING = "otlp_proto"
OTLP_JSON_ENCODING = "otlp_json"


class OtlpMessageDecoder:
    """One message → one RawItem per GenAI span; non-GenAI spans are reported to `on_skipped`, not returned."""

    def __init__(
        self,
        encoding: Literal["proto", "json"],
        options: OtlpOptions | None = None,
        *,
        on_skipped: Callable[[int], object] | None = None,
    ) -> None:
        self._decode = decode_otlp_proto if encoding == "proto" else decode_otlp_json
        self._options = options or OtlpOptions()
        self._on_skipped = on_skipped

    def decode(self, value: bytes, *, first_index: int) -> list[RawItem]:
        try:
            decoded = self._decode(value, self._options, first_index=first_index)
        except PayloadError as exc:
            raise UndecodableMessage(str(exc)) from None
        if decoded.skipped and self._on_skipped is not None:
            self._on_skipped(decoded.skipped)
        return decoded.items


def otlp_decoders(
    options: OtlpOptions | None = None, *, on_skipped: Callable[[int], object] | None = None
) -> dict[str, OtlpMessageDecoder]:
    """The `otlp_proto` and `otlp_json` topic encodings, named as the OpenTelemetry Collector names them."""
    return {
        OTLP_PROTO_ENCODING: OtlpMessageDecoder("proto", options, on_skipped=on_skipped),
        OTLP_JSON_ENCODING: OtlpMessageDecoder("json", options, on_skipped=on_skipped),
    }
