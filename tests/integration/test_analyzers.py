"""Rollups, series sources, analyzers, findings storage, the CLI, the API and the scheduler on real chDB."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from analyzers.api import findings_router
from analyzers.engine import ClickHouseFindingStore, Engine, FindingQuery, MemoryFindingStore
from analyzers.errors import OutageAnalyzer
from analyzers.findings import AlertName, FindingState
from analyzers.registry import build_analyzers, builtin_analyzers
from analyzers.rules import Rules
from analyzers.scheduler import AnalyzerScheduler
from analyzers.series import LiveSeriesSource, PreloadedSeriesSource
from collector.pricing import PriceCatalog
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator, RawItem
from llmpulse.clickhouse import connect
from llmpulse.migrate import Retention, applied_versions, load_migrations, migrate
from llmpulse.settings import Settings
from llmpulse.simulate import SimulationConfig, generate, ground_truth

pytestmark = pytest.mark.integration

SIM_START = datetime(2026, 11, 16, tzinfo=UTC)  # a Monday
RETENTION = Retention(events_days=3650, text_days=3650, rejected_days=30)


def load_events(client: Client, events: Iterable[dict[str, Any]], chunk: int = 20_000) -> int:
    """Through the real ingest path: contract validation, pricing, the idempotent writer."""
    validator = EventValidator(prices=PriceCatalog([]))
    store = ClickHouseEventStore(client)
    it = iter(events)
    n = 0
    while batch := list(itertools.islice(it, chunk)):
        result = validator.validate((RawItem(i, e, None) for i, e in enumerate(batch)), source="sim",
                                    source_ref="test")
        assert not result.rejections, result.rejections[:3]
        store.write_events(result.batch)
        n += len(batch)
    return n


@dataclass(frozen=True)
class SimStore:
    client: Client
    config: SimulationConfig
    truth: list[dict[str, Any]]

    def incident(self, kind: str) -> dict[str, Any]:
        return next(i for i in self.truth if i["kind"] == kind)


_BUILT: dict[tuple[str, str], SimStore] = {}


def simulated_store(chdb_url: str, name: str, config: SimulationConfig) -> SimStore:
    """A database holding `config`'s traffic, built once per test session (shared across modules)."""
    key = (chdb_url, name)
    if key not in _BUILT:
        client = connect(chdb_url, database=name)
        migrate(client, RETENTION)
        load_events(client, generate(config))
        _BUILT[key] = SimStore(client, config, ground_truth(config))
    return _BUILT[key]


@pytest.fixture(scope="session")
def sim_day(chdb_url: str) -> SimStore:
    """One simulated day with the default incidents (no texts: these analyzers never read them)."""
    config = SimulationConfig(start=SIM_START, duration=timedelta(days=1), seed=7, text=False)
    return simulated_store(chdb_url, "sim_day", config)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# ------------------------------------------------------------------------------------------- rollups


def test_rollup_matches_raw_events(sim_day: SimStore) -> None:
    raw = sim_day.client.query(
        "SELECT app, model, count(), countIf(status = 'error'), sum(input_tokens), countIf(status = 'ok'), "
        "sum(ifNull(cost_usd, 0)) FROM events FINAL GROUP BY app, model ORDER BY app, model"
    ).result_rows
    rolled = sim_day.client.query(
        "SELECT app, model, sum(requests), sum(errors), sum(input_tokens_sum), sum(ok_requests), "
        "sum(cost_usd_sum) FROM events_1m GROUP BY app, model ORDER BY app, model"
    ).result_rows
    assert [r[:6] for r in raw] == [r[:6] for r in rolled]
    assert [r[6] for r in raw] == pytest.approx([r[6] for r in rolled], rel=1e-9)
    # Quantile states merge into percentiles; histograms count every successful call.
    (q, hist_total, ok), = sim_day.client.query(
        "SELECT quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_q), "
        "arraySum(mapValues(sumMap(latency_hist))), sum(ok_requests) FROM events_1m"
    ).result_rows
    assert 0 < q[0] < q[2] < q[3]
    assert hist_total == ok


