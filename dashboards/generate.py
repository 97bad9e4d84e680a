"""Dashboards as code: build Grafana JSON from dashboards/catalog.py with grafana-foundation-sdk.

    python -m dashboards.generate            # (re)write dashboards/grafana/<folder>/<uid>.json  (`make dashboards`)
    python -m dashboards.generate --check    # exit 1 when the committed JSON differs from what the code builds

The SDK has no ClickHouse query type, so `ClickHouseQuery` implements its generic `Dataquery` variant with the
fields the grafana-clickhouse-datasource plugin stores for an SQL-editor query.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Self

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash_builders
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_models

from dashboards import catalog
from dashboards.catalog import Column, Dashboard, Panel, Viz

OUTPUT_DIR = Path(__file__).resolve().parent / "grafana"
DATASOURCE = dash_models.DataSourceRef(type_val=catalog.DATASOURCE_TYPE, uid=catalog.DATASOURCE_UID)

# grafana-clickhouse-datasource query `format`: 0 time series, 1 table (src/types/sql.ts Format).
FORMAT_TIME_SERIES = 0
FORMAT_TABLE = 1


class ClickHouseQuery(cogvariants.Dataquery):
    """A grafana-clickhouse-datasource SQL-editor target."""

    def __init__(self, ref_id: str = "A", raw_sql: str = "", time_series: bool = False) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.time_series = time_series

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": DATASOURCE.to_json(),
            "editorType": "sql",
            "rawSql": self.raw_sql,
            "format": FORMAT_TIME_SERIES if self.time_series else FORMAT_TABLE,
            "queryType": "timeseries" if self.time_series else "table",
        }


class ClickHouseQueryBuilder(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self) -> None:
        self._internal = ClickHouseQuery()

    def build(self) -> ClickHouseQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def raw_sql(self, raw_sql: str) -> Self:
        self._internal.raw_sql = raw_sql
        return self

    def time_series(self, time_series: bool) -> Self:
        self._internal.time_series = time_series
        return self


def _thresholds(steps: tuple[tuple[str, float | None], ...]) -> dash_builders.ThresholdsConfig:
    return (
        dash_builders.ThresholdsConfig()
        .mode(dash_models.ThresholdsMode.ABSOLUTE)
        .steps([dash_models.Threshold(color=colour, value=value) for colour, value in steps])
    )


def _column_override(column: Column, *, cell: bool = True) -> list[dash_models.DynamicConfigValue]:
    props: list[dash_models.DynamicConfigValue] = []
    if column.unit:
        props.append(dash_models.DynamicConfigValue(id_val="unit", value=column.unit))
    if column.display:
        props.append(dash_models.DynamicConfigValue(id_val="displayName", value=column.display))
    if column.decimals is not None:
        props.append(dash_models.DynamicConfigValue(id_val="decimals", value=column.decimals))
    if column.link:
        props.append(dash_models.DynamicConfigValue(
            id_val="links", value=[{"title": column.link_title or "Open", "url": column.link}]))
    if column.hidden:
        props.append(dash_models.DynamicConfigValue(id_val="custom.hidden", value=True))
    if column.width:
        props.append(dash_models.DynamicConfigValue(id_val="custom.width", value=column.width))
    if column.thresholds:
        props.append(dash_models.DynamicConfigValue(
            id_val="thresholds",
            value={"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in column.thresholds]}))
        if cell:
            props.append(dash_models.DynamicConfigValue(
                id_val="custom.cellOptions", value={"type": "color-background", "mode": "basic"}))
    return props


def _target(panel: Panel) -> ClickHouseQueryBuilder:
    return ClickHouseQueryBuilder().ref_id("A").raw_sql(panel.sql).time_series(panel.is_time_series)


def _common(builder: Any, panel: Panel) -> Any:
    builder = (
        builder.id(panel.id)
        .title(panel.title)
        .description(panel.description)
        .datasource(DATASOURCE)
        .grid_pos(dash_models.GridPos(x=panel.grid[0], y=panel.grid[1], w=panel.grid[2], h=panel.grid[3]))
        .with_target(_target(panel))
        .unit(panel.unit)
        .thresholds(_thresholds(panel.thresholds))
    )
    if panel.decimals is not None:
        builder = builder.decimals(panel.decimals)
    if panel.min_interval:
        builder = builder.interval(panel.min_interval)
    if panel.time_from:
        builder = builder.time_from(panel.time_from)
    if panel.min is not None:
        builder = builder.min(panel.min)
    if panel.max is not None:
        builder = builder.max(panel.max)
    return builder


def _timeseries(panel: Panel) -> timeseries.Panel:
    builder: timeseries.Panel = _common(timeseries.Panel(), panel)
    builder = (
        builder.legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING))
        .line_width(2 if not panel.bars else 1)
        .fill_opacity(60 if panel.bars else 12)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .color_scheme(dash_builders.FieldColor().mode(dash_models.FieldColorModeId.PALETTE_CLASSIC))
    )
    if panel.bars:
        builder = builder.draw_style(common.GraphDrawStyle.BARS)
    if panel.stacked:
        builder = builder.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if panel.series_name:
        builder = builder.display_name(panel.series_name)
    if panel.threshold_lines:
        builder = builder.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
    if panel.soft_max is not None:
        builder = builder.axis_soft_max(panel.soft_max)
    if panel.id == 5 and panel.columns[-1] == "budget_usd":
        # The budget is a reference line, the projection a dashed continuation of the spend.
        builder = builder.override_by_name("budget_usd", [
            dash_models.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
            dash_models.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            dash_models.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
            dash_models.DynamicConfigValue(id_val="displayName", value="Budget"),
        ]).override_by_name("projected_usd", [
            dash_models.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dot"}),
            dash_models.DynamicConfigValue(id_val="displayName", value="Projection"),
        ]).override_by_name("spend_usd", [
            dash_models.DynamicConfigValue(id_val="displayName", value="Spend"),
        ])
    return builder


def _stat(panel: Panel) -> stat.Panel:
    builder: stat.Panel = _common(stat.Panel(), panel)
    builder = (
        builder.graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME if len(panel.columns) > 1 else common.BigValueTextMode.VALUE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields(""))
        .color_scheme(dash_builders.FieldColor().mode(dash_models.FieldColorModeId.THRESHOLDS))
        .no_value("–")
    )
    for column in panel.column_styles:
        builder = builder.override_by_name(column.name, _column_override(column, cell=False))
    return builder


def _table(panel: Panel) -> table.Panel:
    builder: table.Panel = _common(table.Panel(), panel)
    builder = builder.cell_height(common.TableCellHeight.SM).show_header(True).no_value("–")
    for column in panel.column_styles:
        builder = builder.override_by_name(column.name, _column_override(column))
    return builder


def _panel(panel: Panel) -> cogbuilder.Builder[dash_models.Panel]:
    if panel.viz is Viz.TIMESERIES:
        return _timeseries(panel)
    if panel.viz is Viz.STAT:
        return _stat(panel)
    if panel.viz is Viz.TABLE:
        return _table(panel)
    raise ValueError(f"panel {panel.id} {panel.title!r}: no builder for {panel.viz}")


def _variables(spec: Dashboard) -> list[cogbuilder.Builder[dash_models.VariableModel]]:
    variables: list[cogbuilder.Builder[dash_models.VariableModel]] = []
    if spec.filters:
        for name in catalog.FILTER_VARIABLES:
            variables.append(
                dash_builders.QueryVariable(name)
                .label(catalog.variable_label(name))
                .datasource(DATASOURCE)
                .query(catalog.variable_sql(name))
                .refresh(dash_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
                .sort(dash_models.VariableSort.ALPHABETICAL_ASC)
                .multi(True)
                .include_all(True)
                .current(dash_models.VariableOption(selected=True, text=["All"], value=["$__all"]))
            )
    for text in spec.text_variables:
        variables.append(
            dash_builders.TextBoxVariable(text.name)
            .label(text.label)
            .description(text.description)
            .default_value(text.default)
            .current(dash_models.VariableOption(selected=True, text=text.default, value=text.default))
        )
    return variables


def build(spec: Dashboard) -> dict[str, Any]:
    builder = (
        dash_builders.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(list(spec.tags))
        .timezone("utc")
        .time(spec.time_from, "now")
        .tooltip(dash_models.DashboardCursorSync.CROSSHAIR)
        .editable()
        .variables(_variables(spec))
        .link(
            dash_builders.DashboardLink("llmpulse")
            .type(dash_models.DashboardLinkType.DASHBOARDS)
            .tags(["llmpulse"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    if spec.refresh:
        builder = builder.refresh(spec.refresh)
    for panel in spec.panels:
        builder = builder.with_panel(_panel(panel))
    encoded: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    encoded.pop("id", None)  # provisioning assigns ids; the uid is the stable identity
    return encoded


def render(spec: Dashboard) -> str:
    return json.dumps(build(spec), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def output_path(spec: Dashboard, root: Path = OUTPUT_DIR) -> Path:
    return root / spec.folder / f"{spec.uid}.json"


def expected_files(root: Path = OUTPUT_DIR) -> dict[Path, str]:
    return {output_path(spec, root): render(spec) for spec in catalog.all_dashboards()}


def stale_files(root: Path = OUTPUT_DIR) -> list[str]:
    """Why the committed JSON differs from what the catalog builds (empty when up to date)."""
    expected = expected_files(root)
    problems = []
    for path, text in expected.items():
        if not path.exists():
            problems.append(f"{path} is missing")
        elif path.read_text("utf-8") != text:
            problems.append(f"{path} differs from what dashboards/catalog.py builds")
    for path in sorted(root.rglob("*.json")) if root.exists() else []:
        if path not in expected:
            problems.append(f"{path} is not built by dashboards/catalog.py (remove it)")
    return problems


def write_all(root: Path = OUTPUT_DIR) -> list[Path]:
    written = []
    expected = expected_files(root)
    for path in sorted(root.rglob("*.json")) if root.exists() else []:
        if path not in expected:
            path.unlink()
    for path, text in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Fail when the committed JSON is stale.")
    parser.add_argument("--out", type=Path, default=OUTPUT_DIR, help="Output directory.")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale_files(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `make dashboards` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    written = write_all(args.out)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(catalog.all_dashboards())} dashboards, {len(written)} changed, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
