"""Calibration on real chDB: clean traffic at three levels raises at most one finding per app-week.

Detectors fire as soon as their evidence suffices, whatever the traffic, so the false-alarm budget has to
hold at every level too: a quiet internal app (0.3x the simulator's default), the default, and a busy one
(3x). Each level is a clean simulated stretch (same seasonality and agent traffic, no incidents) replayed
minute by minute with the built-in analyzers after four days of history, so seasonal baselines exist as they
do in production. Drift's calibration on clean traffic is tested with its texts in test_drift.py and, per
level over whole weeks, in bench/detection_levels.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from analyzers.backtest import run_backtest
from analyzers.registry import builtin_analyzers
from analyzers.rules import Rules
from llmpulse.simulate import DEFAULT_RATE_PER_MINUTE, SimulationConfig
from tests.integration.test_analyzers import SIM_START, simulated_store

pytestmark = pytest.mark.integration

HISTORY = timedelta(days=4)
REPLAYED = timedelta(days=2)
WEEK = timedelta(days=7)


@pytest.mark.parametrize("level", [0.3, 1.0, 3.0], ids=lambda level: f"{level:g}x")
def test_clean_traffic_raises_at_most_one_finding_per_app_week(chdb_url: str, level: float) -> None:
    config = SimulationConfig(start=SIM_START, duration=HISTORY + REPLAYED, seed=41, text=False, clean=True,
                              rate_per_minute=DEFAULT_RATE_PER_MINUTE * level)
    sim = simulated_store(chdb_url, f"clean_{str(level).replace('.', '_')}x", config)
    start = SIM_START + HISTORY
    result = run_backtest(sim.client, builtin_analyzers(), Rules(), start, start + REPLAYED, timedelta(minutes=1))
    assert not result.errors, result.errors[:3]

    app_weeks = len(config.apps) * (REPLAYED / WEEK)
    found = [(e.fired_at, e.alertname, e.labels, e.summary) for e in result.episodes]
    assert len(found) <= max(1, int(app_weeks)), f"{len(found)} findings in {app_weeks:.1f} app-weeks: {found}"
    per_app: dict[str, int] = {}
    for episode in result.episodes:
        app = episode.labels.get("app", episode.labels.get("provider", "-"))
        per_app[app] = per_app.get(app, 0) + 1
    assert max(per_app.values(), default=0) <= 1, per_app
