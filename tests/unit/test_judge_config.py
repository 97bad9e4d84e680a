"""Rubric files, sampling rules, redaction and review-file labels: what users write, and the errors they get."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzers.judge.redaction import Redactor
from analyzers.judge.review import STRATA, ReviewError, allocate, parse_labels
from analyzers.judge.rubrics import RubricError, ScoreType, load_rubric, load_rubrics
from analyzers.judge.rules import RulesError, parse_rules


def test_builtin_rubrics_cover_the_three_score_types() -> None:
    rubrics = load_rubrics()
    assert rubrics["helpfulness"].score_type == ScoreType.SCALE
    assert rubrics["groundedness"].score_type == ScoreType.PASS_FAIL
    assert rubrics["refusal-appropriateness"].score_type == ScoreType.LABELS
    messages = rubrics["helpfulness"].render(
        input_text="Where is my order?", output_text="It ships today.", app="shop", feature="answer",
        metadata={"locale": "de", "tier": "pro"},
    )
    assert "It ships today." in messages[1]["content"] and "locale: de" in messages[1]["content"]
    assert messages[0]["content"].endswith('"reason": "<one short sentence>"}')


def test_rubric_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    bad_var = tmp_path / "a.yaml"
    bad_var.write_text("name: a\nversion: 1\nscore: {type: pass_fail}\nsystem: s\ntemplate: '{{outptu}}'\n")
    with pytest.raises(RubricError, match=r"a\.yaml: unknown template variable \{\{outptu\}\}"):
        load_rubric(bad_var)
    no_output = tmp_path / "b.yaml"
    no_output.write_text("name: b\nversion: 1\nscore: {type: pass_fail}\nsystem: s\ntemplate: '{{input}}'\n")
    with pytest.raises(RubricError, match="never shows the output"):
        load_rubric(no_output)
    bad_scale = tmp_path / "c.yaml"
    bad_scale.write_text(
        "name: c\nversion: 0\nscore: {type: scale, min: 5, max: 1}\nsystem: s\ntemplate: '{{output}}'\n"
    )
    with pytest.raises(RubricError, match=r"c\.yaml: .*version.*score"):
        load_rubric(bad_scale)


def test_rules_file_errors_point_at_the_rule() -> None:
    rules = parse_rules(
        {"rules": [{"name": "a", "rubric": "helpfulness", "rate": 0.1, "filters": {"app": "x", "status": "ok"}}]},
        "rules.yaml",
    )
    condition, params = rules.rules[0].sql_condition()
    assert "MD5" in condition and params["f_app"] == ["x"] and params["f_status"] == ["ok"]
    with pytest.raises(RulesError, match=r"rules\.yaml: rule #2 \(b\)\.rate"):
        parse_rules([{"name": "a", "rubric": "h", "rate": 0.1}, {"name": "b", "rubric": "h", "rate": 2}], "rules.yaml")
    with pytest.raises(RulesError, match=r"rule #1 \(a\)\.filters\.colour"):
        parse_rules([{"name": "a", "rubric": "h", "rate": 0.1, "filters": {"colour": "red"}}], "rules.yaml")
    with pytest.raises(RulesError, match="uses rubric 'nope'"):
        parse_rules([{"name": "a", "rubric": "nope", "rate": 0.1}], "r").check_rubrics(["helpfulness"], "r")


def test_redaction_masks_emails_phones_and_keys_but_not_ordinary_numbers() -> None:
    redact = Redactor()
    text = (
        "Mail jane.doe+shop@example.co.uk or call +1 (415) 555-0134. key sk-proj-abcdefghijklmnop1234 "
        "api_key=ZXCVBNMASDFGHJKL order 12345, on 2026-11-20, total $1,299.00, version 1.2.3"
    )
    out = redact(text)
    assert "jane.doe" not in out and "[EMAIL]" in out
    assert "555-0134" not in out and "[PHONE]" in out
    assert "sk-proj" not in out and "ZXCVBNM" not in out and "api_key=[API_KEY]" in out
    assert "order 12345" in out and "2026-11-20" in out and "$1,299.00" in out and "1.2.3" in out
    assert Redactor(emails=False, phones=False, api_keys=False)(text) == text
    assert Redactor(patterns=[r"ACME-\d+"])("ticket ACME-42") == "ticket [REDACTED]"
    with pytest.raises(ValueError, match="not a valid regex"):
        Redactor(patterns=["("])


def test_review_allocation_is_stratified_and_spills_unfilled_slots() -> None:
    candidates = {
        "low_score": ["a", "b", "c", "d", "e"],
        "high_cost": ["a", "f", "g", "h", "i"],  # "a" is already taken as a low score
        "error": ["j"],
        "new_prompt_version": [],
        "random": [f"r{i}" for i in range(20)],
    }
    picks = allocate(candidates, 10)
    strata = [s for _, s in picks]

    assert len(picks) == 10 and len({e for e, _ in picks}) == 10
    assert strata.count("low_score") == 2 and strata.count("high_cost") == 2 and strata.count("error") == 1
    assert strata.count("random") == 5  # its 2 plus the 3 slots error and new_prompt_version could not fill
    assert set(strata) <= set(STRATA)


def test_review_labels_are_validated_per_rubric_with_file_and_line() -> None:
    rubrics = load_rubrics()
    rows = [
        (2, {"event_id": "e1", "rubric": "helpfulness", "human_score": "2", "notes": "off-topic"}),
        (3, {"event_id": "e2", "rubric": "groundedness", "human_label": "PASS"}),
        (4, {"event_id": "e3", "rubric": "helpfulness", "human_score": "", "human_label": ""}),
        (5, {"event_id": "e4", "rubric": "helpfulness", "human_score": "5", "is_failure": "yes"}),
    ]
    labels, unlabeled = parse_labels(rows, rubrics=rubrics, source="r.csv")
    assert unlabeled == 1
    assert [(x.event_id, x.score, x.is_failure) for x in labels] == [("e1", 2.0, True), ("e2", 1.0, False),
                                                                       ("e4", 5.0, True)]
    bad = [
        (2, {"event_id": "e1", "rubric": "helpfulness", "human_score": "7"}),
        (3, {"event_id": "e2", "rubric": "refusal-appropriateness", "human_label": "dunno"}),
        (4, {"event_id": "", "rubric": "helpfulness", "human_score": "3"}),
        (5, {"event_id": "e5", "rubric": "nope", "human_score": "3"}),
    ]
    with pytest.raises(ReviewError) as info:
        parse_labels(bad, rubrics=rubrics, source="r.csv")
    message = str(info.value)
    assert "4 row(s) of r.csv cannot be imported (nothing was stored)" in message
    assert "r.csv:2: human_score must be an integer from 1 to 5, got '7'" in message
    assert "r.csv:3: human_label must be one of" in message
    assert "r.csv:4: event_id is empty" in message and "r.csv:5: unknown rubric 'nope'" in message


def test_plugin_builds_the_quality_analyzer_always_and_the_judging_job_when_a_judge_is_configured(
    tmp_path: Path,
) -> None:
    from analyzers.findings import AlertName
    from analyzers.judge.plugin import build_analyzers
    from llmpulse.settings import Settings

    (only_quality,) = build_analyzers(Settings(judge_base_url=None))
    assert only_quality.alertnames == (AlertName.QUALITY_REGRESSION, AlertName.JUDGE_DISAGREEMENT)

    key = tmp_path / "key"
    key.write_text("sk-test-123\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: a, rubric: groundedness, rate: 0.2, max_per_hour: 10}\n")
    job, quality = build_analyzers(
        Settings(judge_base_url="http://127.0.0.1:9/v1", judge_api_key_file=key, judge_rules_file=rules)
    )
    assert (job.name, job.alertnames, quality.name) == ("judge", (), "judge_quality")

    rules.write_text("rules:\n  - {name: a, rubric: nope, rate: 0.2}\n")
    with pytest.raises(RulesError, match=r"rules\.yaml: rule 'a' uses rubric 'nope'"):
        build_analyzers(Settings(judge_base_url="http://127.0.0.1:9/v1", judge_rules_file=rules))
