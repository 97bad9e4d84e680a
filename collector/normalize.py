"""The contract's error types and finish reasons, from whatever an instrumentation or a client sent.

OpenTelemetry instrumentations put the exception's class in `error.type` (`openai.BadRequestError`,
`RateLimitError`, `anthropic.APIStatusError`, `httpx.ConnectTimeout`, `<class 'openai.APIConnectionError'>`),
some an HTTP status (`429`, `503`), and every provider spells finish reasons its own way (`end_turn`,
`MAX_TOKENS`, `SAFETY`). The analyzers group errors by type and tell a provider outage from a client's own
mistakes by it (analyzers/rules.py `outage.client_error_types`), so every ingest path (JSON events, OTLP over
HTTP, gRPC, Kafka) maps them here to one vocabulary; the value sent is kept in metadata (`error.type.raw`,
`finish_reason.raw`) whenever it differs.

Pure and cached: the same few dozen values arrive millions of times.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

# -- error types --------------------------------------------------------------------------------------------
# Provider-side or transport failures: what a provider outage is made of.
RATE_LIMIT: Final = "rate_limit"
TIMEOUT: Final = "timeout"
SERVER_ERROR: Final = "server_error"
OVERLOADED: Final = "overloaded"
CONNECTION_ERROR: Final = "connection_error"
# The caller's own mistakes: never evidence that the provider is down.
INVALID_REQUEST: Final = "invalid_request"
CONTEXT_LENGTH_EXCEEDED: Final = "context_length_exceeded"
CONTENT_FILTER: Final = "content_filter"
AUTHENTICATION: Final = "authentication"
PERMISSION_DENIED: Final = "permission_denied"
NOT_FOUND: Final = "not_found"
CANCELLED: Final = "cancelled"
QUOTA_EXCEEDED: Final = "quota_exceeded"  # the account's credit or quota, not the provider's capacity
# The GenAI conventions' "failed, type unknown".
OTHER: Final = "_OTHER"

PROVIDER_ERROR_TYPES: Final = frozenset({RATE_LIMIT, TIMEOUT, SERVER_ERROR, OVERLOADED, CONNECTION_ERROR})
CLIENT_ERROR_TYPES: Final = frozenset(
    {
        INVALID_REQUEST,
        CONTEXT_LENGTH_EXCEEDED,
        CONTENT_FILTER,
        AUTHENTICATION,
        PERMISSION_DENIED,
        NOT_FOUND,
        CANCELLED,
        QUOTA_EXCEEDED,
    }
)
ERROR_TYPES: Final = PROVIDER_ERROR_TYPES | CLIENT_ERROR_TYPES | {OTHER}

# Class names (module prefix dropped, case-insensitive), from openai, anthropic, google-genai, mistralai,
# cohere, boto3/botocore (Bedrock), httpx, requests, aiohttp, grpc and the standard library.
_CLASS_NAMES: Final[dict[str, str]] = {
    "ratelimiterror": RATE_LIMIT,
    "ratelimitexceeded": RATE_LIMIT,
    "toomanyrequests": RATE_LIMIT,
    "toomanyrequestserror": RATE_LIMIT,
    "throttlingexception": RATE_LIMIT,
    "resourceexhausted": RATE_LIMIT,
    "quotaexceeded": QUOTA_EXCEEDED,
    "apitimeouterror": TIMEOUT,
    "timeouterror": TIMEOUT,
    "timeout": TIMEOUT,
    "timeoutexception": TIMEOUT,
    "connecttimeout": TIMEOUT,
    "readtimeout": TIMEOUT,
    "writetimeout": TIMEOUT,
    "pooltimeout": TIMEOUT,
    "servertimeouterror": TIMEOUT,
    "deadlineexceeded": TIMEOUT,
    "modeltimeoutexception": TIMEOUT,
    "internalservererror": SERVER_ERROR,
    "servererror": SERVER_ERROR,
    "serviceunavailableerror": SERVER_ERROR,
    "serviceunavailable": SERVER_ERROR,
    "serviceunavailableexception": SERVER_ERROR,
    "internalserverexception": SERVER_ERROR,
    "modelerrorexception": SERVER_ERROR,
    "badgatewayerror": SERVER_ERROR,
    "gatewaytimeouterror": TIMEOUT,
    "overloadederror": OVERLOADED,
    "modelnotreadyexception": OVERLOADED,
    "apiconnectionerror": CONNECTION_ERROR,
    "connectionerror": CONNECTION_ERROR,
    "connecterror": CONNECTION_ERROR,
    "remoteprotocolerror": CONNECTION_ERROR,
    "networkerror": CONNECTION_ERROR,
    "clientconnectorerror": CONNECTION_ERROR,
    "serverdisconnectederror": CONNECTION_ERROR,
    "connectionreseterror": CONNECTION_ERROR,
    "connectionrefusederror": CONNECTION_ERROR,
    "badrequesterror": INVALID_REQUEST,
    "badrequest": INVALID_REQUEST,
    "invalidrequesterror": INVALID_REQUEST,
    "unprocessableentityerror": INVALID_REQUEST,
    "validationexception": INVALID_REQUEST,
    "invalidargument": INVALID_REQUEST,
    "conflicterror": INVALID_REQUEST,
    "lengthfinishreasonerror": CONTEXT_LENGTH_EXCEEDED,
    "contextwindowexceedederror": CONTEXT_LENGTH_EXCEEDED,
    "contextlengthexceedederror": CONTEXT_LENGTH_EXCEEDED,
    "contentfilterfinishreasonerror": CONTENT_FILTER,
    "contentpolicyviolationerror": CONTENT_FILTER,
    "authenticationerror": AUTHENTICATION,
    "unauthorizederror": AUTHENTICATION,
    "unauthenticated": AUTHENTICATION,
    "unrecognizedclientexception": AUTHENTICATION,
    "permissiondeniederror": PERMISSION_DENIED,
    "permissiondenied": PERMISSION_DENIED,
    "accessdeniedexception": PERMISSION_DENIED,
    "forbiddenerror": PERMISSION_DENIED,
    "notfounderror": NOT_FOUND,
    "notfound": NOT_FOUND,
    "resourcenotfoundexception": NOT_FOUND,
    "cancellederror": CANCELLED,
    "cancelled": CANCELLED,
    "apiuserabortederror": CANCELLED,
    "keyboardinterrupt": CANCELLED,
}
# Error codes providers put in their bodies and some clients report instead of a class.
_CODES: Final[dict[str, str]] = {
    "rate_limit_exceeded": RATE_LIMIT,
    "rate_limit_error": RATE_LIMIT,
    "insufficient_quota": QUOTA_EXCEEDED,
    "quota_exceeded": QUOTA_EXCEEDED,
    "too_many_requests": RATE_LIMIT,
    "timed_out": TIMEOUT,
    "deadline_exceeded": TIMEOUT,
    "internal_error": SERVER_ERROR,
    "internal_server_error": SERVER_ERROR,
    "api_error": SERVER_ERROR,
    "service_unavailable": SERVER_ERROR,
    "unavailable": SERVER_ERROR,
    "overloaded_error": OVERLOADED,
    "connection": CONNECTION_ERROR,
    "invalid_request_error": INVALID_REQUEST,
    "bad_request": INVALID_REQUEST,
    "invalid_argument": INVALID_REQUEST,
    "context_length": CONTEXT_LENGTH_EXCEEDED,
    "string_above_max_length": CONTEXT_LENGTH_EXCEEDED,
    "max_tokens_exceeded": CONTEXT_LENGTH_EXCEEDED,
    "content_policy_violation": CONTENT_FILTER,
    "content_filtered": CONTENT_FILTER,
    "safety": CONTENT_FILTER,
    "authentication_error": AUTHENTICATION,
    "invalid_api_key": AUTHENTICATION,
    "unauthenticated": AUTHENTICATION,
    "unauthorized": AUTHENTICATION,
    "permission_error": PERMISSION_DENIED,
    "forbidden": PERMISSION_DENIED,
    "not_found_error": NOT_FOUND,
    "model_not_found": NOT_FOUND,
    "canceled": CANCELLED,
}
# Generic HTTP-status classes (openai/anthropic `APIStatusError`) say nothing by their name: only a status
# inside the value (`APIStatusError: 503`) decides; alone they are a failed call of unknown kind.
_GENERIC_CLASSES: Final = frozenset(
    {"apistatuserror", "apierror", "httpstatuserror", "httperror", "exception", "error"}
)
_STATUS_RE: Final = re.compile(r"(?<!\d)([1-5]\d\d)(?!\d)")
_CLASS_RE: Final = re.compile(r"^<class '([^']+)'>$")


def _from_status(status: int) -> str | None:
    if status == 429:
        return RATE_LIMIT
    if status in (408, 504, 524):
        return TIMEOUT
    if status == 529:
        return OVERLOADED
    if status >= 500:
        return SERVER_ERROR
    if status == 401:
        return AUTHENTICATION
    if status == 403:
        return PERMISSION_DENIED
    if status == 404:
        return NOT_FOUND
    if status == 413:
        return CONTEXT_LENGTH_EXCEEDED
    if status == 499:
        return CANCELLED
    if 400 <= status < 500:
        return INVALID_REQUEST
    return None


@lru_cache(maxsize=4096)
def normalize_error_type(value: str) -> str:
    """The contract's error type for `value`; an unrecognised value is returned unchanged (stripped)."""
    text = value.strip()
    if text in ERROR_TYPES:
        return text
    match = _CLASS_RE.match(text)
    if match:
        text = match.group(1)
    lowered = text.lower()
    if lowered in ERROR_TYPES:
        return lowered
    if lowered == "_other" or lowered == "other":
        return OTHER
    if lowered.isdigit():
        return _from_status(int(lowered)) or text
    code = _CODES.get(lowered.replace("-", "_").replace(" ", "_"))
    if code is not None:
        return code
    # "openai.BadRequestError", "botocore.errorfactory.ThrottlingException", "google.genai.errors.ClientError: 429"
    head, _, detail = lowered.partition(":")
    name = head.strip().rsplit(".", 1)[-1]
    mapped = _CLASS_NAMES.get(name)
    if mapped is not None:
        return mapped
    status = _STATUS_RE.search(detail) if detail else None
    if status is not None:
        by_status = _from_status(int(status.group(1)))
        if by_status is not None:
            return by_status
    if name in _GENERIC_CLASSES:
        return OTHER
    # google-genai: ClientError is any 4xx, ServerError any 5xx.
    if name == "clienterror":
        return INVALID_REQUEST
    return text


