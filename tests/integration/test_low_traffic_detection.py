"""Detection at the evidence limit, on real chDB: quiet slices are judged as soon as their evidence suffices.

The traffic here is a typical internal app's: about 2 LLM calls per minute per app (0.15x the simulator's
default), where fixed windows with minimum counts used to stay blind. Incidents are the held-out kind the
detectors were not developed on (6x cost for 90 min, 2.2x latency for 2 h, a 95% outage, a 6 h silence).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analyzers.backtest import Episode, run_backtest
from analyzers.errors import AbsenceAnalyzer
from analyzers.registry import builtin_analyzers
from analyzers.rules import Rules
from analyzers.scoring import score, traffic_slices
from llmpulse.simulate import DEFAULT_RATE_PER_MINUTE, Incident, SimulationConfig
from tests.integration.test_analyzers import SIM_START, SimStore, _ts, simulated_store

pytestmark = pytest.mark.integration

LOW_RATE = DEFAULT_RATE_PER_MINUTE * 0.15  # ~2 calls/min per app at the weekly average
DAY = timedelta(days=1)


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return SIM_START + day * DAY + timedelta(hours=hour, minutes=minute)


@pytest.fixture(scope="module")
def quiet_week(chdb_url: str) -> SimStore:
    incidents = [
        Incident(kind="cost_spike", start=_at(3, 10, 10), end=_at(3, 11, 40), magnitude=6.0,
                 labels={"app": "support-bot", "feature": "answer"}),
        Incident(kind="latency_regression", start=_at(3, 14, 20), end=_at(3, 16, 20), magnitude=2.2,
                 labels={"provider": "openai", "model": "gpt-4o-mini"}),
        Incident(kind="provider_outage", start=_at(4, 11, 5), end=_at(4, 11, 50), magnitude=0.95,
                 labels={"provider": "anthropic"}),
        Incident(kind="traffic_absent", start=_at(4, 13, 0), end=_at(4, 19, 0), magnitude=1.0,
                 labels={"app": "search-rag"}),
    ]
    config = SimulationConfig(start=SIM_START, duration=timedelta(days=5), seed=11, text=False,
                              rate_per_minute=LOW_RATE, incidents=incidents)
    return simulated_store(chdb_url, "quiet_week", config)


def _deadline(sim: SimStore, incident: dict[str, Any]) -> timedelta:
    """max(10 min, the time by which the slice's 8th LLM call after onset arrived + 5 min), from the store."""
    onset = _ts(incident["start"])
    where = " AND ".join(f"{k} = {{{k}:String}}" for k in incident["labels"])
    rows = sim.client.query(
        f"SELECT start_time FROM events WHERE {where} AND start_time >= {{onset:DateTime64(3, 'UTC')}} "
        "AND operation NOT IN ('execute_tool', 'invoke_agent') ORDER BY start_time LIMIT 8",
        parameters={**incident["labels"], "onset": onset},
    ).result_rows
    assert len(rows) == 8, f"the slice of {incident['kind']} delivers fewer than 8 calls"
    eighth = rows[-1][0] if rows[-1][0].tzinfo else rows[-1][0].replace(tzinfo=UTC)
    return max(timedelta(minutes=10), eighth - onset + timedelta(minutes=5))


def _replay(sim: SimStore, analyzers: list, start: datetime, end: datetime) -> list[Episode]:  # type: ignore[type-arg]
    result = run_backtest(sim.client, analyzers, Rules(), start, end, timedelta(minutes=1))
    assert not result.errors, result.errors[:3]
    return result.episodes


def test_quiet_slices_fire_within_their_evidence_deadline(quiet_week: SimStore) -> None:
    """Each incident fires by max(10 min, the time its slice's 8th call arrived + 5 min)."""
    episodes = _replay(quiet_week, builtin_analyzers(), _at(3, 9), _at(4, 12, 30))
    cfg = quiet_week.config
    truth = [t for t in quiet_week.truth if t["kind"] != "traffic_absent"]
    sc = score(episodes, truth, traffic_slices(cfg.apps, cfg.models))
    report = {o.kind: (o.delay, _deadline(quiet_week, o.incident)) for o in sc.outcomes}
    for outcome in sc.outcomes:
        assert outcome.delay is not None, f"{outcome.kind} never fired: {report}"
        assert outcome.delay <= _deadline(quiet_week, outcome.incident), f"{outcome.kind} late: {report}"
    assert len(sc.false_alarms) <= 1, [(e.alertname, e.labels, e.fired_at, e.summary) for e in sc.false_alarms]


def test_absence_stays_firing_through_six_hours_of_silence(quiet_week: SimStore) -> None:
    silence = quiet_week.incident("traffic_absent")
    start, end = _at(4, 12, 30), _at(4, 19, 0)
    episodes = [
        e for e in _replay(quiet_week, [AbsenceAnalyzer()], start, end)
        if e.labels.get("app") == "search-rag" and "feature" not in e.labels
    ]
    assert len(episodes) == 1, [(e.fired_at, e.resolved_at) for e in episodes]
    (episode,) = episodes
    onset = _ts(silence["start"])
    assert episode.fired_at - onset <= timedelta(minutes=15)
    # Still firing when the replay ends, six hours into the silence.
    assert episode.resolved_at is None
