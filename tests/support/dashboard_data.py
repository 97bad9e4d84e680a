"""The data set the dashboard panel test queries: simulated traffic after the judge, a human review and the
analyzers ran over it, everything stamped in simulated time.

    data = build_dashboard_data(client, work_dir)       # client: a migrated, empty database
    data.time_range                                      # the simulated window (what Grafana would show)

What goes in, through the code paths a user's deployment runs:
- a day and a bit of simulated traffic with incidents, through the real validator and writer;
- LLM-judge passes every few hours (two rules: the 1-5 helpfulness rubric and the pass/fail groundedness
  rubric) against the fake OpenAI-compatible judge server, each pass stamped at its simulated moment;
- a human review round trip per rubric: the review sample exported to CSV, filled in by a simulated
  reviewer, and imported (`llmpulse review export` / `import` do the same);
- the analyzers as of moments inside and after each incident (so findings fire and resolve), plus the drift
  analyzer on its schedule over the input-drift incident (its persistence needs consecutive runs); the latest
  incident is left without a run after it, so a finding is still firing at the end of the window.

Determinism: the window always ends at the same point of the simulator's weekly traffic curve (the latest
Wednesday 06:00 UTC), so traffic, incident schedule, samples and verdicts are identical on every run, whatever
the wall-clock time; only the absolute dates move. That schedule ends with a runaway trace (04:45-05:25),
the incident whose detection does not depend on how busy the hour is.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from pydantic import SecretStr

from analyzers.findings import Analyzer
from analyzers.judge.config import build_judge_parts, build_redactor, build_rubrics
from analyzers.judge.review import (
    parse_labels,
    read_review_file,
    select_review_sample,
    store_labels,
    write_review_files,
)
from analyzers.judge.rubrics import Rubric, ScoreType
from analyzers.judge.store import JudgeStore
from analyzers.scheduler import AnalyzerScheduler
from collector.pricing import PriceCatalog
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator, RawItem
from dashboards.macros import TimeRange
from llmpulse.settings import Settings
from llmpulse.simulate import SimulationConfig, generate, ground_truth
from tests.support.fake_judge import FakeJudge

HOURS = 30
RATE_PER_MINUTE = 25.0
SEED = 11
# The end of the simulated window: a fixed point of the weekly traffic curve (see the module docstring).
END_WEEKDAY = 2  # Wednesday
END_HOUR_UTC = 6
# Incidents the analyzers are run around (each: two runs inside it so it fires, one after it so it resolves).
ANALYZED_KINDS = ("provider_outage", "error_burst", "latency_regression", "cost_spike", "runaway_trace",
                  "traffic_absent", "quality_drop")
# The drift analyzer's schedule (Settings default): its persistence looks back for the previous run's verdict.
DRIFT_EVERY = timedelta(minutes=Settings.model_fields["drift_interval_minutes"].default)
JUDGE_PASS = timedelta(hours=3)
JUDGED_PER_RULE_PER_PASS = 12
JUDGE_RULES = """\
rules:
  - name: answers-helpfulness
    rubric: helpfulness
    rate: 0.05
    filters: {status: ok}
  - name: answers-groundedness
    rubric: groundedness
    rate: 0.05
    filters: {app: [support-bot, search-rag], status: ok}
