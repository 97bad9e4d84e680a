"""The judge against a real OpenAI-compatible server process and the real (embedded) ClickHouse.

The server is tests/support/fake_judge.py in a subprocess; it is scripted per test to be slow, rate-limited,
broken or talkative, and the assertions read what was stored and what the server was asked.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from analyzers.findings import AnalysisContext
from analyzers.judge.budget import Caps, JudgeCostModel
from analyzers.judge.client import BreakerState, CircuitBreaker, OpenAICompatibleClient
from analyzers.judge.config import JudgeJob, JudgeParts
from analyzers.judge.redaction import Redactor
from analyzers.judge.rubrics import load_rubrics
from analyzers.judge.rules import JudgeRules, RuleFilters, SamplingRule
from analyzers.judge.runner import JudgeRunner, RunnerConfig
from analyzers.judge.sampling import is_sampled, sample_sql_condition
from analyzers.judge.store import JudgeStore
from collector.pricing import PriceCatalog
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator, RawItem
from llmpulse.clickhouse import connect
from llmpulse.migrate import Retention, migrate
from llmpulse.settings import Settings
from tests.support.events import make_event
from tests.support.fake_judge import FakeJudge

pytestmark = pytest.mark.integration

RUBRICS = load_rubrics()
CATALOG = PriceCatalog()
SINCE = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
UNTIL = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
ALL = JudgeRules(rules=(SamplingRule(name="all", rubric="helpfulness", rate=1.0),))


@pytest.fixture(scope="module")
def judge() -> Iterator[FakeJudge]:
    with FakeJudge() as server:
        yield server


@pytest.fixture()
def fake(judge: FakeJudge) -> FakeJudge:
    judge.reset()
    return judge


def migrated_database(chdb_url: str) -> Client:
    client = connect(chdb_url, database=f"t_{uuid.uuid4().hex[:12]}")
    migrate(client, Retention(events_days=90, text_days=30, rejected_days=30))
    return client


@pytest.fixture(scope="module")
def judge_db(chdb_url: str) -> Iterator[Client]:
    client = migrated_database(chdb_url)
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{client.database}`")


@pytest.fixture()
def store_client(judge_db: Client) -> Client:
    """One migrated database for the module, emptied before each test (cheaper than migrating per test)."""
    for table in ("events", "judgments", "judge_runs", "review_labels"):
        judge_db.command(f"TRUNCATE TABLE IF EXISTS {table}")
    return judge_db


def store_events(client: Client, events: Sequence[dict[str, Any]]) -> None:
    result = EventValidator(prices=CATALOG).validate(
        (RawItem(i, e, None) for i, e in enumerate(events)), source="test", source_ref="judge"
    )
    assert not result.rejections, result.rejections[:3]
    ClickHouseEventStore(client).write_events(result.batch)


class Seconds:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def build_runner(
    client: Client,
    judge: FakeJudge,
    rules: JudgeRules = ALL,
    *,
    timeout_s: float = 0.3,
    max_retries: int = 2,
    breaker: CircuitBreaker | None = None,
    caps: Caps | None = None,
    concurrency: int = 4,
    sleeps: list[float] | None = None,
    base_url: str | None = None,
) -> JudgeRunner:
    breaker = breaker or CircuitBreaker(5, 60.0)
    recorded = sleeps if sleeps is not None else []

    def sleep(seconds: float) -> None:
        recorded.append(seconds)
        import time

        time.sleep(min(seconds, 0.3))

    http = OpenAICompatibleClient(
        base_url=base_url or judge.base_url, model="gpt-4o-mini", timeout_s=timeout_s, max_retries=max_retries,
        backoff_s=0.01, max_backoff_s=0.05, breaker=breaker, sleep=sleep,
    )
    return JudgeRunner(
        store=JudgeStore(client), client=http, breaker=breaker, rubrics=RUBRICS, rules=rules,
        cost_model=JudgeCostModel(CATALOG, "gpt-4o-mini", "openai"), redactor=Redactor(),
        config=RunnerConfig("gpt-4o-mini", "openai", concurrency=concurrency, global_caps=caps or Caps()),
    )


def judgments(client: Client, where: str = "1") -> list[dict[str, Any]]:
    result = client.query(f"SELECT * FROM judgments WHERE {where} ORDER BY event_id, judged_at")
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def test_sampled_events_are_scored_and_stored_with_judge_model_rubric_version_latency_and_cost(
    store_client: Client, fake: FakeJudge
) -> None:
    events = [make_event(i) for i in range(12)]
    for i in (1, 4):
        events[i]["metadata"] = {"sim_quality": "bad"}
    events.append(make_event(50, status="error", error_type="timeout", output=None))
    events.append(make_event(51, output=""))
    store_events(store_client, events)

    report = build_runner(store_client, fake).run(since=SINCE, until=UNTIL)

    rows = judgments(store_client)
    assert report.rules["all"].scored == 12 and report.rules["all"].no_output == 2
    assert len(rows) == 12 and {r["status"] for r in rows} == {"scored"}
    by_id = {r["event_id"]: r for r in rows}
    assert by_id["evt-000001"]["score"] in (1.0, 2.0) and by_id["evt-000004"]["score"] in (1.0, 2.0)
    assert all(3.0 <= by_id[f"evt-{i:06d}"]["score"] <= 5.0 for i in (0, 2, 3, 5, 6))
    row = by_id["evt-000000"]
    assert (row["judge_model"], row["rubric"], row["rubric_version"], row["score_type"]) == (
        "gpt-4o-mini", "helpfulness", 1, "scale")
    assert row["latency_ms"] > 0 and row["cost_usd"] > 0 and row["input_tokens"] > 0
    assert row["event_time"].replace(tzinfo=UTC) == datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
    assert row["app"] == "support-bot" and row["reason"]
    run = store_client.query("SELECT scored, no_output, spend_usd FROM judge_runs").result_rows
    assert run[0][0] == 12 and run[0][1] == 2 and run[0][2] == pytest.approx(sum(r["cost_usd"] for r in rows))

    # A second run finds nothing left to judge and asks the judge nothing.
    asked = fake.stats()["requests"]
    again = build_runner(store_client, fake).run(since=SINCE, until=UNTIL)
    assert again.rules["all"].candidates == 0 and fake.stats()["requests"] == asked


def test_texts_are_redacted_before_they_reach_the_judge(store_client: Client, fake: FakeJudge) -> None:
    store_events(store_client, [make_event(
        0, input="I am jane.doe@example.com, call me on +44 20 7946 0958",
        output="Use key sk-live-abcdefghijklmnopqrstu to log in.",
    )])

    build_runner(store_client, fake).run(since=SINCE, until=UNTIL)

    sent = str(fake.requests())
    assert "jane.doe@example.com" not in sent and "7946 0958" not in sent and "sk-live" not in sent
    assert "[EMAIL]" in sent and "[PHONE]" in sent and "[API_KEY]" in sent


def test_rate_limits_server_errors_and_a_slow_answer_are_retried_honouring_retry_after(
    store_client: Client, fake: FakeJudge
) -> None:
    store_events(store_client, [make_event(0)])
    fake.mode("ok", slow_s=0.6, retry_after="0.2")
    fake.script("429", "500", "slow")  # then ok; the client's timeout (0.3s) is shorter than slow (0.6s)
    sleeps: list[float] = []

    report = build_runner(store_client, fake, max_retries=3, concurrency=1, sleeps=sleeps).run(
        since=SINCE, until=UNTIL
    )

    (row,) = judgments(store_client)
    assert report.rules["all"].scored == 1 and row["status"] == "scored" and row["attempts"] == 4
    assert sleeps[0] >= 0.2  # Retry-After of the 429
    assert fake.stats()["by_behaviour"] == {"429": 1, "500": 1, "slow": 1, "ok": 1}


def test_a_judge_that_keeps_timing_out_is_recorded_as_an_error_not_a_score(
    store_client: Client, fake: FakeJudge
) -> None:
    store_events(store_client, [make_event(0)])
    fake.mode("slow", slow_s=0.5)

    report = build_runner(store_client, fake, timeout_s=0.2, max_retries=1).run(since=SINCE, until=UNTIL)

    (row,) = judgments(store_client)
    assert report.rules["all"].errors == 1
    assert (row["status"], row["error_kind"], row["attempts"], row["score"]) == ("error", "timeout", 2, None)


def test_malformed_and_non_json_answers_get_one_fix_up_request_then_count_as_parse_failures(
    store_client: Client, fake: FakeJudge
) -> None:
    store_events(store_client, [make_event(i) for i in range(4)])
    # Newest event first: evt-3 malformed then fixed; evt-2 prose twice; evt-1 fenced JSON; evt-0 garbage body.
    fake.script("malformed", "ok", "nonjson", "nonjson", "fenced", "garbage")

    report = build_runner(store_client, fake, concurrency=1, max_retries=0).run(since=SINCE, until=UNTIL)

    by_id = {r["event_id"]: r for r in judgments(store_client)}
    fixed, prose, fenced, garbage = (by_id[f"evt-{i:06d}"] for i in (3, 2, 1, 0))
    assert (fixed["status"], fixed["calls"]) == ("scored", 2) and fixed["score"] is not None
    assert (prose["status"], prose["calls"], prose["score"]) == ("parse_failure", 2, None)
    assert "no JSON object" in prose["error"] and prose["cost_usd"] > 0
    assert (fenced["status"], fenced["calls"]) == ("scored", 1)
    assert (garbage["status"], garbage["error_kind"]) == ("error", "bad_response")
    assert report.rules["all"].parse_failures == 1 and report.rules["all"].errors == 1
    # A parse failure is final (not re-asked every run); an error is retried by the next run.
    assert build_runner(store_client, fake).run(since=SINCE, until=UNTIL).rules["all"].candidates == 1


def test_hourly_cap_means_no_call_beyond_it_in_this_run_or_the_next(store_client: Client, fake: FakeJudge) -> None:
    store_events(store_client, [make_event(i) for i in range(20)])
    rules = JudgeRules(rules=(SamplingRule(name="capped", rubric="helpfulness", rate=1.0, max_per_hour=5),))

    report = build_runner(store_client, fake, rules).run(since=SINCE, until=UNTIL)

    assert fake.stats()["requests"] == 5
    assert report.rules["capped"].scored == 5 and report.rules["capped"].skipped_budget == 15
    assert "hourly_cap" in report.rules["capped"].stop_reason
    again = build_runner(store_client, fake, rules, caps=Caps(per_hour=100)).run(since=SINCE, until=UNTIL)
    assert fake.stats()["requests"] == 5 and again.rules["capped"].skipped_budget == 15


def test_daily_spend_cap_stops_calls_before_the_budget_is_exceeded(store_client: Client, fake: FakeJudge) -> None:
    store_events(store_client, [make_event(i) for i in range(40)])
    cap = 0.001

    report = build_runner(store_client, fake, caps=Caps(usd_per_day=cap)).run(since=SINCE, until=UNTIL)

    rows = judgments(store_client)
    spent = sum(r["cost_usd"] for r in rows)
    assert 0 < len(rows) < 40 and report.rules["all"].skipped_budget == 40 - len(rows)
    assert fake.stats()["requests"] == len(rows)  # every call that was started is accounted for
    assert spent <= cap
    assert "daily_spend_cap of all rules" in report.rules["all"].stop_reason


def test_circuit_breaker_opens_on_a_failing_judge_and_closes_after_a_good_probe(
    store_client: Client, fake: FakeJudge
) -> None:
    store_events(store_client, [make_event(i) for i in range(10)])
    clock = Seconds()
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=30.0, clock=clock)
    fake.mode("500")

    first = build_runner(store_client, fake, breaker=breaker, max_retries=0, concurrency=1).run(
        since=SINCE, until=UNTIL)

    assert fake.stats()["requests"] == 3  # then the breaker opened and nothing more was sent
    assert breaker.state == BreakerState.OPEN and first.breaker_opened == 1
    assert first.rules["all"].errors == 3 and first.rules["all"].skipped_breaker == 7
    assert first.rules["all"].stop_reason == "breaker_open"

    still_open = build_runner(store_client, fake, breaker=breaker).run(since=SINCE, until=UNTIL)
    assert fake.stats()["requests"] == 3 and still_open.rules["all"].skipped_breaker == 10

    fake.mode("ok")
    clock.t += 30.0  # the cooldown passed: one probe goes through, succeeds, and the breaker closes
    recovered = build_runner(store_client, fake, breaker=breaker, concurrency=1).run(since=SINCE, until=UNTIL)
    assert breaker.state == BreakerState.CLOSED and recovered.rules["all"].scored == 10
    assert fake.stats()["requests"] == 13


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_scheduled_job_never_raises_when_the_judge_is_unreachable(store_client: Client, fake: FakeJudge) -> None:
    store_events(store_client, [make_event(i) for i in range(3)])
    runner = build_runner(store_client, fake, base_url=f"http://127.0.0.1:{_closed_port()}/v1", max_retries=0)
    parts = JudgeParts(
        settings=Settings(), rubrics=RUBRICS, rules=ALL, client=runner.client,  # type: ignore[arg-type]
        breaker=runner.breaker, cost_model=runner.cost_model, redactor=runner.redactor, runner_config=runner.config,
    )
    job = JudgeJob(parts, lookback=UNTIL - SINCE)

    result = job.run(AnalysisContext(client=store_client, at=UNTIL, rules=None))

    assert list(result.observations) == [] and list(result.evaluated or []) == []
    assert {(r["status"], r["error_kind"]) for r in judgments(store_client)} == {("error", "connection")}


def test_a_rule_only_judges_its_slice(store_client: Client, fake: FakeJudge) -> None:
    events = [make_event(i, feature="answer" if i % 2 else "summarize") for i in range(10)]
    store_events(store_client, events)
    rules = JudgeRules(rules=(
        SamplingRule(name="answers", rubric="helpfulness", rate=1.0, filters=RuleFilters(feature=("answer",))),
        SamplingRule(name="grounded", rubric="groundedness", rate=1.0, filters=RuleFilters(feature=("summarize",))),
    ))

    build_runner(store_client, fake, rules).run(since=SINCE, until=UNTIL)

    rows = judgments(store_client)
    got: Callable[[str], set[str]] = lambda rubric: {r["feature"] for r in rows if r["rubric"] == rubric}  # noqa: E731
    assert got("helpfulness") == {"answer"} and got("groundedness") == {"summarize"}
    assert {r["label"] for r in rows if r["rubric"] == "groundedness"} <= {"pass", "fail"}


def test_clickhouse_selects_exactly_the_events_python_selects(store_client: Client) -> None:
    ids = [f"{i:08x}-{i * 7919 % 100_003:06d}" for i in range(20_000)]
    store_client.command("CREATE TEMPORARY TABLE sample_ids (event_id String)")
    store_client.insert("sample_ids", [[i] for i in ids], column_names=["event_id"])

    for rate in (0.1, 0.05, 0.333):
        in_sql = {r[0] for r in store_client.query(
            f"SELECT event_id FROM sample_ids WHERE {sample_sql_condition(rate)}").result_rows}
        assert in_sql == {i for i in ids if is_sampled(i, rate)}
