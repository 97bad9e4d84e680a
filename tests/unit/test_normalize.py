"""Error types and finish reasons as real clients and instrumentations send them, mapped to the contract's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analyzers.rules import CLIENT_ERROR_TYPES as OUTAGE_CLIENT_TYPES
from collector.normalize import (
    CLIENT_ERROR_TYPES,
    PROVIDER_ERROR_TYPES,
    RAW_ERROR_TYPE_KEY,
    RAW_FINISH_REASON_KEY,
    normalize_error_type,
    normalize_finish_reason,
    normalize_outcome,
)
from collector.pricing import PriceCatalog
from collector.rows import EVENT_COLUMNS
from collector.validation import EventValidator, RawItem

# What openai-v2 / OpenLLMetry (exception class, qualified or not), OpenInference (exception.type event),
# LangChain/LiteLLM and hand-written clients put in error.type.
ERROR_TYPES = {
    "openai.BadRequestError": "invalid_request",
    "BadRequestError": "invalid_request",
    "<class 'openai.BadRequestError'>": "invalid_request",
    "openai.UnprocessableEntityError": "invalid_request",
    "openai.RateLimitError": "rate_limit",
    "RateLimitError": "rate_limit",
    "anthropic.RateLimitError": "rate_limit",
    "litellm.exceptions.RateLimitError": "rate_limit",
    "botocore.errorfactory.ThrottlingException": "rate_limit",
    "google.api_core.exceptions.ResourceExhausted": "rate_limit",
    "429": "rate_limit",
    "openai.APITimeoutError": "timeout",
    "httpx.ConnectTimeout": "timeout",
    "httpx.ReadTimeout": "timeout",
    "TimeoutError": "timeout",
    "asyncio.TimeoutError": "timeout",
    "504": "timeout",
    "openai.InternalServerError": "server_error",
    "InternalServerError": "server_error",
    "anthropic.InternalServerError": "server_error",
    "500": "server_error",
    "503": "server_error",
    "anthropic.APIStatusError: 503": "server_error",
    "anthropic.OverloadedError": "overloaded",
    "529": "overloaded",
    "openai.APIConnectionError": "connection_error",
    "APIConnectionError": "connection_error",
    "httpx.ConnectError": "connection_error",
    "openai.AuthenticationError": "authentication",
    "401": "authentication",
    "openai.PermissionDeniedError": "permission_denied",
    "openai.NotFoundError": "not_found",
    "404": "not_found",
    "400": "invalid_request",
    "openai.ContentFilterFinishReasonError": "content_filter",
    "openai.LengthFinishReasonError": "context_length_exceeded",
    "context_length_exceeded": "context_length_exceeded",
    "insufficient_quota": "quota_exceeded",
    "asyncio.CancelledError": "cancelled",
    "anthropic.APIStatusError": "_OTHER",
    "openai.APIError": "_OTHER",
    "_OTHER": "_OTHER",
    # Contract values pass through; unknown ones are kept as sent.
    "rate_limit": "rate_limit",
    "timeout": "timeout",
    "my_app.QuotaPolicyViolation": "my_app.QuotaPolicyViolation",
}


@pytest.mark.parametrize(("raw", "expected"), sorted(ERROR_TYPES.items()))
def test_error_types_from_real_clients_map_to_the_contract(raw: str, expected: str) -> None:
    assert normalize_error_type(raw) == expected


def test_client_error_classes_are_never_provider_errors() -> None:
    for raw in (
        "openai.BadRequestError",
        "BadRequestError",
        "openai.AuthenticationError",
        "openai.PermissionDeniedError",
        "openai.NotFoundError",
        "openai.ContentFilterFinishReasonError",
        "openai.LengthFinishReasonError",
        "anthropic.BadRequestError",
        "400",
        "401",
        "403",
        "404",
        "422",
    ):
        assert normalize_error_type(raw) in CLIENT_ERROR_TYPES, raw
    assert not CLIENT_ERROR_TYPES & PROVIDER_ERROR_TYPES


def test_every_client_type_is_excluded_by_the_outage_detector() -> None:
    assert set(OUTAGE_CLIENT_TYPES) >= CLIENT_ERROR_TYPES
    assert not PROVIDER_ERROR_TYPES & set(OUTAGE_CLIENT_TYPES)


FINISH_REASONS = {
    "stop": "stop",
    "end_turn": "stop",
    "STOP": "stop",
    "stop_sequence": "stop",
    "COMPLETE": "stop",
    "length": "length",
    "max_tokens": "length",
    "MAX_TOKENS": "length",
    "FinishReason.MAX_TOKENS": "length",
    "tool_calls": "tool_calls",
    "tool_call": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "refusal": "content_filter",
    "guardrail_intervened": "content_filter",
    "error": "error",
    "MALFORMED_FUNCTION_CALL": "error",
    "SOMETHING_NEW": "something_new",
}


@pytest.mark.parametrize(("raw", "expected"), sorted(FINISH_REASONS.items()))
def test_finish_reasons_of_every_provider_map_to_the_contract(raw: str, expected: str) -> None:
    assert normalize_finish_reason(raw) == expected


def test_the_raw_value_is_kept_in_metadata_only_when_it_differs() -> None:
    metadata = {"region": "eu"}
    assert normalize_outcome("rate_limit", "stop", metadata) == ("rate_limit", "stop", metadata)
    error, finish, kept = normalize_outcome("openai.RateLimitError", "end_turn", metadata)
    assert (error, finish) == ("rate_limit", "stop")
    assert kept == {"region": "eu", RAW_ERROR_TYPE_KEY: "openai.RateLimitError", RAW_FINISH_REASON_KEY: "end_turn"}
    assert metadata == {"region": "eu"}, "the caller's dict is not changed"
    assert normalize_outcome(None, None, metadata) == ("", "", metadata)


def _row(value: dict[str, object]) -> dict[str, object]:
    validator = EventValidator(prices=PriceCatalog(), clock=lambda: datetime(2026, 11, 20, tzinfo=UTC))
    result = validator.validate([RawItem(0, value, None)], source="http", source_ref="t")
    assert not result.rejections, result.rejections
    (row,) = result.batch.rows
    return dict(zip(EVENT_COLUMNS, row, strict=True))


@pytest.mark.parametrize("fast_path_shape", [True, False])
def test_json_events_are_normalized_on_both_validation_paths(fast_path_shape: bool) -> None:
    event: dict[str, object] = {
        "event_id": "e1",
        "app": "a",
        "model": "gpt-4o-mini",
        "start_time": "2026-11-20T10:00:00Z",
        "latency_ms": 10,
        "status": "error",
        "error_type": "openai.BadRequestError",
        "finish_reason": "MAX_TOKENS",
    }
    if not fast_path_shape:
        event["latency_ms"] = "10"  # a coercion only the model does
    row = _row(event)
    assert (row["error_type"], row["finish_reason"]) == ("invalid_request", "length")
    metadata = row["metadata"]
    assert isinstance(metadata, dict)
    assert metadata[RAW_ERROR_TYPE_KEY] == "openai.BadRequestError"
    assert metadata[RAW_FINISH_REASON_KEY] == "MAX_TOKENS"