def is_client_error(error_type: str) -> bool:
    return error_type in CLIENT_ERROR_TYPES


# -- finish reasons -----------------------------------------------------------------------------------------
STOP: Final = "stop"
LENGTH: Final = "length"
TOOL_CALLS: Final = "tool_calls"
FINISH_CONTENT_FILTER: Final = "content_filter"
ERROR: Final = "error"

FINISH_REASONS: Final = frozenset({STOP, LENGTH, TOOL_CALLS, FINISH_CONTENT_FILTER, ERROR})

_FINISH: Final[dict[str, str]] = {
    # OpenAI, Mistral, vLLM, OTel GenAI
    "stop": STOP,
    "length": LENGTH,
    "model_length": LENGTH,
    "tool_calls": TOOL_CALLS,
    "tool_call": TOOL_CALLS,
    "function_call": TOOL_CALLS,
    "content_filter": FINISH_CONTENT_FILTER,
    "error": ERROR,
    # Anthropic, Bedrock Converse
    "end_turn": STOP,
    "stop_sequence": STOP,
    "pause_turn": STOP,
    "max_tokens": LENGTH,
    "model_context_window_exceeded": LENGTH,
    "tool_use": TOOL_CALLS,
    "refusal": FINISH_CONTENT_FILTER,
    "guardrail_intervened": FINISH_CONTENT_FILTER,
    "content_filtered": FINISH_CONTENT_FILTER,
    # Gemini / Vertex
    "finish_reason_stop": STOP,
    "max_tokens_reached": LENGTH,
    "safety": FINISH_CONTENT_FILTER,
    "recitation": FINISH_CONTENT_FILTER,
    "blocklist": FINISH_CONTENT_FILTER,
    "prohibited_content": FINISH_CONTENT_FILTER,
    "spii": FINISH_CONTENT_FILTER,
    "image_safety": FINISH_CONTENT_FILTER,
    "malformed_function_call": ERROR,
    "unexpected_tool_call": ERROR,
    # Cohere
    "complete": STOP,
    "error_toxic": FINISH_CONTENT_FILTER,
    "error_limit": LENGTH,
    # Ollama / llama.cpp
    "eos": STOP,
    "eos_token": STOP,
}


