"""From polled Kafka records to a batch the writer can make durable: rows, rejections, dead letters, offsets."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from collector.kafka.dead_letter import DeadLetter
from collector.kafka.decoders import TopicDecoders, UndecodableMessage
from collector.rows import EventBatch, Rejection
from collector.validation import EventValidator, RawItem

SOURCE = "kafka"


class Record(Protocol):
    """The parts of kafka-python's ConsumerRecord the collector reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


# (topic, partition): kafka-python's TopicPartition is a namedtuple of exactly these.
Partition = tuple[str, int]


def source_ref(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}@{offset}"


class PendingRecords:
    """Records polled but not yet handed to the writer, in poll order, with the sizes that trigger a flush."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.records: list[Record] = []
        self.bytes = 0
        self.first_at: float | None = None

    def __len__(self) -> int:
        return len(self.records)

    def add(self, records: Iterable[Record]) -> None:
        for record in records:
            if self.first_at is None:
                self.first_at = self._clock()
            self.records.append(record)
            value = record.value
            self.bytes += len(value) if value is not None else 0

    def age(self) -> float:
        return 0.0 if self.first_at is None else self._clock() - self.first_at

    def take(self, partitions: set[Partition] | None = None) -> list[Record]:
        """Remove and return all records, or only those of `partitions`."""
        if partitions is None:
            taken, self.records = self.records, []
        else:
            taken = [r for r in self.records if (r.topic, r.partition) in partitions]
            self.records = [r for r in self.records if (r.topic, r.partition) not in partitions]
        self.bytes = sum(len(r.value) for r in self.records if r.value is not None)
        self.first_at = self._clock() if self.records else None
        return taken


@dataclass(slots=True)
class PreparedBatch:
    """Everything one batch of messages turned into, and the offsets its durability allows to commit."""

    rows: EventBatch
    rejections: list[Rejection]
    dead_letters: list[DeadLetter]
    # Next offset to consume per partition (last offset in the batch + 1): what a commit records.
    next_offsets: dict[Partition, int]
    # (first, last) offset per partition, the identity of the batch for insert deduplication.
    ranges: dict[Partition, tuple[int, int]]
    messages: int
    rejected_by_topic: dict[str, int] = field(default_factory=dict)

    @property
    def partitions(self) -> set[Partition]:
        return set(self.next_offsets)

    def dedup_token(self) -> str:
        """Same messages, same token: a batch re-read after a crash or rebalance is dropped by ClickHouse.

        Offsets alone would collide if a topic were deleted and re-created (offsets restart at 0), and
        ClickHouse would then silently drop new data, so the event_ids the batch holds are hashed in too.
        """
        digest = hashlib.blake2b(digest_size=16)
        for (topic, partition), (first, last) in sorted(self.ranges.items()):
            digest.update(f"{topic}\x00{partition}\x00{first}\x00{last}\x01".encode())
        # Sorted: polls interleave partitions differently from one delivery to the next.
        for event_id in sorted(self.rows.event_ids):
            digest.update(event_id.encode())
            digest.update(b"\x00")
        return f"kafka-{digest.hexdigest()}"


class BatchPreparer:
    """Decodes messages with their topic's decoder and validates all their items in one pass."""

    def __init__(self, *, validator: EventValidator, decoders: TopicDecoders) -> None:
        self._validator = validator
        self._decoders = decoders

    def prepare(self, records: Sequence[Record]) -> PreparedBatch:
        items: list[RawItem] = []
        # item_message[i] is the position in `records` of the message item i came from, and
        # message_first_item[m] the index of message m's first item: rejections map back through them.
        item_message: list[int] = []
        message_first_item: list[int] = []
        whole_failures: dict[int, str] = {}
        next_offsets: dict[Partition, int] = {}
        ranges: dict[Partition, tuple[int, int]] = {}
        for position, record in enumerate(records):
            key = (record.topic, record.partition)
            offset = record.offset
            first_last = ranges.get(key)
            if first_last is None:
                ranges[key] = (offset, offset)
            else:
                ranges[key] = (min(first_last[0], offset), max(first_last[1], offset))
            next_offsets[key] = max(next_offsets.get(key, 0), offset + 1)
            message_first_item.append(len(items))
            value = record.value
            if value is None:
                whole_failures[position] = "empty message (null value)"
                continue
            try:
                decoded = self._decoders.for_topic(record.topic).decode(value, first_index=len(items))
            except UndecodableMessage as exc:
                whole_failures[position] = str(exc)
                continue
            items.extend(decoded)
            item_message.extend([position] * len(decoded))

        result = self._validator.validate(items, source=SOURCE, source_ref="")
        per_message: dict[int, list[Rejection]] = {}
        for rejection in result.rejections:
            position = item_message[rejection.index]
            record = records[position]
            per_message.setdefault(position, []).append(
                Rejection(
                    index=rejection.index - message_first_item[position],
                    reason=rejection.reason,
                    payload=rejection.payload,
                    source=SOURCE,
                    source_ref=source_ref(record.topic, record.partition, record.offset),
                )
            )
        for position, reason in whole_failures.items():
            record = records[position]
            per_message[position] = [
                Rejection(
                    index=-1,
                    reason=reason,
                    payload=record.value or b"",
                    source=SOURCE,
                    source_ref=source_ref(record.topic, record.partition, record.offset),
                )
            ]

        rejections: list[Rejection] = []
        dead_letters: list[DeadLetter] = []
        rejected_by_topic: dict[str, int] = {}
        for position in sorted(per_message):
            record = records[position]
            found = per_message[position]
            rejections.extend(found)
            rejected_by_topic[record.topic] = rejected_by_topic.get(record.topic, 0) + len(found)
            dead_letters.append(_dead_letter(record, found))
        return PreparedBatch(
            rows=result.batch,
            rejections=rejections,
            dead_letters=dead_letters,
            next_offsets=next_offsets,
            ranges=ranges,
            messages=len(records),
            rejected_by_topic=rejected_by_topic,
        )


def _dead_letter(record: Record, rejections: Sequence[Rejection]) -> DeadLetter:
    reasons = "; ".join(r.reason for r in rejections[:5])
    if len(rejections) > 5:
        reasons += f"; and {len(rejections) - 5} more"
    headers: Sequence[tuple[str, bytes]] = record.headers or ()
    return DeadLetter(
        value=record.value or b"",
        key=record.key,
        reason=reasons,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None,
        rejected_items=len(rejections),
        headers=tuple((str(k), bytes(v or b"")) for k, v in headers),
    )
