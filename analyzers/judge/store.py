"""ClickHouse side of the judge: candidate events, judgments, runs, usage against the caps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clickhouse_connect.driver.client import Client

from analyzers.judge.budget import GLOBAL, Usage
from analyzers.judge.rules import SamplingRule

# An event whose judgment failed this often (no answer at all) is left alone: a prompt the judge can't take
# must not eat the budget of every run.
MAX_ERRORS_PER_EVENT: Final = 3
TERMINAL_STATUSES: Final = ("scored", "parse_failure")


@dataclass(frozen=True, slots=True)
class JudgeEvent:
    event_id: str
    start_time: datetime
    trace_id: str
    app: str
    environment: str
    feature: str
    operation: str
    provider: str
    model: str
    prompt_version: str
    status: str
    input_text: str
    output_text: str
    metadata: dict[str, str]


_EVENT_COLUMNS: Final = tuple(f.name for f in fields(JudgeEvent))


@dataclass(slots=True)
class Judgment:
    judgment_id: str
    run_id: str
    event_id: str
    event_time: datetime
    trace_id: str
    app: str
    environment: str
    feature: str
    provider: str
    model: str
    prompt_version: str
    rule: str
    rubric: str
    rubric_version: int
    score_type: str
    judge_model: str
    judge_provider: str
    status: str  # scored | parse_failure | error
    score: float | None
    label: str
    reason: str
    error_kind: str
    error: str
    attempts: int
    calls: int
    input_tokens: int
    output_tokens: int
    latency_ms: float
    cost_usd: float | None
    judged_at: datetime


JUDGMENT_COLUMNS: Final = tuple(f.name for f in fields(Judgment))


@dataclass(slots=True)
class JudgeRunRecord:
    run_id: str
    started_at: datetime
    finished_at: datetime
    window_start: datetime
    window_end: datetime
    trigger: str
    judge_model: str
    candidates: int = 0
    no_output: int = 0
    judged: int = 0
    scored: int = 0
    parse_failures: int = 0
    errors: int = 0
    skipped_budget: int = 0
    skipped_breaker: int = 0
    skipped_deadline: int = 0
    spend_usd: float = 0.0
    breaker_state: str = "closed"
    breaker_opened: int = 0
    per_rule: str = "{}"
    message: str = ""


RUN_COLUMNS: Final = tuple(f.name for f in fields(JudgeRunRecord))


@dataclass(frozen=True, slots=True)
class CandidateBatch:
    events: list[JudgeEvent] = field(default_factory=list)
    no_output: int = 0


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


class JudgeStore:
    def __init__(self, client: Client) -> None:
        self.client = client

    def candidates(
        self, rule: SamplingRule, *, since: datetime, until: datetime, limit: int
    ) -> CandidateBatch:
        """Sampled events of `rule` in [since, until) that this rubric has not judged yet, newest first.

        Events without output text are counted in `no_output` and not returned."""
        condition, params = rule.sql_condition()
        params.update({"since": _utc(since), "until": _utc(until), "rubric": rule.rubric, "lim": limit,
                       "max_errors": MAX_ERRORS_PER_EVENT})
        sql = f"""
            SELECT {", ".join(_EVENT_COLUMNS[:-1])}, CAST(metadata, 'Map(String, String)')
            FROM events
            WHERE start_time >= {{since:DateTime64(3, 'UTC')}} AND start_time < {{until:DateTime64(3, 'UTC')}}
              AND {condition}
              AND event_id NOT IN (
                  SELECT event_id FROM judgments
                  WHERE rubric = {{rubric:String}}
                    AND event_time >= {{since:DateTime64(3, 'UTC')}} AND event_time < {{until:DateTime64(3, 'UTC')}}
                  GROUP BY event_id
                  HAVING countIf(status IN ('scored', 'parse_failure')) > 0
                      OR countIf(status = 'error') >= {{max_errors:UInt32}})
            ORDER BY start_time DESC, event_id
            LIMIT {{lim:UInt64}}
        """
        rows = self.client.query(sql, parameters=params).result_rows
        events: list[JudgeEvent] = []
        seen: set[str] = set()
        no_output = 0
        for row in rows:
            if row[0] in seen:  # a duplicate a ReplacingMergeTree merge has yet to collapse
                continue
            seen.add(row[0])
            event = JudgeEvent(**dict(zip(_EVENT_COLUMNS[:-1], row[:-1], strict=True)), metadata=dict(row[-1]))
            if not event.output_text.strip():
                no_output += 1
                continue
            events.append(event)
        return CandidateBatch(events, no_output)

    def insert_judgments(self, judgments: Sequence[Judgment]) -> None:
        if not judgments:
            return
        rows = [[getattr(j, c) for c in JUDGMENT_COLUMNS] for j in judgments]
        self.client.insert("judgments", rows, column_names=list(JUDGMENT_COLUMNS))

    def record_run(self, run: JudgeRunRecord) -> None:
        values = asdict(run)
        self.client.insert("judge_runs", [[values[c] for c in RUN_COLUMNS]], column_names=list(RUN_COLUMNS))

    def usage(self, now: datetime) -> dict[str, Usage]:
        """Judgments this hour and spend today (UTC), per rule and in total (GLOBAL)."""
        now = _utc(now)
        hour = now.replace(minute=0, second=0, microsecond=0)
        day = hour.replace(hour=0)
        rows = self.client.query(
            """
            SELECT rule, countIf(judged_at >= {hour:DateTime64(3, 'UTC')}), sum(ifNull(cost_usd, 0))
            FROM judgments
            WHERE judged_at >= {day:DateTime64(3, 'UTC')} AND judged_at < {end:DateTime64(3, 'UTC')}
            GROUP BY rule
            """,
            parameters={"hour": hour, "day": day, "end": hour + timedelta(hours=1)},
        ).result_rows
        usage = {str(rule): Usage(int(n), float(usd)) for rule, n, usd in rows}
        usage[GLOBAL] = Usage(sum(u.judgments_this_hour for u in usage.values()),
                              sum(u.usd_today for u in usage.values()))
        return usage

    def recent_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        result = self.client.query(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM judge_runs ORDER BY started_at DESC LIMIT {{n:UInt32}}",
            parameters={"n": limit},
        )
        return [dict(zip(RUN_COLUMNS, row, strict=True)) for row in result.result_rows]

    def score_summary(self, since: datetime) -> list[dict[str, Any]]:
        """Per rubric and status since `since` (by judgment time): counts, mean score, spend, latency."""
        result = self.client.query(
            """
            SELECT rubric, status, count(), avgIf(score, score IS NOT NULL), sum(ifNull(cost_usd, 0)),
                   quantile(0.5)(latency_ms)
            FROM judgments WHERE judged_at >= {since:DateTime64(3, 'UTC')}
            GROUP BY rubric, status ORDER BY rubric, status
            """,
            parameters={"since": _utc(since)},
        )
        keys = ("rubric", "status", "count", "mean_score", "spend_usd", "p50_latency_ms")
        return [dict(zip(keys, row, strict=True)) for row in result.result_rows]
