"""The Weekly review as one static HTML page (`llmpulse report --week`): the dashboard's own SQL, run through the
same macro expansion as Grafana, rendered with inline SVG charts — no JavaScript, no network, prints well."""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from dashboards import catalog, links
from dashboards.catalog import Panel, Viz
from dashboards.macros import TimeRange
from dashboards.runner import PanelResult, default_variables, fill_options, run_panel

PALETTE = ("#3274d9", "#e0752d", "#37872d", "#c4162a", "#8f3bb8", "#f2cc0c", "#1f78c1", "#6d1f62")
_UNIT_OF_STAT = {"median_time_to_resolve_s": "s"}


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    time_range: TimeRange
    results: tuple[PanelResult, ...]
    html: str


def week_ending(end: datetime) -> TimeRange:
    end = end.astimezone(UTC)
    return TimeRange(end - timedelta(days=7), end)


def build_weekly_report(client: Client, time_range: TimeRange, *, grafana_url: str = "") -> WeeklyReport:
    weekly = catalog.dashboard(links.WEEKLY)
    variables = fill_options(client, default_variables(weekly), time_range)
    results = tuple(run_panel(client, p, time_range, variables) for p in weekly.panels if p.in_report)
    return WeeklyReport(time_range, results, render_html(time_range, results, grafana_url=grafana_url))


# --- formatting -----------------------------------------------------------------------------------------


def _unit_for(panel: Panel, column: str) -> str | None:
    for style in panel.column_styles:
        if style.name == column and style.unit:
            return style.unit
    if column in _UNIT_OF_STAT:
        return _UNIT_OF_STAT[column]
    if column.endswith("_usd"):
        return "currencyUSD"
    if column.endswith("_ms"):
        return "ms"
    if column.endswith("_s"):
        return "s"
    if column.endswith(("_ratio", "_change", "_share")):
        return "percentunit"
    return None


def format_value(value: Any, unit: str | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, datetime):
        return f"{value:%a %d %b %H:%M}"
    if not isinstance(value, int | float):
        return str(value)
    v = float(value)
    if unit == "currencyUSD":
        if v == 0:
            return "$0"
        return f"${v:,.0f}" if abs(v) >= 100 else f"${v:,.2f}" if abs(v) >= 1 else f"${v:.4f}"
    if unit == "percentunit":
        return f"{v * 100:.1f}%"
    if unit == "ms":
        return f"{v / 1000:,.1f} s" if v >= 10_000 else f"{v:,.0f} ms"
    if unit == "s":
        if v < 90:
            return f"{v:.0f} s"
        if v < 5400:
            return f"{v / 60:.0f} min"
        return f"{v / 3600:.1f} h"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.2f}"


