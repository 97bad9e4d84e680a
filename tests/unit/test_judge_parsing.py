"""Reading judge answers: JSON found wherever the model put it, verdicts checked against the rubric."""

from __future__ import annotations

import pytest

from analyzers.judge.parsing import VerdictError, extract_json_object, fix_up_message, parse_verdict
from analyzers.judge.rubrics import load_rubrics

RUBRICS = load_rubrics()
HELP, GROUND, REFUSAL = RUBRICS["helpfulness"], RUBRICS["groundedness"], RUBRICS["refusal-appropriateness"]


@pytest.mark.parametrize(
    "text",
    [
        '{"score": 4, "reason": "ok"}',
        '```json\n{"score": 4, "reason": "ok"}\n```',
        'Sure! Here is my verdict: {"score": 4, "reason": "a {brace} in text"} Let me know.',
        '{"score": "4", "reason": "ok"}',
        '{"score": 4.0}',
    ],
)
def test_scale_verdicts_are_found_in_the_usual_wrappings(text: str) -> None:
    assert parse_verdict(text, HELP).score == 4.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("I would give it a four.", "no JSON object"),
        ('{"score": 4, "reason": "fine"', "malformed JSON"),
        ("[4]", "not a JSON object"),
        ('{"rating": 4}', 'no "score"'),
        ('{"score": 9}', "from 1 to 5"),
        ('{"score": "great"}', "must be an integer"),
        ('{"score": true}', "must be an integer"),
    ],
)
def test_unusable_scale_answers_say_why(text: str, message: str) -> None:
    with pytest.raises(VerdictError, match=message):
        parse_verdict(text, HELP)


def test_pass_fail_and_labels() -> None:
    assert parse_verdict('{"verdict": "PASS"}', GROUND).label == "pass"
    assert parse_verdict('{"verdict": "fail", "reason": "made up a date"}', GROUND).score == 0.0
    with pytest.raises(VerdictError, match='"pass" or "fail"'):
        parse_verdict('{"verdict": "maybe"}', GROUND)
    verdict = parse_verdict('{"label": "Refused_Unnecessarily"}', REFUSAL)
    assert verdict.label == "refused_unnecessarily" and verdict.score == 0.0
    assert parse_verdict('{"label": "answered_appropriately"}', REFUSAL).score == 1.0
    with pytest.raises(VerdictError, match="must be one of"):
        parse_verdict('{"label": "meh"}', REFUSAL)


def test_the_fix_up_request_repeats_the_format() -> None:
    try:
        extract_json_object("no json here")
    except VerdictError as exc:
        message = fix_up_message(exc, HELP)
    assert "no JSON object" in message and '"score": <integer from 1 to 5>' in message
