"""Quality regression and judge calibration end to end on simulated traffic, judged by a real server process.

The fake judge scores by a rule the simulator knows: replies whose metadata says `sim_quality: bad` (the
quality_drop incident's degraded outputs, shown to the judge through the rubric's {{metadata}}) score 1-2,
others mostly 4-5. The analyzers run the way the scheduler runs them: a judge job, then the quality analyzer,
every 30 simulated minutes.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from clickhouse_connect.driver.client import Client

from analyzers.findings import AlertName, AnalysisContext, Observation
from analyzers.judge.config import JudgeJob, JudgeParts
from analyzers.judge.quality import GroupKey, QualityAnalyzer, QualityConfig
from analyzers.judge.redaction import Redactor
from analyzers.judge.review import (
    golden_examples,
    parse_labels,
    read_review_file,
    select_review_sample,
    store_labels,
    write_review_files,
)
from analyzers.judge.rules import JudgeRules, RuleFilters, SamplingRule
from llmpulse.settings import Settings
from llmpulse.simulate import SimulationConfig, generate, ground_truth
from tests.integration.test_judge_runner import RUBRICS, build_runner, migrated_database, store_events
from tests.support.fake_judge import FakeJudge

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 16, tzinfo=UTC)
RULES = JudgeRules(rules=(
    SamplingRule(name="support", rubric="helpfulness", rate=0.2,
                 filters=RuleFilters(app=("support-bot",), status=("ok",))),
    SamplingRule(name="others", rubric="helpfulness", rate=0.05,
                 filters=RuleFilters(app=("code-assistant", "search-rag"), status=("ok",))),
))
QUALITY = QualityConfig(window=timedelta(hours=3), baseline=timedelta(days=7), min_samples=25, min_effect=0.2,
                        alpha=1e-4, calibration_min_overlap=20, kappa_floor=0.4)


@pytest.fixture(scope="module")
def judge() -> Iterator[FakeJudge]:
    with FakeJudge() as server:
        yield server


def _store_simulation(client: Client, config: SimulationConfig) -> None:
    batch = []
    for event in generate(config):
        batch.append(event)
        if len(batch) == 20_000:
            store_events(client, batch)
            batch = []
    store_events(client, batch)


@pytest.fixture(scope="module")
def incident_run(chdb_url: str) -> Iterator[tuple[Client, SimulationConfig]]:
    """A day with the default incidents (one quality_drop among them), 10 events/min on average."""
    client = migrated_database(chdb_url)
    config = SimulationConfig(start=START, duration=timedelta(days=1), seed=3, rate_per_minute=10)
    _store_simulation(client, config)
    yield client, config
    client.command(f"DROP DATABASE IF EXISTS `{client.database}`")


def _job(client: Client, judge: FakeJudge) -> JudgeJob:
    runner = build_runner(client, judge, RULES, concurrency=4)
    parts = JudgeParts(
        settings=Settings(), rubrics=RUBRICS, rules=RULES, client=runner.client,  # type: ignore[arg-type]
        breaker=runner.breaker, cost_model=runner.cost_model, redactor=runner.redactor, runner_config=runner.config,
    )
    return JudgeJob(parts, lookback=timedelta(hours=2))


def test_quality_drop_is_found_in_the_first_run_with_enough_samples_and_nothing_else_fires(
    incident_run: tuple[Client, SimulationConfig], judge: FakeJudge
) -> None:
    client, config = incident_run
    (drop,) = [t for t in ground_truth(config) if t["kind"] == "quality_drop"]
    drop_start = datetime.fromisoformat(drop["start"].replace("Z", "+00:00"))
    drop_end = datetime.fromisoformat(drop["end"].replace("Z", "+00:00"))
    new_version = drop["labels"]["prompt_version"]
    job, quality = _job(client, judge), QualityAnalyzer(QUALITY, RUBRICS)

    fired: list[Observation] = []
    first_compared: datetime | None = None
    first_fired: datetime | None = None
    at = START + timedelta(hours=6)
    while at <= config.end:
        job.run(AnalysisContext(client=client, at=at, rules=None))
        result = quality.run(AnalysisContext(client=client, at=at, rules=None))
        regressions = [o for o in result.observations if o.alertname == AlertName.QUALITY_REGRESSION]
        fired.extend(regressions)
        verdicts, _ = quality.regression_verdicts(client, at)
        compared = [v for v in verdicts if v.comparison.group.prompt_version == new_version]
        if compared and first_compared is None:
            first_compared = at
            # The first run that has enough scores of the new prompt version already sees the regression.
            assert all(v.regressed and v.comparison.replaced for v in compared), compared
        if regressions and first_fired is None:
            first_fired = at
        at += timedelta(minutes=30)

    assert first_compared is not None and drop_start < first_compared <= drop_end + QUALITY.window
    assert first_fired == first_compared
    # Only the incident's slice fired: support-bot/answer under the new prompt version.
    assert {(o.labels["app"], o.labels["feature"], o.labels["prompt_version"]) for o in fired} == {
        ("support-bot", "answer", new_version)
    }
    assert all(drop_start < o.at <= drop_end + QUALITY.window for o in fired)
    worst = min(fired, key=lambda o: o.details["cliffs_delta"])
    assert worst.value is not None and worst.baseline is not None and worst.value < worst.baseline
    assert worst.details["reference"]["prompt_version"] == "v12"
    assert "compared" not in worst.summary and "it replaced" in worst.summary


def test_a_clean_week_raises_no_quality_regression(chdb_url: str, judge: FakeJudge) -> None:
    client = migrated_database(chdb_url)
    config = SimulationConfig(start=START, duration=timedelta(days=7), seed=11, rate_per_minute=2, clean=True)
    _store_simulation(client, config)
    # The support bot's chat features, judged densely enough that most 3h windows hold min_samples scores.
    rules = JudgeRules(rules=(SamplingRule(name="support", rubric="helpfulness", rate=0.5,
                                           filters=RuleFilters(app=("support-bot",), status=("ok",))),))
    build_runner(client, judge, rules, concurrency=4).run(since=config.start, until=config.end)
    quality = QualityAnalyzer(QUALITY, RUBRICS)

    compared: set[GroupKey] = set()
    comparisons = 0
    at = START + timedelta(hours=12)
    while at <= config.end:
        verdicts, _ = quality.regression_verdicts(client, at)
        assert [v for v in verdicts if v.regressed] == [], at
        comparisons += len(verdicts)
        compared.update(v.comparison.group for v in verdicts)
        at += timedelta(hours=2)
    result = quality.run(AnalysisContext(client=client, at=config.end, rules=None))
    assert [o for o in result.observations if o.alertname == AlertName.QUALITY_REGRESSION] == []
    client.command(f"DROP DATABASE IF EXISTS `{client.database}`")

    # The week was really tested, not skipped for lack of scores.
    assert comparisons >= 60 and len(compared) >= 3, (comparisons, compared)


def _fill(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_review_export_import_calibration_and_golden_set(
    incident_run: tuple[Client, SimulationConfig], judge: FakeJudge, tmp_path: Path
) -> None:
    client, config = incident_run
    since = config.start + timedelta(hours=12)
    build_runner(client, judge, RULES).run(since=since, until=config.end)  # no-op if already judged

    items = select_review_sample(client, rubric=RUBRICS["helpfulness"], since=since, until=config.end, n=150,
                                 link_template="https://grafana/d/x?event={event_id}&trace={trace_id}",
                                 redactor=Redactor())
    csv_path, jsonl_path = write_review_files(items, tmp_path, "review")

    strata = {item["stratum"] for item in items}
    assert len(items) == 150 and strata == {"low_score", "high_cost", "error", "new_prompt_version", "random"}
    assert all(item["link"].startswith("https://grafana/d/x?event=") for item in items)
    assert all(item["prompt_version"] == "v13" for item in items if item["stratum"] == "new_prompt_version")
    assert all(float(item["judge_score"]) < 4 for item in items if item["stratum"] == "low_score")
    assert len(jsonl_path.read_bytes().splitlines()) == 150
    quality = QualityAnalyzer(QUALITY, RUBRICS)

    def disagreement(now: datetime) -> list[Observation]:
        result = quality.run(AnalysisContext(client=client, at=now, rules=None))
        assert {"rubric": "helpfulness"} in list(result.evaluated or [])
        return [o for o in result.observations if o.alertname == AlertName.JUDGE_DISAGREEMENT]

    # Reviewers who mostly agree with the judge (one point off now and then): no finding.
    rows = [dict(r) for _, r in read_review_file(csv_path)]
    judged = [r for r in rows if r["judge_score"]]
    assert len(judged) >= 30
    for i, row in enumerate(judged):
        score = int(row["judge_score"])
        row.update(human_score=str(min(5, score + 1) if i % 7 == 0 else score), reviewer="ana",
                   notes="off-topic answer" if score <= 2 else "")
    _fill(tmp_path / "agree.csv", judged)
    labels, _ = parse_labels(read_review_file(tmp_path / "agree.csv"), rubrics=RUBRICS, source="agree.csv",
                             labeled_at=config.end - timedelta(hours=1))
    store_labels(client, labels)
    assert disagreement(config.end) == []

    # The same reviewer re-labels the same events independently of what the judge said: kappa collapses.
    for i, row in enumerate(judged):
        row["human_score"] = str(1 + (i * 7919) % 5)
    _fill(tmp_path / "disagree.csv", judged)
    labels, _ = parse_labels(read_review_file(tmp_path / "disagree.csv"), rubrics=RUBRICS,
                             source="disagree.csv", labeled_at=config.end - timedelta(minutes=30))
    store_labels(client, labels)
    (finding,) = disagreement(config.end)
    assert finding.labels == {"rubric": "helpfulness"} and finding.value is not None and finding.value < 0.4
    assert finding.details["n"] == len(judged) and finding.details["ci_low"] < finding.value

    golden = golden_examples(client, since=config.start, redactor=Redactor())
    failures = [r for r in judged if int(r["human_score"]) < 4]
    assert len(golden) == len(failures) and golden
    example = golden[0]
    assert set(example) >= {"event_id", "input", "bad_output", "label", "notes"}
    assert example["input"] and example["bad_output"] and example["label"] in {"1", "2", "3"}
    assert orjson.dumps(example)
