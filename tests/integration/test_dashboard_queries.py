"""Every panel query of every dashboard, run against ClickHouse holding a day and a bit of simulated traffic
after the judge, a human review and the analyzers ran, with the plugin's macros and template variables expanded
as Grafana would. Every panel must show rows: the data set (tests/support/dashboard_data.py) is built so that
each one has something to show, and it is the same on every run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from dashboards import catalog, links
from dashboards.runner import default_variables, fill_options, run_panel
from llmpulse.clickhouse import connect
from llmpulse.migrate import migrate
from llmpulse.simulate import SimulationConfig, ground_truth
from tests.support.dashboard_data import build_dashboard_data
from tests.support.grafana_macros import QueryContext, TimeRange, Variable, expand, grafana_interval_ms

pytestmark = pytest.mark.integration


@dataclass
class Store:
    client: Client
    config: SimulationConfig
    time_range: TimeRange
    event_id: str
    trace_id: str
    notes: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def dashboard_store(chdb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    database = f"dash_{uuid.uuid4().hex[:10]}"
    client = connect(chdb_url, database=database)
    migrate(client)
    data = build_dashboard_data(client, tmp_path_factory.mktemp("dashboard-data"))
    yield Store(client, data.config, data.time_range, data.event_id, data.trace_id, data.notes)
    client.command(f"DROP DATABASE IF EXISTS `{database}`")


def _variables(store: Store, spec: catalog.Dashboard, selections: dict[str, Any] | None = None) -> dict[str, Variable]:
    overrides: dict[str, Any] = dict(selections or {})
    if spec.uid == links.EVENTS:
        overrides |= {"event_id": store.event_id, "trace_id": store.trace_id}
    return fill_options(store.client, default_variables(spec, overrides), store.time_range)


def test_every_panel_returns_rows_with_the_columns_it_shows(
    dashboard_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    empty: list[str] = []
    checked = 0
    for spec in catalog.all_dashboards():
        variables = _variables(dashboard_store, spec)
        for panel in spec.panels:
            result = run_panel(dashboard_store.client, panel, dashboard_store.time_range, variables)
            where = f"{spec.uid} panel {panel.id} {panel.title!r}"
            assert result.columns == panel.columns, f"{where}: returned {result.columns}\n{result.sql}"
            checked += 1
            if not result.rows:
                empty.append(f"{where} (reads {', '.join(panel.tables)})")
                continue
            if panel.is_time_series:
                times = [row[0] for row in result.rows]
                assert times == sorted(times), f"{where}: time series rows must be ordered by time"
                assert all(isinstance(t, datetime) for t in times), where
    with capsys.disabled():
        print(f"\n[dashboards] {checked} panel queries ran over {dashboard_store.time_range.start:%Y-%m-%d %H:%M}"
              f" - {dashboard_store.time_range.end:%Y-%m-%d %H:%M} UTC")
        for note in dashboard_store.notes:
            print(f"  note: {note}")
    assert checked == sum(len(spec.panels) for spec in catalog.all_dashboards())
    assert not empty, "panels without rows:\n" + "\n".join(empty)


def test_analyzer_output_reaches_the_findings_and_quality_panels(dashboard_store: Store) -> None:
    client = dashboard_store.client
    weekly = catalog.dashboard(links.WEEKLY)
    variables = _variables(dashboard_store, weekly)
    findings = run_panel(client, weekly.panel(5), dashboard_store.time_range, variables).records()
    assert findings, "the analyzers fired nothing on simulated incidents"
    resolved = [f for f in findings if f["resolved_at"] is not None]
    assert resolved and all(f["time_to_resolve_s"] >= 0 for f in resolved)
    for finding in findings:
        ref = links.panel_for(finding["alertname"])
        assert finding["dashboard_url"].startswith(f"/d/{ref.uid}/{ref.slug}?orgId=1&viewPanel={ref.panel_id}")
    quality = catalog.dashboard(links.QUALITY)
    scores = run_panel(client, quality.panel(1), dashboard_store.time_range, _variables(dashboard_store, quality))
    assert scores.rows, "judge scores missing although the fake judge scored events"


def test_the_window_ends_with_a_finding_firing(dashboard_store: Store) -> None:
    overview = catalog.dashboard(links.OVERVIEW)
    variables = _variables(dashboard_store, overview)
    firing = run_panel(dashboard_store.client, overview.panel(11), dashboard_store.time_range, variables).records()
    assert firing and {f["state"] for f in firing} == {"firing"}
    # The simulated window ends right after a runaway agent loop, with no analyzer run after it.
    assert "LLMRunawayTrace" in {f["alertname"] for f in firing}
    count = run_panel(dashboard_store.client, overview.panel(6), dashboard_store.time_range, variables).rows
    assert count == [(len(firing),)]


def test_quality_panels_show_pass_rates_agreement_and_drifted_inputs(dashboard_store: Store) -> None:
    client = dashboard_store.client
    quality = catalog.dashboard(links.QUALITY)
    variables = _variables(dashboard_store, quality)

    def records(panel_id: int) -> list[dict[str, Any]]:
        return run_panel(client, quality.panel(panel_id), dashboard_store.time_range, variables).records()

    pass_rates = records(2)
    assert {r["rubric"] for r in pass_rates} == {"groundedness"}  # the pass/fail rubric, not the 1-5 one
    assert all(0 <= r["pass_rate"] <= 1 for r in pass_rates)
    agreement = {r["rubric"]: r for r in records(3)}
    assert set(agreement) == {"groundedness", "helpfulness"}
    for rubric, row in agreement.items():
        assert row["labelled_events"] > 0 and 0 <= row["exact_agreement"] <= row["within_one_point"] <= 1, rubric
    drift = next(i for i in ground_truth(dashboard_store.config) if i["kind"] == "input_drift")
    inputs = records(6)
    assert {(r["app"], r["feature"]) for r in inputs} == {(drift["labels"]["app"], drift["labels"]["feature"])}
    assert any(drift["params"]["topic"] in r["input"] for r in inputs), "no input about the new topic"


def test_findings_link_in_sql_equals_the_python_link(dashboard_store: Store) -> None:
    fired = datetime(2026, 11, 20, 10, 0, 0, 250_000, tzinfo=UTC)
    resolved = fired + timedelta(minutes=42)
    labels = {"app": "support bot", "model": "gpt-4o/mini", "provider": "open&ai", "trace_id": "t-1", "rubric": "r"}
    for alertname in [*links.ALERT_PANELS, "SomethingNew"]:
        for end in (resolved, None):
            sql = (
                f"SELECT {links.dashboard_url_sql()} FROM (SELECT {{a:String}} AS alertname, "
                "mapFromArrays({k:Array(String)}, {v:Array(String)}) AS labels, "
                "toNullable(toDateTime64({f:String}, 3, 'UTC')) AS fired_at, "
                "if({has_end:UInt8} = 1, toNullable(toDateTime64({r:String}, 3, 'UTC')), NULL) AS resolved_at)"
            )
            got = dashboard_store.client.command(sql, parameters={
                "a": alertname, "k": list(labels), "v": list(labels.values()),
                "f": fired.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], "has_end": int(end is not None),
                "r": (end or fired).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            })
            assert got == links.dashboard_url(alertname, labels, "", started_at=fired, resolved_at=end)


def test_narrowing_variables_narrows_the_panels(dashboard_store: Store) -> None:
    client = dashboard_store.client
    overview = catalog.dashboard(links.OVERVIEW)
    everything = _variables(dashboard_store, overview)
    app = everything["app"].options[0]
    narrowed = _variables(dashboard_store, overview, {"app": [app]})
    traffic = run_panel(client, overview.panel(7), dashboard_store.time_range, narrowed)
    assert traffic.rows and {row[1] for row in traffic.rows} == {app}
    calls_all = run_panel(client, overview.panel(1), dashboard_store.time_range, everything).rows[0][0]
    calls_one = run_panel(client, overview.panel(1), dashboard_store.time_range, narrowed).rows[0][0]
    assert 0 < calls_one < calls_all
    # Every query also runs with a selection that matches nothing (a value no option has).
    nothing = _variables(dashboard_store, overview, {"app": ["no-such-app"], "model": ["x", "y'z"]})
    for spec in catalog.all_dashboards():
        if not spec.filters:
            continue
        for panel in spec.panels:
            result = run_panel(client, panel, dashboard_store.time_range,
                               {**_variables(dashboard_store, spec), **nothing})
            assert result.columns == panel.columns, f"{spec.uid} panel {panel.id}"


def test_variable_queries_list_what_the_rollup_holds(dashboard_store: Store) -> None:
    ctx = QueryContext(dashboard_store.time_range, grafana_interval_ms(dashboard_store.time_range), {
        name: Variable(name) for name in catalog.FILTER_VARIABLES
    })
    for name in catalog.FILTER_VARIABLES:
        values = [r[0] for r in dashboard_store.client.query(expand(catalog.variable_sql(name), ctx)).result_rows]
        assert values and values == sorted(values), name
