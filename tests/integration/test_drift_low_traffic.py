"""Drift at low traffic, end to end in a real (embedded) ClickHouse: a quiet slice's drift fires within the
evidence deadline, and a drift finding of a slice whose traffic stops resolves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from analyzers.drift.analyzer import DriftAnalyzer
from analyzers.engine import Engine, MemoryFindingStore
from analyzers.findings import AlertName, AnalysisContext, FindingState
from collector.pricing import PriceCatalog
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator, RawItem
from llmpulse.clickhouse import connect
from llmpulse.migrate import Retention, migrate
from llmpulse.simulate import Incident, SimulationConfig, default_apps, generate

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 16, tzinfo=UTC)
END = START + timedelta(days=2)
SLICE = {"app": "support-bot", "environment": "prod", "feature": "answer"}
# 30% of the requests about a new topic from day 2 10:00 until the traffic ends (like the 18 h drift)
ONSET = START + timedelta(days=1, hours=10)
INCIDENT = Incident(kind="input_drift", start=ONSET, end=END, magnitude=0.30,
                    labels={"app": SLICE["app"], "feature": SLICE["feature"]})
EVERY = timedelta(minutes=15)  # the analyzer's default interval


def _config() -> SimulationConfig:
    app = next(a for a in default_apps() if a.name == SLICE["app"])
    only = app.model_copy(update={"features": (app.feature(SLICE["feature"]),)})
    # about 1.5 calls a minute in the slice over the day (a typical internal app)
    return SimulationConfig(start=START, duration=END - START, seed=4, apps=[only], rate_per_minute=1.6,
                            incidents=[INCIDENT], text=True)


@pytest.fixture(scope="module")
def quiet_store(chdb_url: str) -> Iterator[Client]:
    """Two days of one quiet slice, stored once for the module (each test clears drift_results)."""
    database = f"t_{uuid.uuid4().hex[:12]}"
    client = connect(chdb_url, database=database)
    migrate(client, Retention(events_days=90, text_days=30, rejected_days=30))
    items = [RawItem(i, e, None, max_size=10_000) for i, e in enumerate(generate(_config()))]
    result = EventValidator(prices=PriceCatalog([])).validate(items, source="test", source_ref="sim")
    assert not result.rejections
    ClickHouseEventStore(client).write_events(result.batch)
    yield client
    client.command(f"DROP DATABASE IF EXISTS `{database}`")


def _deadline(client: Client) -> datetime:
    """max(60 min, the time by which 60 calls of the slice arrived after onset + 5 min)."""
    rows = client.query(
        "SELECT start_time FROM events WHERE app = {a:String} AND feature = {f:String} AND operation = 'chat' "
        "AND start_time >= {s:DateTime64(3, 'UTC')} ORDER BY start_time LIMIT 60",
        parameters={"a": SLICE["app"], "f": SLICE["feature"], "s": ONSET},
    ).result_rows
    assert len(rows) == 60
    sixtieth = rows[-1][0].replace(tzinfo=UTC)
    return ONSET + max(timedelta(minutes=60), sixtieth - ONSET + timedelta(minutes=5))


def test_a_quiet_slices_new_topic_fires_within_the_evidence_deadline(quiet_store: Client) -> None:
    quiet_store.command("TRUNCATE TABLE drift_results")
    calls_per_minute = quiet_store.query(
        "SELECT count() / 1440 FROM events WHERE operation = 'chat' AND start_time >= {s:DateTime64(3, 'UTC')} "
        "AND start_time < {e:DateTime64(3, 'UTC')}", parameters={"s": START, "e": START + timedelta(days=1)},
    ).result_rows[0][0]
    assert 1.0 <= calls_per_minute <= 2.0, calls_per_minute  # the traffic the issue calls blind
    deadline = _deadline(quiet_store)
    analyzer = DriftAnalyzer()
    fired: dict[datetime, list[str]] = {}
    at = ONSET - 2 * EVERY
    while at <= deadline:
        obs = analyzer.run(AnalysisContext(client=quiet_store, at=at, rules=None)).observations
        fired[at] = [o.alertname.value for o in obs if dict(o.labels) == SLICE]
        at += EVERY
    before = {t: a for t, a in fired.items() if t <= ONSET and a}
    assert not before, before  # clean traffic before the onset stays quiet
    inputs = [t for t, a in fired.items() if AlertName.INPUT_DRIFT.value in a]
    assert inputs, f"no input drift by the deadline {deadline:%H:%M} ({(deadline - ONSET)} after onset)"
    assert inputs[0] <= deadline


def test_a_drift_finding_of_a_slice_whose_traffic_stops_resolves_as_no_traffic(quiet_store: Client) -> None:
    quiet_store.command("TRUNCATE TABLE drift_results")
    analyzer = DriftAnalyzer()
    engine = Engine(MemoryFindingStore())
    # the drift has run for 14 h when the traffic stops at END: the finding is firing (two runs agree)
    for at in (END - EVERY, END):
        engine.run(analyzer, AnalysisContext(client=quiet_store, at=at, rules=None))
    firing = [f for f in engine.open_findings() if f.alertname is AlertName.INPUT_DRIFT]
    assert [f.state for f in firing] == [FindingState.FIRING]
    assert firing[0].labels == SLICE
    # no call since END: once the slice has been silent for stale_after (6 h) the finding resolves
    silent_at = END + analyzer.settings.stale_after + EVERY
    report = engine.run(analyzer, AnalysisContext(client=quiet_store, at=silent_at, rules=None))
    assert not report.error
    assert not [f for f in engine.open_findings() if f.alertname is AlertName.INPUT_DRIFT]
    resolved = [f for f in report.changed if f.alertname is AlertName.INPUT_DRIFT]
    assert [(f.state, f.resolved_at) for f in resolved] == [(FindingState.RESOLVED, silent_at)]
    # and the stored verdict says why
    statuses = quiet_store.query(
        "SELECT DISTINCT status FROM drift_results FINAL WHERE drift_feature = '__verdict__' "
        "AND at = {at:DateTime64(3, 'UTC')} AND feature = {f:String}",
        parameters={"at": silent_at, "f": SLICE["feature"]},
    ).result_rows
    assert statuses == [("no_traffic",)]
