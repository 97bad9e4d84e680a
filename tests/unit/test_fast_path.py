"""The fast path through contract v1 changes nothing a client or a reader can see: rows and rejections are
the same with and without it, for realistic traffic and for every kind of bad or unusual field."""

from __future__ import annotations

import copy
import itertools
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from collector.events import MAX_DURATION_MS
from collector.fast_path import decode_plain_event, plain_event
from collector.kafka.batching import BatchPreparer, PreparedBatch
from collector.kafka.decoders import JsonEventDecoder, TopicDecoders
from collector.pricing import PriceCatalog
from collector.validation import EventValidator, RawItem, ValidationResult
from llmpulse.simulate import SimulationConfig, default_incidents, generate, parse_duration
from tests.support.events import make_event

NOW = datetime(2026, 11, 21, tzinfo=UTC)
_PRICES = PriceCatalog()
WITH_FAST_PATH = EventValidator(prices=_PRICES, clock=lambda: NOW)
MODEL_ONLY = EventValidator(prices=_PRICES, clock=lambda: NOW, fast_path=False)

_MISSING = object()


def _validate(validator: EventValidator, events: list[Any]) -> ValidationResult:
    return validator.validate([RawItem(i, e, None) for i, e in enumerate(events)], source="t", source_ref="r")


def _kind(value: Any) -> type:
    return str if isinstance(value, str) else type(value)


def _assert_same_outcome(events: list[Any]) -> None:
    fast, model = _validate(WITH_FAST_PATH, events), _validate(MODEL_ONLY, events)
    assert [r.reason for r in fast.rejections] == [r.reason for r in model.rejections]
    assert [r.index for r in fast.rejections] == [r.index for r in model.rejections]
    assert fast.unpriced == model.unpriced
    assert len(fast.batch.rows) == len(model.batch.rows)
    for fast_row, model_row in zip(fast.batch.rows, model.batch.rows, strict=True):
        assert fast_row == model_row
        # (The model keeps enum defaults as enum members, which are strs.)
        assert [_kind(v) for v in fast_row] == [_kind(v) for v in model_row]
    # And what reaches ClickHouse is identical, byte for byte.
    assert fast.batch.to_arrow().equals(model.batch.to_arrow())


def _prepare(fast: bool, messages: list[bytes]) -> PreparedBatch:
    preparer = BatchPreparer(
        validator=WITH_FAST_PATH if fast else MODEL_ONLY,
        decoders=TopicDecoders({"json": JsonEventDecoder(fast_path=fast)}),
    )
    return preparer.prepare([("t", 0, offset, 0, None, m, ()) for offset, m in enumerate(messages)])


def _assert_same_outcome_from_bytes(messages: list[bytes]) -> None:
    """Kafka messages decoded straight into the fast path's struct, against JSON decoding plus the model."""
    fast, model = _prepare(True, messages), _prepare(False, messages)
    assert [(r.index, r.reason, r.payload, r.source_ref) for r in fast.rejections] == [
        (r.index, r.reason, r.payload, r.source_ref) for r in model.rejections
    ]
    assert fast.dead_letters == model.dead_letters
    assert fast.rows.rows == model.rows.rows
    assert fast.rows.to_arrow().equals(model.rows.to_arrow())


def _as_json(events: list[Any]) -> list[bytes]:
    """The events JSON can carry (NaN, infinities and integers beyond 64 bits cannot be sent)."""
    encoded = []
    for event in events:
        try:
            encoded.append(orjson.dumps(event))
        except TypeError:
            continue
    return encoded


@pytest.fixture(scope="module")
def simulated() -> list[dict[str, Any]]:
    config = SimulationConfig(
        start=datetime(2026, 11, 16, tzinfo=UTC), duration=parse_duration("7d"), seed=5,
        incidents=default_incidents(datetime(2026, 11, 16, tzinfo=UTC), parse_duration("7d")),
    )  # fmt: skip
    events = list(itertools.islice(generate(config), 0, None, 20))
    assert len(events) > 2_000
    return events


