"""Deterministic sampling of events by a hash of their event_id.

Every event gets a number u(event_id) in [0, 1) from the first 8 bytes of MD5(SALT + event_id), read
little-endian; an event is in the sample of rate r iff u < r. So re-runs pick the same events, a lower rate
picks a subset of a higher one (nested samples), and rules with different rates agree on what they share.

MD5 is used because both Python (hashlib) and ClickHouse (`MD5`) have it, so the runner can filter in SQL
and tests can check the same selection in Python: `sample_sql_condition` and `is_sampled` agree bit for bit
(the comparison is on integers, never on floats).
"""

from __future__ import annotations

import hashlib
import math
from typing import Final

SALT: Final = "llmpulse-judge:"
_SPACE: Final = 1 << 64


def sample_hash(event_id: str, salt: str = SALT) -> int:
    """The event's 64-bit sampling hash (what ClickHouse computes in `sample_sql_condition`)."""
    digest = hashlib.md5((salt + event_id).encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "little")


def sample_unit(event_id: str, salt: str = SALT) -> float:
    """u(event_id) in [0, 1)."""
    return sample_hash(event_id, salt) / _SPACE


def threshold(rate: float) -> int:
    """Hashes strictly below this are selected at `rate` (0 selects nothing; ≥ 1 everything, 2**64)."""
    if math.isnan(rate) or rate < 0.0:
        raise ValueError(f"sampling rate must be in [0, 1], got {rate}")
    if rate >= 1.0:
        return _SPACE
    return int(rate * _SPACE)


def is_sampled(event_id: str, rate: float, salt: str = SALT) -> bool:
    return sample_hash(event_id, salt) < threshold(rate)


def sample_sql_expression(column: str = "event_id", salt: str = SALT) -> str:
    """ClickHouse expression of `sample_hash` (salt inlined; it is a constant of ours, never user input)."""
    if "'" in salt or "\\" in salt:
        raise ValueError("salt must not contain quotes or backslashes")
    return f"reinterpretAsUInt64(substring(MD5(concat('{salt}', {column})), 1, 8))"


def sample_sql_condition(rate: float, column: str = "event_id", salt: str = SALT) -> str:
    """A WHERE condition selecting the events `is_sampled(event_id, rate)` selects."""
    limit = threshold(rate)
    if limit >= _SPACE:
        return "1"
    if limit == 0:
        return "0"
    return f"{sample_sql_expression(column, salt)} < {limit}"