"""
REVIEWED_PER_RUBRIC = 30
REVIEWER = "dashboard-test-reviewer"


@dataclass
class DashboardData:
    config: SimulationConfig
    time_range: TimeRange
    event_id: str  # a judged event with a trace, for the Event & trace dashboard
    trace_id: str
    notes: list[str] = field(default_factory=list)


def anchored_end(now: datetime) -> datetime:
    """The latest Wednesday 06:00 UTC at or before `now`."""
    now = now.astimezone(UTC)
    end = now.replace(hour=END_HOUR_UTC, minute=0, second=0, microsecond=0)
    end -= timedelta(days=(end.weekday() - END_WEEKDAY) % 7)
    return end if end <= now else end - timedelta(days=7)


def simulation_config(now: datetime | None = None) -> SimulationConfig:
    end = anchored_end(now or datetime.now(UTC))
    return SimulationConfig(start=end - timedelta(hours=HOURS), duration=timedelta(hours=HOURS), seed=SEED,
                            rate_per_minute=RATE_PER_MINUTE, text=True)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def load_events(client: Client, config: SimulationConfig) -> int:
    validator = EventValidator(prices=PriceCatalog())
    sink = ClickHouseEventStore(client)
    total, chunk = 0, list[dict[str, Any]]()

    def flush() -> None:
        result = validator.validate([RawItem(i, e, None) for i, e in enumerate(chunk)], source="test", source_ref="sim")
        assert not result.rejections, result.rejections[:3]
        sink.write_events(result.batch)

    for event in generate(config):
        chunk.append(event)
        if len(chunk) >= 10_000:
            flush()
            total += len(chunk)
            chunk = []
    if chunk:
        flush()
        total += len(chunk)
    return total


def judge_traffic(client: Client, config: SimulationConfig, settings: Settings) -> int:
    """Judge passes every few hours over the window (the scheduled judge job runs the same runner, more often),
    each stamped at the simulated moment it ran."""
    parts = build_judge_parts(settings)
    store = JudgeStore(client)
    scored = 0
    moment = config.start
    while moment < config.end:
        until = min(moment + JUDGE_PASS, config.end)
        report = parts.runner(store, clock=_fixed(until)).run(
            since=moment, until=until, trigger="scheduler", limit_per_rule=JUDGED_PER_RULE_PER_PASS
        )
        scored += int(report.total("scored"))
        moment = until
    return scored


def _fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def _human_verdict(rubric: Rubric, row: dict[str, str], index: int) -> dict[str, str]:
    """A reviewer who agrees with the judge except on every fourth row (one step apart there), and finds the
    replies the judge did not score good."""
    judged = row["judge_score"] != ""
    disagree = index % 4 == 3
    if rubric.score_type == ScoreType.SCALE:
        score = int(float(row["judge_score"])) if judged else rubric.good_at_least
        if judged and disagree:
            score = score - 1 if score > rubric.scale_min else score + 1
        return {"human_score": str(score)}
    if rubric.score_type == ScoreType.PASS_FAIL:
        passed = float(row["judge_score"]) >= 1 if judged else True
        return {"human_label": "pass" if passed != (judged and disagree) else "fail"}
    return {"human_label": rubric.labels[0]}


def review_round_trip(client: Client, config: SimulationConfig, settings: Settings, work_dir: Path,
                      rubric_names: tuple[str, ...]) -> int:
    """`llmpulse review export`, a reviewer filling in the CSV, `llmpulse review import`, per rubric."""
    rubrics = build_rubrics(settings)
    stored = 0
    for name in rubric_names:
        items = select_review_sample(
            client, rubric=rubrics[name], since=config.start, until=config.end, n=REVIEWED_PER_RUBRIC,
            link_template=settings.review_link_template, redactor=build_redactor(settings),
        )
        csv_path, _ = write_review_files(items, work_dir / "review", f"review-{name}-{config.end:%Y%m%d-%H%M}")
        with csv_path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert rows, f"the review export of {name} is empty"
        for index, row in enumerate(rows):
            row.update(_human_verdict(rubrics[name], row, index), reviewer=REVIEWER)
        with csv_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        labels, unlabeled = parse_labels(read_review_file(csv_path), rubrics=rubrics, source=str(csv_path),
                                         labeled_at=config.end)
        assert not unlabeled
        store_labels(client, labels)
        stored += len(labels)
    return stored


def _analysis_moments(config: SimulationConfig) -> dict[datetime, set[str]]:
    """When each kind of analyzer runs: "incidents" (every analyzer but drift) inside and after each incident,
    "drift" every DRIFT_EVERY, as the scheduler runs it, around the input drift."""
    truth = ground_truth(config)
    moments: dict[datetime, set[str]] = {}
    analyzed = [i for i in truth if i["kind"] in ANALYZED_KINDS]
    last_start = max(i["start"] for i in analyzed)
    for incident in analyzed:
        start, end = _utc(incident["start"]), _utc(incident["end"])
        runs = [start + timedelta(minutes=15), start + timedelta(minutes=25)]
        # The latest incident gets no run after it: its finding is still firing at the end of the window.
        if incident["start"] != last_start:
            runs.append(end + timedelta(minutes=20))
        for moment in runs:
            moments.setdefault(moment, set()).add("incidents")
    for incident in (i for i in truth if i["kind"] == "input_drift"):
        # From a run before the drift (a clean verdict) to the first whose whole window is after it.
        moment, end = _utc(incident["start"]) - timedelta(minutes=15), _utc(incident["end"])
        while True:
            moments.setdefault(moment, set()).add("drift")
            if moment - DRIFT_EVERY >= end:
                break
            moment += DRIFT_EVERY
    return {m: kinds for m, kinds in sorted(moments.items()) if m <= config.end}


def run_analyzers(client: Client, config: SimulationConfig, settings: Settings) -> None:
    scheduler = AnalyzerScheduler(client, settings)
    groups: dict[str, list[Analyzer]] = {"incidents": [], "drift": []}
    for analyzer in scheduler.analyzers:
        groups["drift" if analyzer.name == "drift" else "incidents"].append(analyzer)
    assert groups["drift"], "the drift analyzer plugin did not load"
    for moment, kinds in _analysis_moments(config).items():
        for kind in sorted(kinds, reverse=True):  # "incidents" before "drift"
            reports = scheduler.run_analyzers(groups[kind], moment)
            failed = [f"{r.analyzer}: {r.error}" for r in reports if r.error]
            assert not failed, f"analyzers failed at {moment}: {failed}"


def build_dashboard_data(client: Client, work_dir: Path, *, now: datetime | None = None) -> DashboardData:
    config = simulation_config(now)
    notes: list[str] = []
    timings: list[str] = []
    clock = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings.append(f"{what} {now - clock:.1f}s")
        clock = now

    loaded = load_events(client, config)
    assert loaded > 10_000, loaded
    lap(f"{loaded} events")
    rules = work_dir / "judge-rules.yaml"
    rules.write_text(JUDGE_RULES, encoding="utf-8")
    with FakeJudge() as judge:
        settings = Settings(judge_base_url=judge.base_url, judge_api_key=SecretStr("test"), judge_rules_file=rules,
                            judge_max_per_hour=None, judge_max_usd_per_day=None, judge_concurrency=8,
                            analyzers_rules_file=None)
        scored = judge_traffic(client, config, settings)
    lap(f"{scored} judgments")
    labelled = review_round_trip(client, config, settings, work_dir, ("helpfulness", "groundedness"))
    lap(f"{labelled} review labels")
    # The analyzers without the judge job: the judgments above are what the quality analyzer reads.
    run_analyzers(client, config, settings.model_copy(update={"judge_base_url": None}))
    lap("analyzers")
    fired = client.query("SELECT alertname, countIf(state = 'firing'), count() FROM findings FINAL "
                         "WHERE fired_at IS NOT NULL GROUP BY alertname ORDER BY alertname").result_rows
    notes.append("findings fired (firing at the end): " + ", ".join(f"{a} x{n} ({f})" for a, f, n in fired))
    notes.append("set-up: " + ", ".join(timings))
    event_id, trace_id = client.query(
        "SELECT e.event_id, e.trace_id FROM events AS e WHERE e.trace_id != '' AND e.event_id IN "
        "(SELECT event_id FROM judgments WHERE status = 'scored') ORDER BY e.start_time LIMIT 1"
    ).result_rows[0]
    return DashboardData(config, TimeRange(config.start, config.end + timedelta(minutes=1)), str(event_id),
                         str(trace_id), notes)