def _change(value: Any, unit: str | None) -> str:
    """A week-over-week change with its sign and colour class."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<span class="muted">–</span>'
    v = float(value)
    text = f"{v * 100:+.1f}%" if unit == "percentunit" else f"{v:+.2f}"
    css = "up" if v > 0.0001 else "down" if v < -0.0001 else "flat"
    return f'<span class="{css}">{html.escape(text)}</span>'


# --- SVG charts -----------------------------------------------------------------------------------------


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _series(result: PanelResult) -> tuple[list[datetime], dict[str, dict[datetime, float]]]:
    """Long rows (time, label, value) as one series per label."""
    series: dict[str, dict[datetime, float]] = defaultdict(dict)
    times: set[datetime] = set()
    for row in result.rows:
        t, label, value = row[0], str(row[1]), row[2]
        if value is None:
            continue
        times.add(t)
        series[label][t] = float(value)
    return sorted(times), dict(sorted(series.items()))


def svg_chart(result: PanelResult, *, width: int = 560, height: int = 240) -> str:
    panel = result.panel
    times, series = _series(result)
    if not times:
        return '<p class="muted">No data this week.</p>'
    unit = panel.unit
    left, right, top, bottom = 64, 12, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    t0, t1 = times[0].timestamp(), times[-1].timestamp()
    span = max(t1 - t0, 1.0)
    if panel.stacked:
        totals: dict[datetime, float] = defaultdict(float)
        for points in series.values():
            for t, v in points.items():
                totals[t] += v
        peak = max(totals.values(), default=0.0)
    else:
        peak = max((v for points in series.values() for v in points.values()), default=0.0)
    y_max = _nice_max(peak)

    def x(t: datetime) -> float:
        return left + (t.timestamp() - t0) / span * plot_w if len(times) > 1 else left + plot_w / 2

    def y(v: float) -> float:
        return top + plot_h - v / y_max * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="{html.escape(panel.title)}">']
    for i in range(5):
        value = y_max * i / 4
        yy = y(value)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" class="tick" text-anchor="end">'
                     f'{html.escape(format_value(value, unit))}</text>')
    labels_every = max(1, len(times) // 7)
    for i, t in enumerate(times):
        if i % labels_every == 0:
            fmt = "%a %d" if panel.bars else "%a %H:%M"
            parts.append(f'<text x="{x(t):.1f}" y="{height - 8}" class="tick" text-anchor="middle">{t:{fmt}}</text>')
    if panel.bars:
        n = len(times)
        slot = plot_w / max(n, 1)
        bar_w = slot * 0.7
        base: dict[datetime, float] = defaultdict(float)
        for index, (name, points) in enumerate(series.items()):
            colour = PALETTE[index % len(PALETTE)]
            for i, t in enumerate(times):
                v = points.get(t, 0.0)
                if v <= 0:
                    continue
                x0 = left + slot * i + (slot - bar_w) / 2
                y_top = y(base[t] + v)
                parts.append(f'<rect x="{x0:.1f}" y="{y_top:.1f}" width="{bar_w:.1f}" '
                             f'height="{y(base[t]) - y_top:.1f}" fill="{colour}"><title>{html.escape(name)} '
                             f'{t:%a %d %b}: {html.escape(format_value(v, unit))}</title></rect>')
                base[t] += v
    else:
        for index, (name, points) in enumerate(series.items()):
            colour = PALETTE[index % len(PALETTE)]
            path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}"
                            for i, (t, v) in enumerate(sorted(points.items())))
            parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.8">'
                         f'<title>{html.escape(name)}</title></path>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" class="axis"/>')
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{html.escape(name)}</span>'
        for i, name in enumerate(series)
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


# --- HTML -----------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;background:#f4f5f8;color:#1f2430}
header{background:#1f2430;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;color:#c7cbd6}
main{padding:18px 28px;display:grid;grid-template-columns:repeat(4,1fr);gap:14px}
section{background:#fff;border:1px solid #dde1ea;border-radius:6px;padding:12px 16px;overflow:hidden}
section.wide{grid-column:1/-1} section.half{grid-column:span 2}
h2{font-size:15px;margin:0 0 2px} p.desc{margin:0 0 10px;color:#5b6275;font-size:12.5px}
.stat{font-size:30px;font-weight:600} .stat.bad{color:#c4162a} .stat.good{color:#37872d}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th{text-align:left;color:#5b6275;font-weight:600;border-bottom:2px solid #dde1ea;padding:4px 6px;white-space:nowrap}
td{border-bottom:1px solid #eef0f4;padding:4px 6px;vertical-align:top} td.num{text-align:right;white-space:nowrap}
td.text{max-width:260px;color:#3b4150} .sev-critical{color:#c4162a;font-weight:600} .sev-warning{color:#b86e00}
.up{color:#c4162a} .down{color:#37872d} .flat,.muted{color:#8a90a0}
svg.chart{width:100%;height:auto} .grid{stroke:#eef0f4} .axis{stroke:#b8bdc9} .tick{font-size:10.5px;fill:#5b6275}
.legend{font-size:12px;color:#3b4150;margin-top:4px} .key{margin-right:14px;white-space:nowrap}
.key i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
a{color:#1f60c4;text-decoration:none} footer{padding:0 28px 24px;color:#8a90a0;font-size:12px}
"""

