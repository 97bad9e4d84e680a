"""Dead-letter topic: the original bytes of every message that did not fully become events, with why and where.

Delivery is at least once: a crash after the copy is acknowledged but before the source offset is committed
copies the message again. The source topic/partition/offset headers identify such repeats.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError

log = logging.getLogger(__name__)

HEADER_REASON = "llmpulse.reason"
HEADER_TOPIC = "llmpulse.source.topic"
HEADER_PARTITION = "llmpulse.source.partition"
HEADER_OFFSET = "llmpulse.source.offset"
HEADER_TIMESTAMP = "llmpulse.source.timestamp"
HEADER_REJECTED_ITEMS = "llmpulse.rejected.items"
HEADER_TRUNCATED = "llmpulse.payload.truncated-from"

# Reasons are for people and dashboards; a handful of them says enough and keeps headers small.
_MAX_REASON_BYTES = 2048


class DeadLetterError(RuntimeError):
    """Some dead letters were not acknowledged; the source offsets must not be committed yet."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One source message to copy to the dead-letter topic."""

    value: bytes
    key: bytes | None
    reason: str
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    rejected_items: int
    headers: tuple[tuple[str, bytes], ...] = ()

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        ours = [
            (HEADER_REASON, self.reason.encode("utf-8", "replace")[:_MAX_REASON_BYTES]),
            (HEADER_TOPIC, self.topic.encode()),
            (HEADER_PARTITION, str(self.partition).encode()),
            (HEADER_OFFSET, str(self.offset).encode()),
            (HEADER_REJECTED_ITEMS, str(self.rejected_items).encode()),
        ]
        if self.timestamp_ms is not None:
            ours.append((HEADER_TIMESTAMP, str(self.timestamp_ms).encode()))
        return [*self.headers, *ours]


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Return only once every letter is acknowledged; raise DeadLetterError otherwise."""
        ...

    def close(self) -> None: ...


class KafkaDeadLetterProducer:
    """Copies dead letters to one topic and waits for the broker's acknowledgement of each.

    A message larger than `max_message_bytes` (or refused by the broker as too large) is copied with its
    first `max_message_bytes // 2` bytes and a header carrying the original size: the full bytes are kept
    in `rejected_events` anyway, and a poison message must never stall the partition it came from.
    """

    def __init__(
        self,
        producer: Any,
        topic: str,
        *,
        max_message_bytes: int = 1024 * 1024,
        ack_timeout_s: float = 30.0,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._max_message_bytes = max_message_bytes
        self._ack_timeout_s = ack_timeout_s

    @property
    def topic(self) -> str:
        return self._topic

    def send(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        pending = [(letter, self._send_one(letter, truncate=len(letter.value) > self._max_message_bytes))
                   for letter in letters]
        self._producer.flush(timeout=self._ack_timeout_s)
        failed: list[str] = []
        for letter, future in pending:
            error = self._outcome(future)
            if isinstance(error, MessageSizeTooLargeError) or _is_too_large(error):
                error = self._outcome(self._send_one(letter, truncate=True), flush=True)
            if error is not None:
                failed.append(f"{letter.topic}/{letter.partition}@{letter.offset}: {error}")
        if failed:
            raise DeadLetterError(
                f"{len(failed)} dead letter(s) not acknowledged by {self._topic}: {'; '.join(failed[:3])}"
            )

    def close(self) -> None:
        self._producer.close(timeout=self._ack_timeout_s)

    def _send_one(self, letter: DeadLetter, *, truncate: bool) -> Any:
        value = letter.value
        headers = letter.kafka_headers()
        if truncate:
            value = value[: self._max_message_bytes // 2]
            headers.append((HEADER_TRUNCATED, str(len(letter.value)).encode()))
        try:
            return self._producer.send(self._topic, value=value, key=letter.key, headers=headers)
        except KafkaError as exc:
            return exc

    def _outcome(self, future: Any, *, flush: bool = False) -> BaseException | None:
        if isinstance(future, BaseException):
            return future
        if flush:
            self._producer.flush(timeout=self._ack_timeout_s)
        try:
            future.get(timeout=self._ack_timeout_s)
        except Exception as exc:
            return exc
        return None


def _is_too_large(error: BaseException | None) -> bool:
    # Brokers answer RecordTooLarge / MessageSizeTooLarge depending on version; match on the class name.
    return error is not None and "TooLarge" in type(error).__name__


def build_dead_letter_producer(
    bootstrap: str, topic: str, *, client_id: str, max_message_bytes: int, **producer_config: Any
) -> KafkaDeadLetterProducer:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=f"{client_id}-dlq",
        acks="all",
        linger_ms=5,
        max_request_size=max_message_bytes + 64 * 1024,
        **producer_config,
    )
    return KafkaDeadLetterProducer(producer, topic, max_message_bytes=max_message_bytes)
