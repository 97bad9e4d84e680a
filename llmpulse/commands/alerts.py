"""`llmpulse alerts`: what llmpulse alerted on (the ClickHouse `alerts` history), and whether the
configured Alertmanager(s) can be reached."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer
from rich.console import Console

from alerts.history import AlertRecord
from llmpulse.console import console, err_console


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


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


def _check_alertmanagers(urls: Sequence[str], timeout: float) -> bool:
    from alerts.sender import AlertmanagerURLError, parse_alertmanager_url

    if not urls:
        console.print("LLMPULSE_ALERTMANAGER_URL is not set: alerts are recorded in ClickHouse only "
                      "(shown by `llmpulse alerts`).")
        return True
    healthy = True
    for url in urls:
        try:
            endpoint = parse_alertmanager_url(url)
        except AlertmanagerURLError as exc:
            console.print(f"[red]✗[/] {exc}")
            healthy = False
            continue
        request = urllib.request.Request(f"{endpoint.base_url}/api/v2/status")
        if endpoint.authorization:
            request.add_header("Authorization", endpoint.authorization)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status = orjson.loads(response.read())
            version = status.get("versionInfo", {}).get("version", "?")
            cluster = status.get("cluster", {}).get("status", "?")
            console.print(f"[green]✓[/] {endpoint.base_url}: Alertmanager {version}, cluster {cluster}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            console.print(f"[red]✗[/] {endpoint.base_url}: {getattr(exc, 'reason', exc)}")
            healthy = False
    return healthy


def register(app: typer.Typer) -> None:
    @app.command("alerts")
    def alerts_command(
        since: Annotated[str, typer.Option(help="Resolved alerts and transitions this far back: 90m, 7d.")] = "24h",
        history: Annotated[bool, typer.Option("--history", help="Every transition instead of current states.")] = False,
        limit: Annotated[int, typer.Option(help="At most this many transitions with --history.")] = 200,
        as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
        check: Annotated[bool, typer.Option("--check", help="Check the configured Alertmanager(s) instead.")] = False,
    ) -> None:
        """Alerts llmpulse raised (firing, and resolved within --since), from the ClickHouse history."""
        from alerts.history import ClickHouseAlertHistory
        from llmpulse.settings import get_settings
        from llmpulse.simulate import parse_duration

        settings = get_settings()
        if check:
            if not _check_alertmanagers(settings.alertmanager_url, settings.alertmanager_timeout_s):
                raise typer.Exit(1)
            return
        try:
            window = parse_duration(since)
        except ValueError as exc:
            raise _fail(f"--since: {exc}") from None
        if limit < 1:
            raise _fail("--limit must be at least 1")
        from llmpulse.runtime import open_store

        store = ClickHouseAlertHistory(open_store(settings))
        now = datetime.now(UTC)
        if history:
            records = store.transitions(since=now - window, limit=limit)
        else:
            records = store.current(resolved_since=now - window)
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
