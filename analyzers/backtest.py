"""Replay the analyzers over stored history as if they had run at every step (`llmpulse backtest`).

The replay drives the same analyzer objects through the same `Engine` as the scheduler; only two things
differ: findings are kept in memory instead of the findings table, and the built-in analyzers read the
rollup through a `PreloadedSeriesSource` loaded once for the whole range (plus the baselines' lookback)
instead of querying ClickHouse at every step. Plugins that read ClickHouse directly still work; they just
query at each step.

Output (`--format json`, docs/backtest.md): one JSON array, one object per firing episode, ordered by
fired_at: {"alertname", "severity", "labels", "fired_at", "resolved_at", "value", "baseline", "summary"}.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from analyzers.engine import Engine, Finding, MemoryFindingStore, RunReport
from analyzers.findings import AnalysisContext, Analyzer
from analyzers.registry import required_lookback
from analyzers.rules import Rules
from analyzers.series import KEY_KINDS, PreloadedSeriesSource, SeriesSource, floor_minute


def rfc3339(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Episode:
    """One firing episode: from the step it started firing to the step it resolved (None: still firing)."""

    alertname: str
    severity: str
    labels: dict[str, str]
    fired_at: datetime
    resolved_at: datetime | None
    value: float | None
    baseline: float | None
    summary: str
    first_seen: datetime
    analyzer: str

    def to_json(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname,
            "severity": self.severity,
            "labels": dict(self.labels),
            "fired_at": rfc3339(self.fired_at),
            "resolved_at": rfc3339(self.resolved_at),
            "value": self.value,
            "baseline": self.baseline,
            "summary": self.summary,
        }

    @classmethod
    def from_finding(cls, f: Finding) -> Episode:
        assert f.fired_at is not None
        shown = f.fired_observation or f.observation
        return cls(
            alertname=f.alertname.value,
            severity=f.peak_severity.value,
            labels=f.labels,
            fired_at=f.fired_at,
            resolved_at=f.resolved_at,
            value=shown.value,
            baseline=shown.baseline,
            summary=shown.summary,
            first_seen=f.first_seen,
            analyzer=f.analyzer,
        )


@dataclass(slots=True)
class BacktestResult:
    start: datetime
    end: datetime
    step: timedelta
    steps: int
    episodes: list[Episode]
    errors: list[RunReport] = field(default_factory=list)
    load_seconds: float = 0.0
    replay_seconds: float = 0.0

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.episodes]


def is_due(at: datetime, origin: datetime, interval: timedelta, step: timedelta) -> bool:
    """An analyzer runs at every step when its interval fits in a step, else every interval's worth."""
    if interval <= step:
        return True
    every = max(1, round(interval / step))
    return round((at - origin) / step) % every == 0


def preload(client: Client, start: datetime, end: datetime, rules: Rules) -> PreloadedSeriesSource:
    """The rollup and heavy keys for [start - lookback, end), aligned to whole hours."""
    lo = floor_minute(start - required_lookback(rules)).replace(minute=0)
    configs = [r.runaway for r in rules.all_app_rules()]
    floor = (
        min(c.min_calls for c in configs),
        min(c.min_tokens for c in configs),
        min(c.min_cost_usd for c in configs),
    )
    kinds: list[str] = sorted({str(k) for c in configs if c.enabled for k in c.keys}) or list(KEY_KINDS)
    return PreloadedSeriesSource(
        client, lo, floor_minute(end), exclude_operations=rules.exclude_operations, key_floor=floor, key_kinds=kinds
    )


def run_backtest(
    client: Client,
    analyzers: Sequence[Analyzer],
    rules: Rules,
    start: datetime,
    end: datetime,
    step: timedelta,
    *,
    dashboard_base_url: str = "",
    source: SeriesSource | None = None,
    progress: Callable[[int, int], None] | None = None,
    store: MemoryFindingStore | None = None,
) -> BacktestResult:
    """Run every analyzer at start, start+step, ... (< end) and collect the firing episodes.

    `store`: where the replay's findings go (every episode with its lifecycle), for a caller that keeps them."""
    if step <= timedelta(0):
        raise ValueError("step must be positive")
    start, end = floor_minute(start), floor_minute(end)
    if end <= start:
        raise ValueError(f"--to ({rfc3339(end)}) must be after --from ({rfc3339(start)})")
    t0 = time.perf_counter()
    if source is None:
        source = preload(client, start, end, rules)
    loaded = time.perf_counter()
    store = store if store is not None else MemoryFindingStore()
    engine = Engine(store)
    errors: list[RunReport] = []
    total = int((end - start) / step) + 1
    steps = 0
    at = start
    while at <= end:
        ctx = AnalysisContext(client=client, at=at, rules=rules, dashboard_base_url=dashboard_base_url, source=source)
        for analyzer in analyzers:
            if is_due(at, start, analyzer.interval, step):
                report = engine.run(analyzer, ctx)
                if report.error:
                    errors.append(report)
        steps += 1
        if progress is not None:
            progress(steps, total)
        at += step
    episodes = [Episode.from_finding(f) for f in store.episodes.values() if f.fired_at is not None]
    episodes.sort(key=lambda e: (e.fired_at, e.alertname, sorted(e.labels.items())))
    return BacktestResult(
        start=start,
        end=end,
        step=step,
        steps=steps,
        episodes=episodes,
        errors=errors,
        load_seconds=loaded - t0,
        replay_seconds=time.perf_counter() - loaded,
    )
