"""The dashboards as Grafana will provision them: valid, stable, linked, and generated from the code."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from analyzers.findings import AlertName
from dashboards import catalog, links
from dashboards.generate import OUTPUT_DIR, build, output_path, stale_files
from dashboards.macros import QueryContext, TimeRange, Variable, expand_backend, expand_backend_legacy

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "dashboards" / "provisioning"
EXPECTED_UIDS = {
    "llmpulse-overview", "llmpulse-cost", "llmpulse-latency", "llmpulse-reliability", "llmpulse-quality",
    "llmpulse-weekly", "llmpulse-events",
}
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def committed() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text("utf-8")) for p in sorted(OUTPUT_DIR.rglob("*.json"))}


def test_committed_json_is_what_the_code_generates() -> None:
    problems = stale_files()
    assert not problems, "dashboards/grafana is stale; run `make dashboards`:\n" + "\n".join(problems)


def test_dashboard_uids_are_stable_and_unique() -> None:
    boards = committed()
    uids = [b["uid"] for b in boards.values()]
    assert len(uids) == len(set(uids))
    assert set(uids) == EXPECTED_UIDS
    for stem, board in boards.items():
        assert stem == board["uid"], "file name is the uid"
        assert "id" not in board or board["id"] is None, "provisioned dashboards must not carry a numeric id"


def test_every_panel_queries_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "clickhouse.yaml").read_text("utf-8"))
    (source,) = provisioned["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    for board in committed().values():
        panel_ids = [p["id"] for p in board["panels"]]
        assert len(panel_ids) == len(set(panel_ids)), f"{board['uid']}: duplicate panel ids"
        for panel in board["panels"]:
            where = f"{board['uid']} panel {panel['id']} {panel.get('title')!r}"
            assert panel["datasource"] == {"type": source["type"], "uid": source["uid"]}, where
            assert len(panel["targets"]) == 1, where
            (target,) = panel["targets"]
            assert target["datasource"]["uid"] == source["uid"], where
            assert target["editorType"] == "sql" and target["rawSql"].strip(), where
            assert target["format"] == (0 if panel["type"] == "timeseries" else 1), where
            assert panel.get("title") and panel.get("description"), f"{where}: a panel says what it shows"
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, where
            if panel["type"] in ("timeseries", "stat"):
                assert panel["fieldConfig"]["defaults"].get("unit"), f"{where}: numbers need a unit"
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == source["uid"]


def test_panels_do_not_overlap() -> None:
    for board in committed().values():
        cells: dict[tuple[int, int], int] = {}
        for panel in board["panels"]:
            g = panel["gridPos"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{board['uid']}: panels {cells[(x, y)]} and {panel['id']} overlap"
                    cells[(x, y)] = panel["id"]


def test_required_template_variables() -> None:
    for board in committed().values():
        names = {v["name"] for v in board["templating"]["list"]}
        if board["uid"] == "llmpulse-events":
            assert {"event_id", "trace_id"} <= names
            continue
        assert {"app", "environment", "model", "feature"} <= names, board["uid"]
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["includeAll"] and variable["multi"], variable["name"]


def test_every_variable_a_query_uses_is_defined() -> None:
    for spec in catalog.all_dashboards():
        defined = {v.name for v in spec.text_variables} | (set(catalog.FILTER_VARIABLES) if spec.filters else set())
        for panel in spec.panels:
            used = set(re.findall(r"\$\{(\w+)(?::\w+)?\}|\$(?!__)(\w+)", panel.sql))
            names = {a or b for a, b in used}
            assert names <= defined, f"{spec.uid} panel {panel.id}: undefined {names - defined}"


def test_dashboard_provider_points_at_the_generated_json() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "llmpulse.yaml").read_text("utf-8"))
    (p,) = provider["providers"]
    assert p["type"] == "file" and p["options"]["foldersFromFilesStructure"] is True
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./dashboards/grafana:{p['options']['path']}:ro" in mounts


def test_datasource_reads_connection_from_env_and_password_as_a_secret() -> None:
    text = (PROVISIONING / "datasources" / "clickhouse.yaml").read_text("utf-8")
    source = yaml.safe_load(text)["datasources"][0]
    for key in ("host", "port", "protocol", "username", "defaultDatabase"):
        assert str(source["jsonData"][key]).startswith("${"), key
    assert "password" not in source["jsonData"]
    assert source["secureJsonData"]["password"].startswith("${")
    assert source["uid"] == catalog.DATASOURCE_UID


def test_every_alert_name_links_to_an_existing_panel() -> None:
    boards = {b.uid: b for b in catalog.all_dashboards()}
    for name in AlertName:
        ref = links.panel_for(name.value)
        assert name.value in links.ALERT_PANELS, f"{name.value} has no panel"
        board = boards[ref.uid]
        panel = board.panel(ref.panel_id)
        assert board.slug == ref.slug
        assert panel.viz in (catalog.Viz.TIMESERIES, catalog.Viz.TABLE, catalog.Viz.STAT)
    for generated in committed().values():
        assert generated["uid"] in links.SLUGS


def test_dashboard_url_narrows_to_the_finding() -> None:
    url = links.dashboard_url(
        "LLMLatencyRegression", {"app": "support bot", "model": "gpt-4o/mini", "rubric": "x"},
        "https://grafana.example.com/", started_at=NOW, resolved_at=None,
    )
    parsed = urlparse(url)
    assert parsed.path == "/d/llmpulse-latency/llm-latency"
    query = parse_qs(parsed.query)
    assert query["viewPanel"] == [str(links.PANEL_LATENCY_BY_MODEL)]
    assert query["var-app"] == ["support bot"] and query["var-model"] == ["gpt-4o/mini"]
    assert "var-rubric" not in query
    assert query["from"] == [str(int(NOW.timestamp() * 1000) - 3_600_000)] and query["to"] == ["now"]
    plain = links.dashboard_url("LLMCostSpike", {}, "http://g:3000")
    assert plain == "http://g:3000/d/llmpulse-cost/llm-cost?orgId=1&viewPanel=7"


def test_queries_expand_the_same_under_old_and_new_plugin_parsers() -> None:
    ctx = QueryContext(TimeRange(NOW.replace(hour=0), NOW), 60_000, {})
    for spec in catalog.all_dashboards():
        sqls = [p.sql for p in spec.panels]
        if spec.filters:
            sqls += [catalog.variable_sql(v) for v in catalog.FILTER_VARIABLES]
        for sql in sqls:
            from dashboards.macros import apply_conditional_all, apply_template_variables

            variables = {v: Variable(v, current=["x"]) for v in catalog.FILTER_VARIABLES}
            variables |= {t.name: Variable(t.name, current=t.default, multi=False) for t in spec.text_variables}
            frontend = apply_template_variables(apply_conditional_all(sql, variables), variables)
            assert expand_backend(frontend, ctx) == expand_backend_legacy(frontend, ctx), sql[:200]


@pytest.mark.parametrize("spec", catalog.all_dashboards(), ids=lambda s: s.uid)
def test_panels_read_rollups_and_analyzer_tables_not_raw_events(spec: catalog.Dashboard) -> None:
    for panel in spec.panels:
        reads_events = re.search(r"\bFROM\s+events\b(?!_)", panel.sql)
        if reads_events:
            lookup = r"\b(event_id|trace_id)\s*(=|IN\b)|\(app, feature\) IN"
            assert re.search(lookup, panel.sql[reads_events.start():]), (
                f"{spec.uid} panel {panel.id} scans raw events; read a rollup or look events up by id"
            )
            assert any("lookup" in t for t in panel.tables)


def test_generated_file_layout_gives_one_folder() -> None:
    for spec in catalog.all_dashboards():
        assert output_path(spec).parent.name == catalog.FOLDER
        assert build(spec)["uid"] == spec.uid
