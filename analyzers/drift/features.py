"""The features drift compares, each defined once with its SQL expression and its Python twin.

A `Window` is a group's LLM calls as columns named like the `events` table. The SQL expressions run in
ClickHouse over whole windows; the Python functions compute the same values from a `Window` (calibration,
benchmarks, tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzers.drift import descriptors as d

F64 = npt.NDArray[np.float64]
Window = Mapping[str, Sequence[Any]]  # column name -> values, one per call
SKIP = ""  # a categorical value that says "not applicable to this call" (refusal of a call with no output)

WINDOW_COLUMNS: tuple[str, ...] = (
    "event_id",
    "input_tokens",
    "output_tokens",
    "input_text",
    "output_text",
    "input_messages",
    "output_messages",
    "finish_reason",
    "model",
    "provider",
    "error_type",
    "metadata",
)


class Direction(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


class Kind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    direction: Direction
    kind: Kind
    sql: str  # value per event (numeric: Float64; categorical: String, '' = not applicable; text: column)
    python: Callable[[Window], Any]
    # Only compared where the feature declares (or the reference shows) a structured output format.
    needs_format: bool = False


def _col(name: str) -> Callable[[Window], Any]:
    return lambda w: list(w[name])


def _num(name: str) -> Callable[[Window], F64]:
    return lambda w: np.asarray(w[name], dtype=np.float64)


def _length(name: str) -> Callable[[Window], F64]:
    return lambda w: np.fromiter(map(len, w[name]), dtype=np.float64, count=len(w[name]))


def _or_none(name: str) -> Callable[[Window], list[str]]:
    return lambda w: [v or d.NONE for v in w[name]]


def _language(name: str, tail: bool = False) -> Callable[[Window], list[str]]:
    return lambda w: [d.language(t, tail) for t in w[name]]


def _refusal(w: Window) -> list[str]:
    return [SKIP if not t else ("yes" if d.is_refusal(t) else "no") for t in w["output_text"]]


def _attachments(w: Window) -> list[str]:
    return ["yes" if d.has_attachment(m) else "no" for m in w["input_messages"]]


def _tools(w: Window) -> list[str]:
    return [d.tool_name(md or {}, om) for md, om in zip(w["metadata"], w["output_messages"], strict=True)]


def _json_valid(w: Window) -> list[str]:
    return [SKIP if not t else ("valid" if d.is_valid_json(t) else "invalid") for t in w["output_text"]]


FEATURES: tuple[Feature, ...] = (
    Feature("input_tokens", Direction.INPUT, Kind.NUMERIC, "toFloat64(input_tokens)", _num("input_tokens")),
    Feature("input_chars", Direction.INPUT, Kind.NUMERIC, "toFloat64(lengthUTF8(input_text))",
            _length("input_text")),
    Feature("input_language", Direction.INPUT, Kind.CATEGORICAL, d.sql_language("input_text", tail=True),
            _language("input_text", tail=True)),
    Feature("input_attachments", Direction.INPUT, Kind.CATEGORICAL,
            f"if({d.sql_attachment('input_messages')}, 'yes', 'no')", _attachments),
    Feature("model", Direction.INPUT, Kind.CATEGORICAL, "toString(model)", _col("model")),
    Feature("provider", Direction.INPUT, Kind.CATEGORICAL, f"if(provider = '', '{d.NONE}', toString(provider))",
            _or_none("provider")),
    Feature("input_text", Direction.INPUT, Kind.TEXT, "input_text", _col("input_text")),
    Feature("output_tokens", Direction.OUTPUT, Kind.NUMERIC, "toFloat64(output_tokens)", _num("output_tokens")),
    Feature("output_chars", Direction.OUTPUT, Kind.NUMERIC, "toFloat64(lengthUTF8(output_text))",
            _length("output_text")),
    Feature("finish_reason", Direction.OUTPUT, Kind.CATEGORICAL,
            f"if(finish_reason = '', '{d.NONE}', toString(finish_reason))", _or_none("finish_reason")),
    Feature("refusal", Direction.OUTPUT, Kind.CATEGORICAL,
            f"multiIf(output_text = '', '', {d.sql_refusal('output_text')}, 'yes', 'no')", _refusal),
    Feature("error_type", Direction.OUTPUT, Kind.CATEGORICAL,
            f"if(error_type = '', '{d.NONE}', toString(error_type))", _or_none("error_type")),
    Feature("tool", Direction.OUTPUT, Kind.CATEGORICAL, d.sql_tool_name(), _tools),
    Feature("output_language", Direction.OUTPUT, Kind.CATEGORICAL, d.sql_language("output_text"),
            _language("output_text")),
    Feature("output_json_valid", Direction.OUTPUT, Kind.CATEGORICAL,
            f"multiIf(output_text = '', '', {d.sql_valid_json('output_text')}, 'valid', 'invalid')",
            _json_valid, needs_format=True),
    Feature("output_text", Direction.OUTPUT, Kind.TEXT, "output_text", _col("output_text")),
)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
NUMERIC: tuple[Feature, ...] = tuple(f for f in FEATURES if f.kind is Kind.NUMERIC)
CATEGORICAL: tuple[Feature, ...] = tuple(f for f in FEATURES if f.kind is Kind.CATEGORICAL)
TEXT: tuple[Feature, ...] = tuple(f for f in FEATURES if f.kind is Kind.TEXT)
# A feature whose reference outputs are at least this share valid JSON is treated as declaring JSON.
AUTO_FORMAT_SHARE = 0.9
