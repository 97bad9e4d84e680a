"""Robust reading of a judge's answer: find the JSON object, check it against the rubric's score type.

Models wrap JSON in prose or code fences, use "4" for 4, or answer in capitals; all of that is accepted. What
is not a usable verdict raises `VerdictError` with a message that is sent back to the judge once (the fix-up
retry) and otherwise stored with the parse failure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from analyzers.judge.rubrics import Rubric, ScoreType, score_value

_FENCE: Final = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_MAX_REASON: Final = 1000


class VerdictError(ValueError):
    """The answer holds no usable verdict; the message says what was wrong (it goes back to the judge)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float
    label: str
    reason: str


def _balanced_objects(text: str) -> list[str]:
    """Every top-level {...} span, honouring JSON strings (braces inside strings don't count)."""
    spans = []
    depth = 0
    start = -1
    in_string = False
    escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = depth > 0
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in `text`: the whole text, a fenced block, or a {...} inside prose."""
    stripped = text.strip()
    if not stripped:
        raise VerdictError("the answer was empty")
    candidates = [stripped]
    candidates.extend(m.group(1).strip() for m in _FENCE.finditer(stripped))
    candidates.extend(_balanced_objects(stripped))
    saw_json = False
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        saw_json = True
        if isinstance(value, dict):
            return value
    if saw_json:
        raise VerdictError("the answer is JSON but not a JSON object")
    if "{" in stripped:
        raise VerdictError("the answer contains malformed JSON (it could not be parsed)")
    raise VerdictError("the answer contains no JSON object")


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.0+)?\s*", value):
        return int(float(value))
    return None


def _reason(obj: dict[str, Any]) -> str:
    reason = obj.get("reason", obj.get("explanation", ""))
    return str(reason)[:_MAX_REASON] if reason is not None else ""


def parse_verdict(text: str, rubric: Rubric) -> Verdict:
    obj = extract_json_object(text)
    if rubric.score_type == ScoreType.SCALE:
        if "score" not in obj:
            raise VerdictError('the JSON object has no "score" field')
        score = _integer(obj["score"])
        if score is None:
            raise VerdictError(f'"score" must be an integer, got {obj["score"]!r}')
        if not rubric.scale_min <= score <= rubric.scale_max:
            raise VerdictError(f'"score" must be from {rubric.scale_min} to {rubric.scale_max}, got {score}')
        value, label = score_value(rubric, score=score)
        return Verdict(value, label, _reason(obj))
    if rubric.score_type == ScoreType.PASS_FAIL:
        raw = obj.get("verdict")
        if raw is None:
            raise VerdictError('the JSON object has no "verdict" field')
        verdict = str(raw).strip().lower()
        if isinstance(raw, bool):
            verdict = "pass" if raw else "fail"
        if verdict in ("passed", "yes", "true"):
            verdict = "pass"
        elif verdict in ("failed", "no", "false"):
            verdict = "fail"
        if verdict not in ("pass", "fail"):
            raise VerdictError(f'"verdict" must be "pass" or "fail", got {raw!r}')
        value, label = score_value(rubric, label=verdict)
        return Verdict(value, label, _reason(obj))
    raw_label = obj.get("label")
    if raw_label is None:
        raise VerdictError('the JSON object has no "label" field')
    wanted = {name.lower(): name for name in rubric.labels}
    name = wanted.get(str(raw_label).strip().lower())
    if name is None:
        raise VerdictError(f'"label" must be one of {", ".join(rubric.labels)}, got {raw_label!r}')
    value, label = score_value(rubric, label=name)
    return Verdict(value, label, _reason(obj))


def fix_up_message(error: VerdictError, rubric: Rubric) -> str:
    """The one follow-up sent after an unusable answer."""
    return f"Your reply could not be used: {error}. {rubric.format_instructions()}"
