"""Contract v1 validation: what is accepted, how it is normalised, and what each rejection says."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from collector.events import event_json_schema
from collector.pricing import PriceCatalog
from collector.rows import EVENT_COLUMNS
from collector.validation import (
    EventValidator,
    IngestLimits,
    PayloadError,
    UnsupportedMediaType,
    iter_body,
    iter_ndjson,
)
from tests.support.events import make_event

FIXED_NOW = datetime(2026, 11, 21, tzinfo=UTC)


def _validator(**limits: int) -> EventValidator:
    return EventValidator(prices=PriceCatalog(), limits=IngestLimits(**limits), clock=lambda: FIXED_NOW)


def _one(event: dict[str, object], **limits: int) -> dict[str, object]:
    result = _validator(**limits).validate(iter_ndjson(orjson.dumps(event)), source="test", source_ref="t")
    assert not result.rejections, result.rejections
    return dict(zip(EVENT_COLUMNS, result.batch.rows[0], strict=True))


def _reason(event: object) -> str:
    result = _validator().validate(iter_ndjson(orjson.dumps(event)), source="test", source_ref="t")
    assert result.accepted == 0
    return result.rejections[0].reason


def test_epoch_millis_and_end_time_give_the_same_latency() -> None:
    row = _one(make_event(1, start_time=1763719200000, latency_ms=None, end_time="2025-11-21T10:00:01.250Z"))
    assert row["start_time"] == datetime(2025, 11, 21, 10, 0, tzinfo=UTC)
    assert row["latency_ms"] == 1250.0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"model": None}, "field `model`"),
        ({"start_time": "2026-11-20 10:00:00"}, "has no UTC offset"),
        ({"start_time": "yesterday"}, "invalid timestamp 'yesterday'"),
        ({"latency_ms": -5}, "field `latency_ms`"),
        ({"status": "maybe"}, "field `status`"),
        ({"usage": {"input_tokens": "many"}}, "field `usage.input_tokens`"),
        ({"operation": "dance"}, "field `operation`"),
    ],
)
def test_each_violation_names_the_field(change: dict[str, object], expected: str) -> None:
    event = make_event(1)
    event.update(change)
    if change.get("model", "") is None:
        del event["model"]
    assert expected in _reason(event)


def test_latency_or_end_time_is_required() -> None:
    event = make_event(1)
    del event["latency_ms"]
    assert "either latency_ms or end_time is required" in _reason(event)


def test_non_object_items_are_rejected_with_their_type() -> None:
    assert "expected a JSON object, got list" in _reason([1, 2])


def test_long_texts_are_cut_on_a_utf8_boundary_and_flagged() -> None:
    row = _one(make_event(1, output="é" * 1000), max_text_bytes=1001)
    assert row["output_truncated"] is True
    assert len(str(row["output_text"]).encode()) <= 1001
    assert row["input_truncated"] is False


def test_chat_messages_are_flattened_for_analysis_and_kept_verbatim() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Where is my order?"}]},
    ]
    row = _one(make_event(1, input=messages))
    assert row["input_text"] == "You are terse.\n\nWhere is my order?"
    assert orjson.loads(str(row["input_messages"]))[1]["role"] == "user"


def test_client_cost_wins_and_unknown_models_are_unpriced_not_free() -> None:
    priced = _one(make_event(1, cost_usd=0.5))
    assert priced["cost_usd"] == 0.5 and priced["price_source"] == "client"
    unknown = _one(make_event(2, model="acme-internal-7b", provider="vllm"))
    assert unknown["cost_usd"] is None and unknown["price_source"] == "unknown"


def test_framing_follows_content_type() -> None:
    two_lines = orjson.dumps(make_event(1)) + b"\n" + orjson.dumps(make_event(2))
    assert len(list(iter_body(two_lines, "application/json"))) == 2
    assert len(list(iter_body(b"[" + orjson.dumps(make_event(1)) + b"]", "application/json"))) == 1
    with pytest.raises(UnsupportedMediaType):
        iter_body(b"x", "text/plain")
    with pytest.raises(PayloadError, match="not valid JSON"):
        list(iter_body(b"[{", "application/json"))


def test_published_schema_lists_required_fields_and_both_timestamp_forms() -> None:
    schema = event_json_schema()
    assert set(schema["required"]) == {"event_id", "app", "model", "start_time"}
    forms = {part["type"] for part in schema["properties"]["start_time"]["anyOf"]}
    assert forms == {"string", "number"}
