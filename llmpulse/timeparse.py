"""Durations and points in time as the command line takes them: one parser, one meaning, in every command.

- a duration: `90m`, `36h`, `7d`, `1w`, `45s`, `1d12h` (or a number of seconds);
- a point in time (`--since`, `--until`, `--at`, `--from`, `--to`, `--end`): RFC 3339 / ISO 8601
  (`2026-11-20T13:00:00Z`, `2026-11-20`; no offset = UTC), `now`, or a duration meaning that long before now
  (`--since 2h` = the last two hours).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)")


class TimeParseError(ValueError):
    """A duration or time the user typed cannot be read; the message says which option and what would do."""


def parse_duration(text: str, option: str = "duration") -> timedelta:
    """A positive duration: '1d', '36h', '90m', '7d', '1w', '45s', '1d12h' or a number of seconds."""
    s = text.strip().lower()
    if not s:
        raise TimeParseError(f"{option}: empty duration (use e.g. 90m, 36h, 7d)")
    if re.fullmatch(r"\d+(\.\d+)?", s):
        total = timedelta(seconds=float(s))
    else:
        if not _PART.findall(s) or _PART.sub("", s).strip():
            raise TimeParseError(f"{option} {text!r} is not a duration (use e.g. 90m, 36h, 7d, 1w)")
        total = timedelta(seconds=sum(float(v) * _UNIT_SECONDS[u] for v, u in _PART.findall(s)))
    if total <= timedelta(0):
        raise TimeParseError(f"{option} {text!r}: a duration must be positive")
    return total


def parse_timestamp(text: str) -> datetime | None:
    """RFC 3339 / ISO 8601 as an aware UTC datetime (no offset = UTC), None when `text` is not one."""
    raw = text.strip()
    if not raw or not raw[0].isdigit() or len(raw) < 8:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def parse_instant(text: str, option: str, *, now: datetime | None = None) -> datetime:
    """`now`, an RFC 3339 time, or a duration back from `now` ('2h' = two hours ago)."""
    current = now or datetime.now(UTC)
    raw = text.strip()
    if raw.lower() == "now":
        return current
    stamp = parse_timestamp(raw)
    if stamp is not None:
        return stamp
    try:
        return current - parse_duration(raw, option)
    except TimeParseError:
        raise TimeParseError(
            f"{option} {text!r} is neither an RFC 3339 time (2026-11-20T13:00:00Z), 'now', "
            "nor a duration back from now (2h, 7d)"
        ) from None