def test_migration_backfills_existing_events_once(chdb_url: str) -> None:
    database = f"t_{uuid.uuid4().hex[:12]}"
    client = connect(chdb_url, database=database)
    try:
        applied_versions(client)
        for m in load_migrations()[:2]:  # the schema as it was before the rollup existed
            for statement in m.statements:
                client.command(statement)
            client.insert("schema_migrations", [[m.version, m.name]], column_names=["version", "name"])
        config = SimulationConfig(start=SIM_START, duration=timedelta(hours=2), seed=3, text=False, clean=True)
        events = list(generate(config))
        half = len(events) // 2
        load_events(client, events[:half])
        migrate(client, RETENTION)  # creates the rollup and folds the stored half in
        load_events(client, events[half:])  # the view aggregates the rest as it lands
        migrate(client, RETENTION)  # nothing pending: must not add the first half again
        client.command(
            "INSERT INTO schema_migrations (version, name) VALUES (3, 'events_1m')"
        )  # a re-run of the ledger entry is harmless; the backfill itself is guarded
        (rolled,), = client.query("SELECT sum(requests) FROM events_1m").result_rows
        assert rolled == len(events)
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")


# ------------------------------------------------------------------------------------------ sources


def test_live_and_preloaded_sources_agree(sim_day: SimStore) -> None:
    excl = Rules().exclude_operations
    live = LiveSeriesSource(sim_day.client, exclude_operations=excl)
    pre = PreloadedSeriesSource(sim_day.client, SIM_START, SIM_START + timedelta(days=1), exclude_operations=excl)
    assert live.first_minute() == pre.first_minute()
    at = SIM_START + timedelta(hours=15, minutes=5)
    ranges = [(at - timedelta(minutes=10), at), (at - timedelta(hours=2), at - timedelta(hours=1)),
              (at - timedelta(minutes=3), at - timedelta(minutes=2))]
    for dims in (("app", "environment"), ("app", "environment", "provider", "model", "feature"), ()):
        a = live.windows(dims, ranges, hist=True)
        b = pre.windows(dims, ranges, hist=True)
        assert a.keys == b.keys
        for name in a.scalars:
            assert a.scalars[name] == pytest.approx(b.scalars[name]), name
        assert set(a.errors_by_type) == set(b.errors_by_type)
        for etype in a.errors_by_type:
            assert a.errors_by_type[etype] == pytest.approx(b.errors_by_type[etype])
        assert a.latency_hist == pytest.approx(b.latency_hist)
        assert a.ttft_hist == pytest.approx(b.ttft_hist)
    runaway = sim_day.incident("runaway_trace")
    mid = _ts(runaway["start"]) + timedelta(minutes=20)
    for kind in ("trace_id", "session_id"):
        args: dict[str, Any] = dict(min_calls=50, min_tokens=2_000_000, min_cost=20.0)
        heavy_live = live.heavy_keys(kind, mid - timedelta(minutes=30), mid, **args)
        heavy_pre = pre.heavy_keys(kind, mid - timedelta(minutes=30), mid, **args)
        assert [(h.key, h.calls, h.tokens, h.first_call, h.last_call) for h in heavy_live] == [
            (h.key, h.calls, h.tokens, h.first_call, h.last_call) for h in heavy_pre
        ]
        hour = mid.replace(minute=0)
        assert live.key_hour_quantiles(kind, hour - timedelta(hours=6), hour, 0.999) == pre.key_hour_quantiles(
            kind, hour - timedelta(hours=6), hour, 0.999
        )
    assert any(h.key == runaway["labels"]["trace_id"] for h in live.heavy_keys("trace_id", mid - timedelta(
        minutes=30), mid, min_calls=50, min_tokens=2_000_000, min_cost=20.0))


def test_preloaded_source_refuses_ranges_it_did_not_load(sim_day: SimStore) -> None:
    pre = PreloadedSeriesSource(sim_day.client, SIM_START + timedelta(hours=12), SIM_START + timedelta(hours=13))
    with pytest.raises(ValueError, match="outside the preloaded"):
        pre.windows(("app",), [(SIM_START + timedelta(hours=1), SIM_START + timedelta(hours=2))])


# ---------------------------------------------------------------------------- analyzers and findings


def test_registry_has_the_builtins_and_tolerates_plugins() -> None:
    names = [a.name for a in build_analyzers(Settings())]
    for builtin in ("cost", "budget", "runaway", "latency", "errors", "outage", "absence"):
        assert builtin in names
    assert [a.name for a in build_analyzers(Settings(), only=["outage"])] == ["outage"]
    with pytest.raises(ValueError, match="unknown analyzer"):
        build_analyzers(Settings(), only=["nope"])
    for analyzer in builtin_analyzers():
        assert analyzer.alertnames and analyzer.interval > timedelta(0)


