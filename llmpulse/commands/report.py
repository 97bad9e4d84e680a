"""`llmpulse report --week`: the Weekly review dashboard as a static HTML page with charts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from llmpulse.commands.output import FormatOption, OutputFormat, fail, instant, output_format, write_json
from llmpulse.console import console


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        week: Annotated[bool, typer.Option("--week", help="The weekly review: the 7 days before --end.")] = False,
        end: Annotated[str | None, typer.Option(help="End of the week, RFC 3339 (default: now).")] = None,
        out: Annotated[Path | None, typer.Option(help="HTML file to write (default .llmpulse/reports/...).")] = None,
        grafana_url: Annotated[
            str | None, typer.Option(help="Grafana base URL for links (default LLMPULSE_ALERT_DASHBOARD_BASE_URL).")
        ] = None,
        output: FormatOption = "table",
    ) -> None:
        """Render a review as a static HTML page from the same queries as its Grafana dashboard."""
        from dashboards.report import build_weekly_report, week_ending
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        if not week:
            raise fail("say which report: --week")
        fmt = output_format(output)
        until = instant(end, "--end") if end is not None else datetime.now(UTC).replace(second=0, microsecond=0)
        settings = get_settings()
        result = build_weekly_report(
            open_store(settings), week_ending(until),
            grafana_url=grafana_url if grafana_url is not None else settings.alert_dashboard_base_url,
        )
        path = out or Path(".llmpulse/reports") / f"weekly-{until:%Y-%m-%d}.html"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(result.html, "utf-8")
        except OSError as exc:
            raise fail(f"--out {path}: cannot write the report: {exc.strerror or exc}") from None
        empty = [r.panel.title for r in result.results if not r.rows]
        if fmt is OutputFormat.JSON:
            write_json({"path": str(path), "panels": [r.panel.title for r in result.results], "empty_panels": empty})
            return
        console.print(f"wrote {path} ({len(result.results)} panels"
                      + (f"; nothing this week in: {', '.join(empty)}" if empty else "") + ")")
