"""An OpenAI-compatible chat-completions client for the judge: timeouts, retries with backoff, a breaker.

Works with anything that speaks POST {base_url}/chat/completions: OpenAI, Azure OpenAI (api-key header and
api-version), vLLM, Ollama, llama.cpp's server. Retries cover timeouts, connection errors, 429 and 5xx, with
exponential backoff and full jitter, at least as long as a Retry-After header asks (a Retry-After beyond
`max_retry_after_s` is not waited for: the judgment fails and is retried by a later run).

The circuit breaker is shared by all calls of a process: after `failure_threshold` consecutive failed
attempts it opens and calls fail at once (no request is sent) until `cooldown_s` has passed; then one probe
goes through (half-open) and its outcome closes or re-opens the breaker.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol

import httpx

RETRYABLE_STATUS: Final = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker; `clock` is injectable (monotonic seconds)."""

    def __init__(
        self, failure_threshold: int = 5, cooldown_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state == BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
                return BreakerState.HALF_OPEN
            return self._state

    def allow(self) -> bool:
        """Whether a request may be sent now (claims the single probe slot when half-open)."""
        with self._lock:
            if self._state == BreakerState.CLOSED:
                return True
            if self._state == BreakerState.OPEN:
                if self._clock() - self._opened_at < self.cooldown_s:
                    return False
                self._state = BreakerState.HALF_OPEN
                self._probe_in_flight = False
            if self._probe_in_flight:
                return False
            self._probe_in_flight = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._probe_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state == BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
                if self._state != BreakerState.OPEN:
                    self.times_opened += 1
                self._state = BreakerState.OPEN
                self._opened_at = self._clock()
                self._probe_in_flight = False


class JudgeCallError(Exception):
    """A judge call that produced no answer; `kind` is what the store records."""

    def __init__(self, kind: str, message: str, *, attempts: int = 1, latency_ms: float = 0.0) -> None:
        super().__init__(message)
        self.kind = kind
        self.attempts = attempts
        self.latency_ms = latency_ms


class CircuitOpenError(JudgeCallError):
    def __init__(self) -> None:
        super().__init__("circuit_open", "the judge's circuit breaker is open: no request sent", attempts=0)


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    content: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float
    attempts: int
    model: str


class ChatClient(Protocol):
    model: str

    def complete(self, messages: Sequence[dict[str, str]], *, max_tokens: int) -> ChatAnswer: ...


class _Attempt(Exception):
    def __init__(self, kind: str, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds (fractions accepted) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class OpenAICompatibleClient:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        api_key_header: str = "Authorization",
        api_version: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 20.0,
        max_retry_after_s: float = 60.0,
        json_mode: bool = True,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.model = model
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.json_mode = json_mode
        self.breaker = breaker or CircuitBreaker()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._url = base_url.rstrip("/") + "/chat/completions"
        headers = {"content-type": "application/json"}
        if api_key:
            if api_key_header.lower() == "authorization":
                headers["authorization"] = f"Bearer {api_key}"
            else:
                headers[api_key_header] = api_key
        params = {"api-version": api_version} if api_version else None
        self._http = httpx.Client(
            headers=headers, params=params, timeout=httpx.Timeout(timeout_s), transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def complete(self, messages: Sequence[dict[str, str]], *, max_tokens: int) -> ChatAnswer:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        started = time.perf_counter()
        attempts = 0
        while True:
            if not self.breaker.allow():
                if attempts == 0:
                    raise CircuitOpenError()
                raise JudgeCallError(
                    "circuit_open",
                    "the circuit breaker opened while retrying",
                    attempts=attempts,
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            attempts += 1
            try:
                answer = self._attempt(body)
            except _Attempt as failure:
                self.breaker.record_failure()
                elapsed = (time.perf_counter() - started) * 1000
                if not failure.retryable or attempts > self.max_retries:
                    raise JudgeCallError(failure.kind, str(failure), attempts=attempts, latency_ms=elapsed) from None
                if failure.retry_after is not None and failure.retry_after > self.max_retry_after_s:
                    raise JudgeCallError(
                        failure.kind,
                        f"{failure}; Retry-After {failure.retry_after:.0f}s is beyond {self.max_retry_after_s:.0f}s",
                        attempts=attempts,
                        latency_ms=elapsed,
                    ) from None
                self._sleep(self._delay(attempts, failure.retry_after))
                continue
            self.breaker.record_success()
            content, input_tokens, output_tokens, model = answer
            return ChatAnswer(
                content=content,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                latency_ms=(time.perf_counter() - started) * 1000,
                attempts=attempts,
                model=model or self.model,
            )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.max_backoff_s, self.backoff_s * (2 ** (attempt - 1)))
        delay = self._rng.uniform(0, backoff)
        return max(delay, retry_after) if retry_after is not None else delay

    def _attempt(self, body: dict[str, Any]) -> tuple[str, int | None, int | None, str]:
        try:
            response = self._http.post(self._url, json=body)
        except httpx.TimeoutException as exc:
            raise _Attempt("timeout", f"the judge did not answer in time ({type(exc).__name__})", True) from None
        except httpx.TransportError as exc:
            raise _Attempt("connection", f"cannot reach the judge: {exc}", True) from None
        status = response.status_code
        if status != 200:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            detail = response.text[:300].strip()
            raise _Attempt(
                f"http_{status}", f"the judge answered HTTP {status}: {detail}", status in RETRYABLE_STATUS or
                status >= 500, retry_after
            )
        try:
            payload = response.json()
            message = payload["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Attempt(
                "bad_response", f"not a chat-completions response: {response.text[:200]!r}", False
            ) from None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        usage = payload.get("usage") or {}
        return (
            content if isinstance(content, str) else "",
            _int_or_none(usage.get("prompt_tokens")),
            _int_or_none(usage.get("completion_tokens")),
            str(payload.get("model") or ""),
        )


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
