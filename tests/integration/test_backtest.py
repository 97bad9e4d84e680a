"""`llmpulse backtest`: its public JSON format, and that it replays exactly what the live analyzers do."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzers.backtest import run_backtest
from analyzers.findings import AlertName
from analyzers.registry import builtin_analyzers
from analyzers.rules import Rules
from analyzers.series import LiveSeriesSource
from tests.integration.test_analyzers import SimStore, _ts, sim_day  # noqa: F401  (shared session store)

pytestmark = pytest.mark.integration

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
KEYS = {"alertname", "severity", "labels", "fired_at", "resolved_at", "value", "baseline", "summary"}


@pytest.fixture()
def cli(sim_day: SimStore, monkeypatch: pytest.MonkeyPatch) -> CliRunner:  # noqa: F811
    import llmpulse.runtime
    from llmpulse.cli import app
    from llmpulse.commands import register_all

    monkeypatch.setattr(llmpulse.runtime, "open_store", lambda settings: sim_day.client)
    register_all(app)
    return CliRunner()


def _invoke(cli: CliRunner, *args: str) -> str:
    from llmpulse.cli import app

    result = cli.invoke(app, ["backtest", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_is_one_array_of_firing_episodes(sim_day: SimStore, cli: CliRunner) -> None:  # noqa: F811
    outage = sim_day.incident("provider_outage")
    start, end = _ts(outage["start"]) - timedelta(hours=1), _ts(outage["end"]) + timedelta(hours=1)
    out = _invoke(cli, "--from", start.isoformat(), "--to", end.isoformat(), "--step", "5m", "--format", "json")
    episodes = json.loads(out)
    assert isinstance(episodes, list) and episodes
    names = {a.value for a in AlertName}
    for e in episodes:
        assert set(e) == KEYS
        assert e["alertname"] in names
        assert e["severity"] in ("critical", "warning", "info")
        assert RFC3339.match(e["fired_at"])
        assert e["resolved_at"] is None or RFC3339.match(e["resolved_at"])
        assert isinstance(e["labels"], dict) and all(isinstance(v, str) for v in e["labels"].values())
    hits = [e for e in episodes if e["alertname"] == "LLMProviderOutage"
            and e["labels"].get("provider") == outage["labels"]["provider"]]
    assert hits
    assert _ts(outage["start"]) <= _ts(hits[0]["fired_at"]) <= _ts(outage["start"]) + timedelta(minutes=15)
    assert hits[0]["resolved_at"] is not None
    assert _ts(hits[0]["resolved_at"]) <= _ts(outage["end"]) + timedelta(minutes=30)
    assert [e["fired_at"] for e in episodes] == sorted(e["fired_at"] for e in episodes)


def test_rules_file_changes_what_fires(sim_day: SimStore, cli: CliRunner, tmp_path: Path) -> None:  # noqa: F811
    outage = sim_day.incident("provider_outage")
    start, end = _ts(outage["start"]) - timedelta(minutes=30), _ts(outage["end"]) + timedelta(minutes=30)
    rules = tmp_path / "llmpulse.yaml"
    rules.write_text("defaults:\n  outage:\n    min_error_ratio: 0.99\n", "utf-8")
    out = _invoke(cli, "--from", start.isoformat(), "--to", end.isoformat(), "--rules", str(rules),
                  "--only", "outage", "--format", "json")
    assert json.loads(out) == []
    table = _invoke(cli, "--from", start.isoformat(), "--to", end.isoformat(), "--only", "outage")
    assert "1 episode(s)" in table
    from llmpulse.cli import app

    bad = cli.invoke(app, ["backtest", "--from", end.isoformat(), "--to", start.isoformat()])
    assert bad.exit_code == 2 and "--to must be after --from" in bad.output
    rules.write_text("defaults:\n  outage:\n    min_eror_ratio: 0.9\n", "utf-8")
    bad = cli.invoke(app, ["backtest", "--from", start.isoformat(), "--to", end.isoformat(), "--rules", str(rules)])
    assert bad.exit_code == 2 and "llmpulse.yaml:3" in bad.output


def test_backtest_equals_running_the_live_analyzers_at_each_step(sim_day: SimStore) -> None:  # noqa: F811
    """The preloaded replay and step-by-step live SQL give the same timeline: same analyzers, same engine."""
    latency = sim_day.incident("latency_regression")
    start, end = _ts(latency["start"]) - timedelta(minutes=10), _ts(latency["end"]) + timedelta(minutes=10)
    analyzers = builtin_analyzers()
    rules = Rules()
    preloaded = run_backtest(sim_day.client, analyzers, rules, start, end, timedelta(minutes=5))
    live = run_backtest(
        sim_day.client, analyzers, rules, start, end, timedelta(minutes=5),
        source=LiveSeriesSource(sim_day.client, exclude_operations=rules.exclude_operations),
    )
    assert not preloaded.errors and not live.errors

    def rounded(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Sums over cumulative arrays and sums in SQL differ in the last bits of a float, nothing more.
        return [{k: round(v, 9) if isinstance(v, float) else v for k, v in e.items()} for e in timeline]

    assert rounded(preloaded.to_json()) == rounded(live.to_json())
    assert any(e.alertname == "LLMLatencyRegression" for e in preloaded.episodes)


def test_opt_in_slo_and_budget_rules_fire(sim_day: SimStore) -> None:  # noqa: F811
    from analyzers.rules import parse_rules

    burst = sim_day.incident("error_burst")
    app = burst["labels"]["app"]
    rules = parse_rules(
        f"apps:\n  {app}:\n    slo: {{availability: 0.995}}\n    budget: {{daily_usd: 1}}\n", where="slo.yaml"
    )
    analyzers = [a for a in builtin_analyzers() if a.name in ("errors", "budget")]
    start, end = _ts(burst["start"]) - timedelta(minutes=10), _ts(burst["end"]) + timedelta(minutes=10)
    result = run_backtest(sim_day.client, analyzers, rules, start, end, timedelta(minutes=5))
    slo = [e for e in result.episodes if e.alertname == "LLMAvailabilitySLOBurn"]
    assert slo and slo[0].labels["app"] == app and slo[0].severity == "critical"
    mid = _ts(burst["start"]) + (_ts(burst["end"]) - _ts(burst["start"])) / 2
    assert any(e.fired_at <= mid and (e.resolved_at is None or e.resolved_at >= mid) for e in slo)
    budget = [e for e in result.episodes if e.alertname == "LLMBudgetBurn"]
    assert budget and budget[0].labels == {"app": app} and budget[0].severity == "critical"
    assert all(e.labels.get("app") == app for e in slo + budget)  # only the app whose rules opted in


def test_latency_slo_burn_follows_the_threshold(sim_day: SimStore) -> None:  # noqa: F811
    from analyzers.latency import LatencyAnalyzer
    from analyzers.rules import parse_rules

    at = _ts(sim_day.incident("latency_regression")["start"])

    def episodes(threshold_ms: float) -> list[str]:
        rules = parse_rules(
            f"apps:\n  support-bot:\n    slo: {{latency_threshold_ms: {threshold_ms}, latency_objective: 0.99}}\n"
        )
        res = run_backtest(sim_day.client, [LatencyAnalyzer()], rules, at, at + timedelta(minutes=10),
                           timedelta(minutes=5))
        return [e.labels["app"] for e in res.episodes if e.alertname == "LLMLatencySLOBurn"]

    assert episodes(1.0) == ["support-bot"]  # every call is slower than 1 ms: the budget burns at once
    assert episodes(600_000.0) == []
