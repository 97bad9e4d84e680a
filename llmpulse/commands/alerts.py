"""`llmpulse alerts`: what llmpulse alerted on (the ClickHouse `alerts` history), and whether the
configured Alertmanager(s) can be reached."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from alerts.history import AlertRecord
from llmpulse.commands.output import SINCE_HELP, FormatOption, OutputFormat, instant, output_format, write_json
from llmpulse.console import console
from llmpulse.errors import OperatorError

if TYPE_CHECKING:
    from llmpulse.settings import Settings


def _fail(message: str) -> OperatorError:
    return OperatorError(message)


def _labels(record: AlertRecord) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(record.labels.items())) or "-"


def _since(record: AlertRecord, now: datetime) -> str:
    minutes = int((now - record.started_at).total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{max(minutes, 0)}m"


def render_alerts(out: Console, records: Sequence[AlertRecord], *, now: datetime, title: str) -> None:
    """The current state of each alert, firing ones first: one block per alert, readable at any width."""
    out.print(f"[bold]{title}[/]: {sum(r.status == 'firing' for r in records)} firing, "
              f"{sum(r.status != 'firing' for r in records)} resolved")
    for r in records:
        if r.resolved_at is None:
            head = f"[bold red]FIRING[/]   {r.alertname} {r.severity} {_labels(r)}"
            when = f"since {r.started_at:%Y-%m-%d %H:%M} UTC ({_since(r, now)})"
        else:
            head = f"[green]RESOLVED[/] {r.alertname} {r.severity} {_labels(r)}"
            when = f"{r.started_at:%Y-%m-%d %H:%M} → {r.resolved_at:%H:%M} UTC ({_since(r, r.resolved_at)})"
        out.print(f"{head}  {when}", soft_wrap=True, highlight=False)
        out.print(f"         {r.summary}", soft_wrap=True, highlight=False, markup=False)
        if r.resolved_at is None:
            out.print(f"         runbook {r.runbook_url}  dashboard {r.dashboard_url}", soft_wrap=True,
                      highlight=False, markup=False)


def render_transitions(out: Console, records: Sequence[AlertRecord], *, title: str) -> None:
    out.print(f"[bold]{title}[/]: {len(records)}")
    for r in records:
        out.print(f"{r.recorded_at:%Y-%m-%d %H:%M:%S}  {r.status:<8} {r.alertname} {r.severity} {_labels(r)}  "
                  f"finding {r.finding_id}", soft_wrap=True, highlight=False, markup=False)


def _check_alertmanagers(settings: Settings) -> bool:
    """GET /api/v2/status of each configured Alertmanager, with the same credentials and TLS as delivery."""
    from alerts.factory import alertmanager_clients
    from alerts.sender import AlertmanagerURLError, DeliveryError

    if not settings.alertmanager_url:
        console.print("LLMPULSE_ALERTMANAGER_URL is not set: alerts are recorded in ClickHouse only "
                      "(shown by `llmpulse alerts`).")
        return True
    try:
        clients = alertmanager_clients(settings)
    except AlertmanagerURLError as exc:
        raise _fail(str(exc)) from None
    healthy = True
    for client in clients:
        try:
            status = orjson.loads(client.request("/api/v2/status"))
            version = status.get("versionInfo", {}).get("version", "?")
            cluster = status.get("cluster", {}).get("status", "?")
            console.print(f"[green]✓[/] {client.name}: Alertmanager {version}, cluster {cluster}", highlight=False)
        except (DeliveryError, ValueError) as exc:
            console.print(f"[red]✗[/] {escape(str(exc))}", highlight=False)
            healthy = False
    return healthy


def register(app: typer.Typer) -> None:
    @app.command("alerts")
    def alerts_command(
        since: Annotated[
            str, typer.Option(help=f"Resolved alerts and transitions since then: {SINCE_HELP}")
        ] = "24h",
        history: Annotated[bool, typer.Option("--history", help="Every transition instead of current states.")] = False,
        limit: Annotated[int, typer.Option(help="At most this many transitions with --history.")] = 200,
        as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one alert per line.")] = False,
        output: FormatOption = "table",
        check: Annotated[bool, typer.Option("--check", help="Check the configured Alertmanager(s) instead.")] = False,
    ) -> None:
        """Alerts llmpulse raised (firing, and resolved within --since), from the ClickHouse history."""
        from alerts.history import ClickHouseAlertHistory
        from llmpulse.settings import get_settings

        fmt = output_format(output)
        settings = get_settings()
        if check:
            if not _check_alertmanagers(settings):
                raise typer.Exit(1)
            return
        now = datetime.now(UTC)
        start = instant(since, "--since", now=now)
        if limit < 1:
            raise _fail("--limit must be at least 1")
        from llmpulse.runtime import open_store

        store = ClickHouseAlertHistory(open_store(settings))
        records = store.transitions(since=start, limit=limit) if history else store.current(resolved_since=start)
        if fmt is OutputFormat.JSON:
            write_json({"alerts": records, "count": len(records)})
            return
        if as_json:
            for r in records:
                sys.stdout.write(orjson.dumps(r, option=orjson.OPT_UTC_Z).decode() + "\n")
            return
        if history:
            render_transitions(console, records, title=f"Alert transitions in the last {since}")
        else:
            render_alerts(console, records, now=now, title=f"Alerts firing, or resolved in the last {since}")
        if not settings.alertmanager_url:
            console.print("[dim]No LLMPULSE_ALERTMANAGER_URL: alerts are recorded here only, nobody is notified.[/]")