def test_simulated_traffic_takes_the_fast_path_and_stores_the_same_rows(simulated: list[dict[str, Any]]) -> None:
    taken = sum(plain_event(e) is not None for e in simulated)
    decoded = sum(decode_plain_event(orjson.dumps(e)) is not None for e in simulated)
    # Nearly every realistic event needs no coercion: the path is worth having only if it is taken.
    assert taken >= 0.95 * len(simulated) and decoded == taken
    _assert_same_outcome(simulated)
    _assert_same_outcome_from_bytes(_as_json(simulated))


_LONG = "x" * 600
_VARIANTS: dict[str, list[Any]] = {
    "event_id": ["", "a", "é" * 256, "é" * 257, 5, None, True, ["a"], _MISSING],
    "app": ["", "x" * 128, "x" * 129, 1.5, None, _MISSING],
    "model": ["x" * 256, "x" * 257, "", None, _MISSING, "unknown-model-xyz"],
    "environment": ["", "staging", "x" * 64, "x" * 65, None, 3, _MISSING],
    "feature": [None, "", "x" * 512, "x" * 513, 7, _MISSING],
    "trace_id": [None, "t" * 512, _LONG, {"a": 1}],
    "finish_reason": ["length", None, 0],
    "provider": ["anthropic", "", None, False],
    "start_time": [
        "2026-11-20T10:00:00Z", "2026-11-20T10:00:00.123456+02:00", "2026-11-20T10:00:00", "garbage",
        "2026-11-20 10:00:00Z", "2026-11-20T10:00:00z", 1763632800000, 1763632800000.5, -1, 4e13, True, None,
        _MISSING, " 2026-11-20T10:00:00Z ",
    ],
    "end_time": [None, "2026-11-20T10:00:01Z", "2026-11-20T09:00:00Z", 1763632801000, "nope", _MISSING],
    "latency_ms": [0, 0.0, -0.0, 12, 12.5, -1, "12", True, None, math.inf, math.nan, MAX_DURATION_MS,
                   MAX_DURATION_MS + 0.5, 2**53 + 1, 10**400, _MISSING],
    "ttft_ms": [None, 0, 3.5, -2, "3", math.inf, False, MAX_DURATION_MS, MAX_DURATION_MS + 1, _MISSING],
    "cost_usd": [None, 0, 0.25, -0.01, "0.1", math.nan, _MISSING],
    "schema_version": [1, 2, 0, "1", 1.0, True, None, _MISSING],
    "operation": ["chat", "embeddings", "execute_tool", "bogus", "CHAT", 1, None, _MISSING],
    "status": ["ok", "error", "ERR", None, _MISSING],
    "usage": [
        {}, {"input_tokens": 5}, {"input_tokens": -1}, {"input_tokens": 2**32 - 1}, {"input_tokens": 2**32},
        {"input_tokens": "5"}, {"input_tokens": 5.0}, {"input_tokens": True}, {"foo": 1}, None, [], _MISSING,
        {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 2,
         "reasoning_output_tokens": 8},
    ],
    "input": [
        "text", None, "", [], [{"role": "user", "content": "hi"}], [{"role": "user"}],
        [{"role": "", "content": "x"}], [{"role": "r" * 65, "content": "x"}], [{"role": "user", "content": None}],
        [{"role": "user", "content": ["part"]}], [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        [{"role": "user", "content": "x", "name": "bob", "extra": None}], ["str"], 5, {"role": "user"},
        [{"role": 1, "content": "x"}], [{"role": "user", "content": 5}], "é" * 20_000, _MISSING,
    ],
    "output": ["text", None, [{"role": "assistant", "content": "ok"}], [{"content": "no role"}], 3.5, _MISSING],
    "metadata": [{}, {"a": "b"}, {"a": 1}, {"a": None}, None, [], "x", _MISSING],
    "tags": [[], ["a", "b"], ["x" * 256], ["x" * 257], [1], None, "a", _MISSING],
    "custom_field": ["s", 1, {"a": [1, None]}, None, _MISSING],
}


@pytest.mark.parametrize("field", sorted(_VARIANTS))
def test_every_variant_of_a_field_gives_the_same_outcome(field: str) -> None:
    events = []
    for base in (make_event(1), make_event(2, operation="embeddings", status="error", error_type="timeout")):
        for variant in _VARIANTS[field]:
            event = copy.deepcopy(base)
            if variant is _MISSING:
                event.pop(field, None)
            else:
                event[field] = copy.deepcopy(variant)
            events.append(event)
    _assert_same_outcome(events)
    _assert_same_outcome_from_bytes(_as_json(events))


def test_non_objects_and_oversized_items_are_still_rejected_the_same_way() -> None:
    _assert_same_outcome([None, [], "event", 5, make_event(3, metadata={"k": "v" * 2_000_000})])


def _json_with(field: str, raw_value: str) -> bytes:
    """make_event(1) as JSON with `field` set to `raw_value`, written as raw JSON text."""
    event = make_event(1)
    event.pop(field, None)
    return orjson.dumps(event)[:-1] + f', "{field}": {raw_value}}}'.encode()


def test_json_only_a_message_can_carry_gives_the_same_outcome() -> None:
    """Texts that only exist as bytes: what the JSON parsers might read differently, and broken JSON."""
    messages = [
        _json_with("latency_ms", "1e400"),
        _json_with("latency_ms", "12.50000000000000000001"),
        _json_with("latency_ms", "-0"),
        _json_with("event_id", '"dup-1", "event_id": "dup-2"'),
        _json_with("event_id", '"\\ud800"'),
        _json_with("event_id", '"\\u0000\\u00e9\\n"'),
        _json_with("app", '"\\ud83d\\ude00 bot"'),
        _json_with("start_time", '"2026-11-20T10:00:00.123456789Z"'),
        _json_with("start_time", '"2026-11-20T10:00:00.9999999Z"'),
        _json_with("start_time", "1763632800000.9999"),
        _json_with("start_time", "100000000000000000000000000000"),
        _json_with("input", '[{"role": "user", "content": "hi", "n": 100000000000000000000000000000}]'),
        _json_with("input", '[{"role": "user", "content": "hi", "n": 1.5}]'),
        _json_with("output", '[{"role": "assistant", "content": "ok", "tool_calls": [{"id": "c1"}]}]'),
        _json_with("usage", '{"input_tokens": 1.0}'),
        _json_with("usage", '{"input_tokens": 18446744073709551616}'),
        _json_with("metadata", '{"a": "b", "a": "c"}'),
        b" " + orjson.dumps(make_event(2)),
        orjson.dumps(make_event(3)) + b"\n",
        orjson.dumps(make_event(4))[:-1],
        b"\xef\xbb\xbf" + orjson.dumps(make_event(5)),
        orjson.dumps(make_event(6)).replace(b"evt", b"\xff"),
        b"{}",
        b"[]",
        orjson.dumps([make_event(7), make_event(8)]),
        b"null",
        b"",
    ]
    _assert_same_outcome_from_bytes(messages)
    assert decode_plain_event(messages[0]) is None


def test_unknown_fields_of_a_decoded_object_still_take_the_fast_path() -> None:
    event = {**make_event(1), "custom_field": {"a": [1, None]}, "team": "search"}
    assert plain_event(event) is not None
    # From bytes they go to the model (msgspec cannot keep them): the outcome is the same either way.
    assert decode_plain_event(orjson.dumps(event)) is None
    _assert_same_outcome([event])
    _assert_same_outcome_from_bytes([orjson.dumps(event)])
