"""Findings on a real ClickHouse store, as two engines (the scheduler and a manual `analyze`) share it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

from analyzers.engine import ClickHouseFindingStore, Engine
from analyzers.findings import AlertName, AnalysisContext, AnalyzerResult, FindingState, Observation, Severity

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)


class ErrorRate:
    name = "errors"
    alertnames = (AlertName.ERROR_RATE_HIGH,)
    interval = STEP

    def __init__(self) -> None:
        self.apps: list[str] = []

    def run(self, ctx: AnalysisContext) -> AnalyzerResult:
        return AnalyzerResult([
            Observation(
                alertname=AlertName.ERROR_RATE_HIGH, severity=Severity.WARNING,
                labels={"environment": "prod", "app": app}, at=ctx.at, value=0.2, baseline=0.01, threshold=0.05,
                summary=f"{app} fails", for_duration=STEP,
            )
            for app in self.apps
        ])


def test_two_engines_on_one_store_keep_one_finding_per_condition(store_client: Client) -> None:
    scheduler, manual = Engine(ClickHouseFindingStore(store_client)), Engine(ClickHouseFindingStore(store_client))
    analyzer = ErrorRate()
    analyzer.apps = ["support-bot", "search-rag"]
    scheduler.run(analyzer, AnalysisContext(client=store_client, at=T0, rules=None))  # type: ignore[arg-type]
    report = manual.run(analyzer, AnalysisContext(client=store_client, at=T0 + STEP, rules=None))  # type: ignore[arg-type]
    assert {f.state for f in report.changed} == {FindingState.FIRING}
    rows = store_client.query(
        "SELECT labels['app'], uniqExact(finding_id), argMax(state, revision) FROM findings GROUP BY 1 ORDER BY 1"
    ).result_rows
    assert rows == [("search-rag", 1, "firing"), ("support-bot", 1, "firing")]
    # The scheduler's next run finds them firing already: nothing fires (pages) a second time.
    again = scheduler.run(analyzer, AnalysisContext(client=store_client, at=T0 + 2 * STEP, rules=None))  # type: ignore[arg-type]
    assert again.changed == [] and again.error is None
