"""What every command shares: `--format table|json`, one-line failures, and the llmpulse-wide time parser.

JSON goes to stdout alone (progress, warnings and errors go to stderr), so `llmpulse X --format json | jq` works.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import orjson
import typer

from llmpulse.errors import OperatorError
from llmpulse.timeparse import TimeParseError, parse_duration, parse_instant


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


FORMAT_HELP = "table (for people) or json (machine-readable, on stdout alone)."
FormatOption = Annotated[str, typer.Option("--format", help=FORMAT_HELP)]
SINCE_HELP = "A duration back from now (2h, 7d) or an RFC 3339 time."


def fail(message: str, exit_code: int = 2) -> OperatorError:
    """`raise fail(...)`: printed by the CLI as one line, exit code 2 (bad input or configuration)."""
    return OperatorError(message, exit_code=exit_code)


def output_format(value: str) -> OutputFormat:
    try:
        return OutputFormat(value.strip().lower())
    except ValueError:
        raise fail(f"--format {value!r}: use table or json") from None


def instant(text: str, option: str, *, now: datetime | None = None) -> datetime:
    """`now`, RFC 3339, or a duration back from now — the one meaning of --since/--until/--at everywhere."""
    try:
        return parse_instant(text, option, now=now)
    except TimeParseError as exc:
        raise fail(str(exc)) from None


def duration(text: str, option: str) -> timedelta:
    try:
        return parse_duration(text, option)
    except TimeParseError as exc:
        raise fail(str(exc)) from None


def write_json(document: Any) -> None:
    """One JSON document on stdout (datetimes as RFC 3339 UTC, dataclasses as objects)."""
    options = (
        orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS
        | orjson.OPT_SERIALIZE_NUMPY
    )
    sys.stdout.write(orjson.dumps(document, option=options, default=_fallback).decode() + "\n")
    sys.stdout.flush()


def _fallback(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
