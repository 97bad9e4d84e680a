"""From polled Kafka records to a batch the writer can make durable: rows, rejections, dead letters, offsets."""

from __future__ import annotations

import hashlib
import operator
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from collector.kafka.dead_letter import DeadLetter
from collector.kafka.decoders import TopicDecoders, UndecodableMessage
from collector.rows import EventBatch, Rejection
from collector.validation import EventValidator, RawItem

SOURCE = "kafka"

# One consumed message as the collector keeps it: (topic, partition, offset, timestamp_ms, key, value,
# headers). A plain tuple, because worker processes receive batches of them: pickling plain tuples costs
# less than half of what named tuples or dataclasses cost, and that cost is paid on the poll thread.
RawRecord = tuple[str, int, int, int, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]

# (topic, partition): kafka-python's TopicPartition is a namedtuple of exactly these.
Partition = tuple[str, int]

# One C call per record; works on kafka-python's ConsumerRecord (a namedtuple) and on any object with
# these attributes.
_compact = operator.attrgetter("topic", "partition", "offset", "timestamp", "key", "value", "headers")
_value = operator.itemgetter(5)


def compact_records(records: Iterable[Any]) -> list[RawRecord]:
    """kafka-python ConsumerRecords (or look-alikes) as RawRecords."""
    return list(map(_compact, records))


def source_ref(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}@{offset}"


def _value_bytes(records: Iterable[RawRecord]) -> int:
    return sum(len(value) for value in map(_value, records) if value is not None)


