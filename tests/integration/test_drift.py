"""Drift end to end: simulated traffic with an input_drift incident, stored in a real (embedded) ClickHouse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from analyzers.drift import descriptors as d
from analyzers.drift.analyzer import DriftAnalyzer, DriftSettings
from analyzers.findings import AlertName, AnalysisContext
from collector.pricing import PriceCatalog
from collector.store import ClickHouseEventStore
from collector.validation import EventValidator, RawItem
from llmpulse.simulate import Incident, SimulationConfig, generate

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 16, tzinfo=UTC)
INCIDENT = Incident(kind="input_drift", start=START + timedelta(hours=14, minutes=10),
                    end=START + timedelta(hours=15, minutes=40), labels={"app": "support-bot", "feature": "answer"})


def _store(client: Client, config: SimulationConfig) -> None:
    items = [RawItem(i, e, None, max_size=10_000) for i, e in enumerate(generate(config))]
    result = EventValidator(prices=PriceCatalog([])).validate(items, source="test", source_ref="sim")
    assert not result.rejections
    ClickHouseEventStore(client).write_events(result.batch)


def _runs(first: datetime, last: datetime, every: timedelta) -> list[datetime]:
    out = []
    while first <= last:
        out.append(first)
        first += every
    return out


def test_input_drift_incident_becomes_an_input_drift_finding_and_clean_hours_stay_quiet(store_client: Client) -> None:
    _store(store_client, SimulationConfig(start=START, duration=timedelta(hours=18), seed=3, incidents=[INCIDENT]))
    analyzer = DriftAnalyzer(DriftSettings(reference="trailing", trailing=timedelta(hours=6)))
    # hourly through the clean morning, then at the analyzer's interval (15 min) around the incident
    ats = _runs(START + timedelta(hours=7), START + timedelta(hours=12), timedelta(hours=1)) + _runs(
        START + timedelta(hours=13), START + timedelta(hours=18), analyzer.settings.interval)
    by_run = {at: analyzer.run(AnalysisContext(client=store_client, at=at, rules=None)).observations for at in ats}
    # Runs before the onset (14:10) and from an hour after the end (15:40) see clean traffic only; the
    # incident is reported from its second drifted run on (two consecutive runs must agree).
    clean = {at: obs for at, obs in by_run.items() if (at <= INCIDENT.start or at >= INCIDENT.end + timedelta(hours=1))
             and obs}
    assert not clean, {at: [(o.alertname, o.labels) for o in obs] for at, obs in clean.items()}
    reported = [at for at, obs in by_run.items() if any(o.alertname is AlertName.INPUT_DRIFT for o in obs)]
    assert reported and reported[0] <= INCIDENT.start + timedelta(minutes=35), reported
    first = reported[0]
    inputs = [o for o in by_run[first] if o.alertname is AlertName.INPUT_DRIFT]
    assert len(inputs) == 1
    obs = inputs[0]
    assert obs.labels == {"app": "support-bot", "environment": "prod", "feature": "answer"}
    features = [f["feature"] for f in obs.details["features"]]
    assert "input_text" in features and obs.details["drift_feature"] in features
    assert "input_text" in obs.summary or obs.details["drift_feature"] in obs.summary
    assert "example:" in obs.evidence and "NovaPay" in obs.evidence
    assert "'novapay'" in obs.evidence  # the term that separates current from reference
    # every run is recorded for dashboards, the drifted tests with their statistics
    rows = store_client.query(
        "SELECT drift_feature, method, p_value, threshold, drifted FROM drift_results FINAL "
        "WHERE at = {at:DateTime64(3, 'UTC')} AND feature = 'answer' AND app = 'support-bot' AND drifted",
        parameters={"at": first},
    ).result_rows
    assert {"input_text", "__verdict__"} <= {r[0] for r in rows}


def test_engine_turns_the_observation_into_a_finding(store_client: Client) -> None:
    engine_mod = pytest.importorskip("analyzers.engine")
    _store(store_client, SimulationConfig(start=START + timedelta(hours=8), duration=timedelta(hours=10), seed=3,
                                          incidents=[INCIDENT]))
    store = engine_mod.MemoryFindingStore()
    engine = engine_mod.Engine(store)
    analyzer = DriftAnalyzer(DriftSettings(reference="trailing", trailing=timedelta(hours=6)))
    for at in _runs(START + timedelta(hours=13, minutes=30), START + timedelta(hours=17), analyzer.settings.interval):
        engine.run(analyzer, AnalysisContext(client=store_client, at=at, rules=None))
    episodes = list(store.episodes.values())
    drift = [f for f in episodes if f.alertname is AlertName.INPUT_DRIFT]
    assert [f.labels.get("feature") for f in drift] == ["answer"], [(f.alertname, f.labels) for f in episodes]
    # the second run after the onset (14:10) that sees it: 14:30 at a 15-minute interval
    assert drift[0].fired_at == START + timedelta(hours=14, minutes=30)
    assert drift[0].resolved_at is not None and drift[0].resolved_at <= INCIDENT.end + timedelta(hours=1)


def test_sql_descriptors_agree_with_their_python_twins(store_client: Client) -> None:
    texts = [
        "Where is my order? The tracking has not moved.", "¿Dónde está mi pedido? El seguimiento no cambia.",
        "Wo ist meine Bestellung? Ich kann sie nicht finden.", "Привет, где мой заказ?", "注文はどこですか",
        "", "  \n", "I'm sorry, but I can't help with that.", '{"intent": "billing", "confidence": 0.9}',
        "Es tut mir leid, aber dabei kann ich nicht helfen.", "x y z", "Je ne peux pas vous aider avec cela.",
        "I CAN'T HELP with that", "I’m sorry, but I can’t do that.", "  {\"a\": 1}", "\n[1, 2]", "true story",
        "Kelvin \u212a the and is", "İSTANBUL the and", "DIE BESTELLUNG IST DA UND ICH", "the el los the y the",
        "ſorry, but i can't help", "Что? the and is the",
    ]
    sql = (f"SELECT t, {d.sql_language('t')}, {d.sql_language('t', tail=True)}, {d.sql_refusal('t')}, "
           f"{d.sql_valid_json('t')} FROM (SELECT arrayJoin({{ts:Array(String)}}) AS t)")
    for t, lang, lang_tail, refusal, valid in store_client.query(sql, parameters={"ts": texts}).result_rows:
        assert (lang, lang_tail, bool(refusal), bool(valid)) == (
            d.language(t), d.language(t, tail=True), d.is_refusal(t), d.is_valid_json(t)), t