def test_analyze_cli_stores_one_finding_per_condition(sim_day: SimStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import llmpulse.runtime
    from llmpulse.cli import app
    from llmpulse.commands import register_all

    monkeypatch.setattr(llmpulse.runtime, "open_store", lambda settings: sim_day.client)
    register_all(app)
    runner = CliRunner()
    outage = sim_day.incident("provider_outage")
    start = _ts(outage["start"])
    for minutes in (10, 15, 15):  # the last run repeats: it must update, not duplicate
        at = (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        result = runner.invoke(app, ["analyze", "--at", at, "--only", "outage", "--format", "json"])
        assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["runs"] == [{"analyzer": "outage", "observations": doc["runs"][0]["observations"], "error": None}]
    store = ClickHouseFindingStore(sim_day.client)
    found = store.query(FindingQuery(alertname="LLMProviderOutage"))
    provider = outage["labels"]["provider"]
    mine = [f for f in found if f.labels.get("provider") == provider]
    assert mine and len({f.finding_id for f in mine}) == len(mine)
    assert all(f.state == FindingState.FIRING for f in mine)
    # Detectors fire as soon as the evidence suffices (no `for` hold): at the first run that saw it.
    assert all(f.fired_at == start + timedelta(minutes=10) for f in mine)
    assert "failed in the last 3m" in mine[0].observation.evidence

    listed = runner.invoke(app, ["findings", "--state", "firing", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert {f["finding_id"] for f in json.loads(listed.output)} >= {f.finding_id for f in mine}
    bad = runner.invoke(app, ["findings", "--state", "burning"])
    assert bad.exit_code == 2

    # The outage is over an hour later: the same finding resolves.
    after = (_ts(outage["end"]) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert runner.invoke(app, ["analyze", "--at", after, "--only", "outage"]).exit_code == 0
    again = [f for f in store.query(FindingQuery(alertname="LLMProviderOutage")) if f.finding_id == mine[0].finding_id]
    assert again[0].state == FindingState.RESOLVED


def test_findings_api(sim_day: SimStore) -> None:
    engine = Engine(ClickHouseFindingStore(sim_day.client))
    outage = sim_day.incident("provider_outage")
    analyzer = OutageAnalyzer()
    from analyzers.findings import AnalysisContext

    for minutes in (10, 15):
        engine.run(analyzer, AnalysisContext(sim_day.client, _ts(outage["start"]) + timedelta(minutes=minutes),
                                             Rules()))
    api = FastAPI()
    api.include_router(findings_router(lambda: sim_day.client))
    http = TestClient(api)
    body = http.get("/v1/findings", params={"state": "firing", "alertname": "LLMProviderOutage"}).json()
    assert body["count"] >= 1
    f = body["findings"][0]
    assert f["alertname"] == AlertName.PROVIDER_OUTAGE.value and f["state"] == "firing"
    assert set(f) >= {"labels", "value", "baseline", "threshold", "evidence", "links", "first_seen", "last_seen",
                      "fired_at", "resolved_at", "severity", "summary"}
    assert http.get(f"/v1/findings/{f['finding_id']}").json()["finding_id"] == f["finding_id"]
    assert http.get("/v1/findings/nope").status_code == 404
    assert http.get("/v1/findings", params={"app": "no-such-app"}).json()["count"] == 0
    assert http.get("/v1/findings", params={"state": "burning"}).status_code == 422
    since = (_ts(outage["end"]) + timedelta(days=30)).isoformat()
    assert http.get("/v1/findings", params={"since": since}).json()["count"] == 0


def test_scheduler_runs_its_jobs_and_stops(sim_day: SimStore) -> None:
    outage = sim_day.incident("provider_outage")
    fixed = _ts(outage["start"]) + timedelta(minutes=20)
    heard: list[str] = []
    engine = Engine(MemoryFindingStore(), listeners=[lambda fs: heard.extend(f.state.value for f in fs)])
    sched = AnalyzerScheduler(
        sim_day.client, Settings(analyzers_lag_seconds=0), rules=Rules(), analyzers=[OutageAnalyzer()],
        engine=engine, clock=lambda: fixed,
    )
    sched.start()
    try:
        assert sched.running
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not engine.open_findings():
            time.sleep(0.2)
        opened = engine.open_findings()
        assert opened and opened[0].alertname == AlertName.PROVIDER_OUTAGE
        assert opened[0].last_seen == fixed  # run as of the scheduler's clock minus the lag
    finally:
        sched.stop()
    assert not sched.running