class PendingRecords:
    """Records polled but not yet handed to the writer, in poll order, with the sizes that trigger a flush."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.records: list[RawRecord] = []
        self.bytes = 0
        self.first_at: float | None = None

    def __len__(self) -> int:
        return len(self.records)

    def add(self, records: Sequence[RawRecord]) -> None:
        if not records:
            return
        if self.first_at is None:
            self.first_at = self._clock()
        self.records.extend(records)
        self.bytes += _value_bytes(records)

    def age(self) -> float:
        return 0.0 if self.first_at is None else self._clock() - self.first_at

    def take_batch(self, max_messages: int, max_bytes: int) -> list[RawRecord]:
        """Remove and return the oldest records up to either limit (at least one record).

        A prefix in poll order is, per partition, a run of consecutive offsets: batches cut this way commit
        in order. One poll can bring far more than a batch (fetches are sized per partition), and batches
        of bounded size keep the prepare workers and the writer working side by side.
        """
        records = self.records
        sizes = list(accumulate(len(v) if v is not None else 0 for v in map(_value, records[:max_messages])))
        cut = max(bisect_right(sizes, max_bytes), 1) if sizes else 0
        if cut >= len(records):
            return self.take()
        taken, self.records = records[:cut], records[cut:]
        self.bytes -= sizes[cut - 1]
        # The rest was polled as long ago as what was taken: it keeps its age.
        return taken

    def take(self, partitions: set[Partition] | None = None) -> list[RawRecord]:
        """Remove and return all records, or only those of `partitions`."""
        if partitions is None:
            taken, self.records = self.records, []
        else:
            taken = [r for r in self.records if (r[0], r[1]) in partitions]
            self.records = [r for r in self.records if (r[0], r[1]) not in partitions]
        self.bytes = _value_bytes(self.records)
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
    # Seconds spent decoding, validating and pricing (in whichever process did it).
    prepare_seconds: float = 0.0
    # Matches masked before storage, per kind (collector.redaction): llmpulse_redactions_total.
    redactions: dict[str, int] = field(default_factory=dict)
    _token: str | None = field(default=None, repr=False)

    @property
    def partitions(self) -> set[Partition]:
        return set(self.next_offsets)

    def dedup_token(self) -> str:
        """Same messages, same token: a batch re-read after a crash or rebalance is dropped by ClickHouse.

        Offsets alone would collide if a topic were deleted and re-created (offsets restart at 0), and
        ClickHouse would then silently drop new data, so the event_ids the batch holds are hashed in too.
        Computed once, by whoever prepares the batch (a worker process, off the writer's GIL).
        """
        if self._token is None:
            digest = hashlib.blake2b(digest_size=16)
            for (topic, partition), (first, last) in sorted(self.ranges.items()):
                digest.update(f"{topic}\x00{partition}\x00{first}\x00{last}\x01".encode())
            # Sorted: polls interleave partitions differently from one delivery to the next.
            for event_id in sorted(self.rows.event_ids):
                digest.update(event_id.encode())
                digest.update(b"\x00")
            self._token = f"kafka-{digest.hexdigest()}"
        return self._token


def merge_batches(batches: Sequence[PreparedBatch]) -> PreparedBatch:
    """Consecutive batches, in submission order, as one: one insert, one set of offsets to commit.

    The token hashes the parts' tokens in order: the same parts give the same token (ClickHouse drops a
    repeated insert), and a different cut after a re-delivery is caught by the store's event_id lookup,
    as for any batch.
    """
    if len(batches) == 1:
        return batches[0]
    rows = EventBatch()
    next_offsets: dict[Partition, int] = {}
    ranges: dict[Partition, tuple[int, int]] = {}
    rejected_by_topic: dict[str, int] = {}
    redactions: dict[str, int] = {}
    digest = hashlib.blake2b(digest_size=16)
    for batch in batches:
        rows.extend(batch.rows)
        for kind, count in batch.redactions.items():
            redactions[kind] = redactions.get(kind, 0) + count
        for key, offset in batch.next_offsets.items():
            next_offsets[key] = max(next_offsets.get(key, offset), offset)
        for key, (first, last) in batch.ranges.items():
            known = ranges.get(key)
            ranges[key] = (first, last) if known is None else (min(known[0], first), max(known[1], last))
        for topic, count in batch.rejected_by_topic.items():
            rejected_by_topic[topic] = rejected_by_topic.get(topic, 0) + count
        digest.update(batch.dedup_token().encode())
        digest.update(b"\x00")
    return PreparedBatch(
        rows=rows,
        rejections=[r for batch in batches for r in batch.rejections],
        dead_letters=[letter for batch in batches for letter in batch.dead_letters],
        next_offsets=next_offsets,
        ranges=ranges,
        messages=sum(batch.messages for batch in batches),
        rejected_by_topic=rejected_by_topic,
        prepare_seconds=sum(batch.prepare_seconds for batch in batches),
        redactions=redactions,
        _token=f"kafka-{digest.hexdigest()}",
    )


class BatchPreparer:
    """Decodes messages with their topic's decoder and validates all their items in one pass."""

    def __init__(self, *, validator: EventValidator, decoders: TopicDecoders) -> None:
        self._validator = validator
        self._decoders = decoders

    def prepare(self, records: Sequence[RawRecord]) -> PreparedBatch:
        started = time.perf_counter()
        items: list[RawItem] = []
        # item_message[i] is the position in `records` of the message item i came from, and
        # message_first_item[m] the index of message m's first item: rejections map back through them.
        item_message: list[int] = []
        message_first_item: list[int] = []
        whole_failures: dict[int, str] = {}
        next_offsets: dict[Partition, int] = {}
        ranges: dict[Partition, tuple[int, int]] = {}
        for position, (topic, partition, offset, _timestamp, _key, value, _headers) in enumerate(records):
            key = (topic, partition)
            first_last = ranges.get(key)
            if first_last is None:
                ranges[key] = (offset, offset)
                next_offsets[key] = offset + 1
            else:
                ranges[key] = (min(first_last[0], offset), max(first_last[1], offset))
                next_offsets[key] = max(next_offsets[key], offset + 1)
            message_first_item.append(len(items))
            if value is None:
                whole_failures[position] = "empty message (null value)"
                continue
            try:
                decoded = self._decoders.for_topic(topic).decode(value, first_index=len(items))
            except UndecodableMessage as exc:
                whole_failures[position] = str(exc)
                continue
            items.extend(decoded)
            if len(decoded) == 1:
                item_message.append(position)
            else:
                item_message.extend([position] * len(decoded))

        result = self._validator.validate(items, source=SOURCE, source_ref="")
        per_message: dict[int, list[Rejection]] = {}
        for rejection in result.rejections:
            position = item_message[rejection.index]
            topic, partition, offset = records[position][:3]
            per_message.setdefault(position, []).append(
                Rejection(
                    index=rejection.index - message_first_item[position],
                    reason=rejection.reason,
                    payload=rejection.payload,
                    source=SOURCE,
                    source_ref=source_ref(topic, partition, offset),
                )
            )
        for position, reason in whole_failures.items():
            topic, partition, offset, _timestamp, _key, value, _headers = records[position]
            per_message[position] = [
                Rejection(
                    index=-1,
                    reason=reason,
                    payload=self._validator.mask_payload(value or b"", result.redactions),
                    source=SOURCE,
                    source_ref=source_ref(topic, partition, offset),
                )
            ]

        rejections: list[Rejection] = []
        dead_letters: list[DeadLetter] = []
        rejected_by_topic: dict[str, int] = {}
        for position in sorted(per_message):
            record = records[position]
            found = per_message[position]
            rejections.extend(found)
            rejected_by_topic[record[0]] = rejected_by_topic.get(record[0], 0) + len(found)
            dead_letters.append(_dead_letter(record, found))
        batch = PreparedBatch(
            rows=result.batch,
            rejections=rejections,
            dead_letters=dead_letters,
            next_offsets=next_offsets,
            ranges=ranges,
            messages=len(records),
            rejected_by_topic=rejected_by_topic,
            redactions=result.redactions,
        )
        batch.dedup_token()
        batch.prepare_seconds = time.perf_counter() - started
        return batch


def _dead_letter(record: RawRecord, rejections: Sequence[Rejection]) -> DeadLetter:
    topic, partition, offset, timestamp, key, value, headers = record
    reasons = "; ".join(r.reason for r in rejections[:5])
    if len(rejections) > 5:
        reasons += f"; and {len(rejections) - 5} more"
    return DeadLetter(
        value=value or b"",
        key=key,
        reason=reasons,
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=timestamp if timestamp is not None and timestamp >= 0 else None,
        rejected_items=len(rejections),
        headers=tuple((str(k), bytes(v or b"")) for k, v in headers or ()),
    )