@lru_cache(maxsize=1024)
def normalize_finish_reason(value: str) -> str:
    """The contract's finish reason for `value` (`stop`, `length`, `tool_calls`, `content_filter`, `error`);
    an unrecognised value is returned lower-cased, since case is all that differs between providers."""
    text = value.strip()
    if text in FINISH_REASONS:
        return text
    lowered = text.lower()
    if lowered.startswith("finishreason."):  # a Python enum rendered with str()
        lowered = lowered[len("finishreason.") :]
    return _FINISH.get(lowered, lowered)


def normalized_pair(field: str, value: str | None) -> tuple[str, str | None]:
    """(normalized value, the raw value if it differs) for `error_type` or `finish_reason`; "" stays ""."""
    if not value:
        return "", None
    normalized = normalize_error_type(value) if field == "error_type" else normalize_finish_reason(value)
    return normalized, (value if normalized != value else None)


RAW_ERROR_TYPE_KEY: Final = "error.type.raw"
RAW_FINISH_REASON_KEY: Final = "finish_reason.raw"


def normalize_outcome(
    error_type: str | None, finish_reason: str | None, metadata: dict[str, str]
) -> tuple[str, str, dict[str, str]]:
    """(error_type, finish_reason, metadata) as stored: contract values, the raw ones kept in a copy of
    `metadata` when they differ (a value the client already put there wins)."""
    if (not error_type or error_type in ERROR_TYPES) and (not finish_reason or finish_reason in FINISH_REASONS):
        return error_type or "", finish_reason or "", metadata  # the common case, no copy
    error, raw_error = normalized_pair("error_type", error_type)
    finish, raw_finish = normalized_pair("finish_reason", finish_reason)
    if raw_error is not None or raw_finish is not None:
        metadata = dict(metadata)
        if raw_error is not None:
            metadata.setdefault(RAW_ERROR_TYPE_KEY, raw_error)
        if raw_finish is not None:
            metadata.setdefault(RAW_FINISH_REASON_KEY, raw_finish)
    return error, finish, metadata
