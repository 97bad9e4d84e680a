"""OpenTelemetry trace ingest: OTLP spans from GenAI instrumentations become contract-v1 events.

`decode` turns OTLP/protobuf or OTLP/JSON bytes into `RawItem`s for the shared `IngestService`; `mapping`
holds the span → event rules; the HTTP receiver is `collector.api.routers.otlp` (POST /v1/traces).
"""

from collector.otlp.decode import (
    OtlpDecoded,
    OtlpPayloadError,
    decode_otlp_json,
    decode_otlp_proto,
    ingest_otlp,
)
from collector.otlp.mapping import OtlpOptions, OtlpSpan, map_span

__all__ = [
    "OtlpDecoded",
    "OtlpOptions",
    "OtlpPayloadError",
    "OtlpSpan",
    "decode_otlp_json",
    "decode_otlp_proto",
    "ingest_otlp",
    "map_span",
]
