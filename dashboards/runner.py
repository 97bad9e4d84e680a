"""Run a panel's SQL the way Grafana would: expand the macros for a time range and variables, then query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from dashboards.catalog import Dashboard, Panel
from dashboards.macros import QueryContext, TimeRange, Variable, expand, grafana_interval_ms


@dataclass(frozen=True, slots=True)
class PanelResult:
    panel: Panel
    sql: str  # as sent to ClickHouse
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def panel_time_range(panel: Panel, time_range: TimeRange) -> TimeRange:
    """The panel's own range when it overrides the dashboard's (only `now/M`, this month, is used)."""
    if panel.time_from == "now/M":
        now = time_range.end.astimezone(UTC)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return TimeRange(start, end)
    if panel.time_from:
        raise ValueError(f"panel {panel.id} {panel.title!r}: unsupported relative time {panel.time_from!r}")
    return time_range


def default_variables(
    dashboard: Dashboard, overrides: Mapping[str, str | Sequence[str]] | None = None
) -> dict[str, Variable]:
    """All selected for the filter variables, the defaults for text boxes, then `overrides`."""
    from dashboards.catalog import FILTER_VARIABLES

    variables: dict[str, Variable] = {}
    if dashboard.filters:
        for name in FILTER_VARIABLES:
            variables[name] = Variable(name)
    for text in dashboard.text_variables:
        variables[text.name] = Variable(text.name, current=text.default, multi=False)
    for name, value in (overrides or {}).items():
        base = variables.get(name, Variable(name))
        variables[name] = Variable(name, current=value, options=base.options, multi=base.multi)
    return variables


def fill_options(client: Client, variables: dict[str, Variable], time_range: TimeRange) -> dict[str, Variable]:
    """What All stands for: the options each filter variable's own query returns (as Grafana loads them)."""
    from dashboards.catalog import FILTER_VARIABLES, variable_sql

    filled = dict(variables)
    for name in FILTER_VARIABLES:
        if name not in filled:
            continue
        ctx = QueryContext(time_range, grafana_interval_ms(time_range), filled)
        options = [str(r[0]) for r in client.query(expand(variable_sql(name), ctx)).result_rows]
        current = filled[name]
        filled[name] = Variable(name, current=current.current, options=options, multi=current.multi)
    return filled


def run_panel(
    client: Client,
    panel: Panel,
    time_range: TimeRange,
    variables: Mapping[str, Variable],
    *,
    max_data_points: int = 1000,
) -> PanelResult:
    panel_range = panel_time_range(panel, time_range)
    ctx = QueryContext(
        panel_range, grafana_interval_ms(panel_range, max_data_points=max_data_points, min_interval=panel.min_interval),
        variables,
    )
    sql = expand(panel.sql, ctx)
    result = client.query(sql)
    columns = tuple(result.column_names)
    rows = [tuple(row) for row in result.result_rows]
    if not rows and not columns:
        # Some clients report no column names for an empty result; ask ClickHouse what the query returns.
        columns = tuple(str(r[0]) for r in client.query(f"DESCRIBE TABLE ({sql})").result_rows)
    return PanelResult(panel, sql, columns, rows)


def utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
