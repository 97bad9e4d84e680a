"""`llmpulse report --week`: the Weekly review dashboard as a static HTML page with charts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from llmpulse.console import console, err_console


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        week: Annotated[bool, typer.Option("--week", help="The weekly review: the 7 days before --end.")] = False,
        end: Annotated[str | None, typer.Option(help="End of the week, RFC 3339 (default: now).")] = None,
        out: Annotated[Path | None, typer.Option(help="HTML file to write (default .llmpulse/reports/...).")] = None,
        grafana_url: Annotated[
            str | None, typer.Option(help="Grafana base URL for links (default LLMPULSE_ALERT_DASHBOARD_BASE_URL).")
        ] = None,
    ) -> None:
        """Render a review as a static HTML page from the same queries as its Grafana dashboard."""
        from dashboards.report import build_weekly_report, week_ending
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        if not week:
            err_console.print("[bold red]error:[/] say which report: --week")
            raise typer.Exit(2)
        if end is None:
            until = datetime.now(UTC).replace(second=0, microsecond=0)
        else:
            try:
                until = datetime.fromisoformat(end.replace("Z", "+00:00"))
            except ValueError:
                err_console.print(f"[bold red]error:[/] --end {end!r} is not RFC 3339 (e.g. 2026-11-23T00:00:00Z)")
                raise typer.Exit(2) from None
            until = until if until.tzinfo else until.replace(tzinfo=UTC)
        settings = get_settings()
        result = build_weekly_report(
            open_store(settings), week_ending(until),
            grafana_url=grafana_url if grafana_url is not None else settings.alert_dashboard_base_url,
        )
        path = out or Path(".llmpulse/reports") / f"weekly-{until:%Y-%m-%d}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(result.html, "utf-8")
        empty = [r.panel.title for r in result.results if not r.rows]
        console.print(f"wrote {path} ({len(result.results)} panels"
                      + (f"; nothing this week in: {', '.join(empty)}" if empty else "") + ")")