_CHANGE_COLUMNS = {"calls_change", "spend_change", "error_ratio_change", "p95_change", "cost_change",
                   "judge_score_change"}
_HIDDEN = {"dashboard_url"}
_TEXT_COLUMNS = {"summary", "reason", "input", "output", "scope"}


def _header(panel: Panel, column: str) -> str:
    for style in panel.column_styles:
        if style.name == column and style.display:
            return style.display
    for suffix in ("_usd", "_ms", "_s"):
        column = column.removesuffix(suffix)
    words = column.replace("_", " ")
    return words[:1].upper() + words[1:]


def _table(result: PanelResult, grafana_url: str) -> str:
    panel = result.panel
    if not result.rows:
        return '<p class="muted">Nothing this week.</p>'
    columns = [c for c in result.columns if c not in _HIDDEN]
    head = "".join(f"<th>{html.escape(_header(panel, c))}</th>" for c in columns)
    body = []
    for record in result.records():
        cells = []
        for column in columns:
            value = record[column]
            unit = _unit_for(panel, column)
            if column in _CHANGE_COLUMNS:
                cells.append(f'<td class="num">{_change(value, unit)}</td>')
            elif column == "alertname" and record.get("dashboard_url") and grafana_url:
                url = grafana_url.rstrip("/") + str(record["dashboard_url"])
                cells.append(f'<td><a href="{html.escape(url)}">{html.escape(str(value))}</a></td>')
            elif column == "severity":
                cells.append(f'<td class="sev-{html.escape(str(value))}">{html.escape(str(value))}</td>')
            elif column in _TEXT_COLUMNS:
                text = str(value or "")
                cells.append(f'<td class="text">{html.escape(text[:240])}</td>')
            elif isinstance(value, int | float) and not isinstance(value, bool):
                cells.append(f'<td class="num">{html.escape(format_value(value, unit))}</td>')
            else:
                cells.append(f"<td>{html.escape(format_value(value, unit))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _stat(result: PanelResult) -> str:
    panel = result.panel
    value = result.rows[0][0] if result.rows else None
    unit = _unit_for(panel, result.columns[0]) if result.columns else None
    css = ""
    if panel.thresholds and isinstance(value, int | float):
        colour = panel.thresholds[0][0]
        for step_colour, limit in panel.thresholds[1:]:
            if limit is not None and value >= limit:
                colour = step_colour
        css = "bad" if colour == "red" else "good" if colour == "green" else ""
    return f'<div class="stat {css}">{html.escape(format_value(value, unit))}</div>'


def render_html(time_range: TimeRange, results: Sequence[PanelResult], *, grafana_url: str = "") -> str:
    start, end = time_range.start.astimezone(UTC), time_range.end.astimezone(UTC)
    sections = []
    for result in results:
        panel = result.panel
        if panel.viz is Viz.STAT:
            body, css = _stat(result), ""
        elif panel.viz is Viz.TIMESERIES:
            body, css = svg_chart(result), "half"
        else:
            body, css = _table(result, grafana_url), "wide"
        sections.append(
            f'<section class="{css}" id="panel-{panel.id}"><h2>{html.escape(panel.title)}</h2>'
            f'<p class="desc">{html.escape(panel.description)}</p>{body}</section>'
        )
    link = ""
    if grafana_url:
        url = f"{grafana_url.rstrip('/')}/d/{links.WEEKLY}/{links.SLUGS[links.WEEKLY]}"
        link = f' · <a style="color:#9ec3ff" href="{html.escape(url)}">open in Grafana</a>'
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>LLM weekly review {start:%Y-%m-%d} – {end:%Y-%m-%d}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>LLM weekly review</h1><p>{start:%a %d %b %Y %H:%M} – {end:%a %d %b %Y %H:%M} UTC · all apps, "
        f"every environment{link}</p></header><main>{''.join(sections)}</main>"
        f"<footer>Generated by <code>llmpulse report --week</code> at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from the "
        "Weekly review dashboard's queries.</footer></body></html>\n"
    )
