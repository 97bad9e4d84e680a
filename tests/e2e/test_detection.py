"""Detection quality on simulated traffic with ground truth, through the public `llmpulse backtest` JSON.

Three simulated days (the first is the clean warm-up the simulator keeps), loaded through the real ingest
path; the backtest replays days 2-3 every 5 minutes and its timeline is scored against the injected
incidents. bench/detection.py measures the same on full weeks (and a clean week) and prints the table.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from analyzers.backtest import Episode
from analyzers.registry import builtin_analyzers
from analyzers.scoring import IN_SCOPE_KINDS, score, traffic_slices
from llmpulse.simulate import SimulationConfig
from tests.integration.test_analyzers import SIM_START, SimStore, _ts, simulated_store

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def sim_three_days(chdb_url: str) -> SimStore:
    config = SimulationConfig(start=SIM_START, duration=timedelta(days=3), seed=7, text=False)
    return simulated_store(chdb_url, "sim_three_days", config)


def test_injected_incidents_are_detected_in_time_without_false_alarms(
    sim_three_days: SimStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmpulse.runtime
    from llmpulse.cli import app
    from llmpulse.commands import register_all

    monkeypatch.setattr(llmpulse.runtime, "open_store", lambda settings: sim_three_days.client)
    register_all(app)
    start = SIM_START + timedelta(days=1)
    end = SIM_START + timedelta(days=3)
    # The built-in analyzers only: drift and judge plugins are measured by their own tests.
    builtin = ",".join(a.name for a in builtin_analyzers())
    result = CliRunner().invoke(
        app,
        ["backtest", "--from", start.isoformat(), "--to", end.isoformat(), "--step", "5m", "--format", "json",
         "--only", builtin],
    )
    assert result.exit_code == 0, result.output
    episodes = [
        Episode(e["alertname"], e["severity"], e["labels"], _ts(e["fired_at"]),
                _ts(e["resolved_at"]) if e["resolved_at"] else None, e["value"], e["baseline"], e["summary"],
                _ts(e["fired_at"]), "")
        for e in json.loads(result.stdout)
    ]
    cfg = sim_three_days.config
    sc = score(episodes, sim_three_days.truth, traffic_slices(cfg.apps, cfg.models))
    report = "\n".join(
        f"{o.kind}: fired {o.delay} resolved {o.resolve_delay} after end" for o in sc.outcomes
    ) + f"\nfalse alarms: {[(e.alertname, e.labels, e.fired_at) for e in sc.false_alarms]}"

    in_scope = [o for o in sc.outcomes if o.kind in IN_SCOPE_KINDS]
    assert len(in_scope) >= 4
    assert sc.rate(IN_SCOPE_KINDS) >= 0.95, report
    for kind in ("runaway_trace", "traffic_absent"):
        assert all(sc.ok(o) for o in sc.outcomes if o.kind == kind), report
    # Two days of mostly clean traffic with daily seasonality: at most one false alarm per app.
    assert all(n <= 1 for n in sc.false_alarms_by_app().values()), report
