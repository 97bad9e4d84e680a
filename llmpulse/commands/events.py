"""`llmpulse events`: stored events, filtered, newest first (the same query as `GET /v1/events`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from llmpulse.commands.output import SINCE_HELP, FormatOption, OutputFormat, fail, instant, output_format, write_json
from llmpulse.console import console


def register(app: typer.Typer) -> None:
    @app.command()
    def events(
        app_name: Annotated[str | None, typer.Option("--app", help="Only this app.")] = None,
        model: Annotated[str | None, typer.Option(help="Only this (requested) model.")] = None,
        status: Annotated[str | None, typer.Option(help="ok or error.")] = None,
        since: Annotated[str | None, typer.Option(help=f"Started at or after: {SINCE_HELP}")] = None,
        until: Annotated[str | None, typer.Option(help=f"Started before: {SINCE_HELP}")] = None,
        trace_id: Annotated[str | None, typer.Option(help="Every call of one trace.")] = None,
        event_id: Annotated[str | None, typer.Option(help="One event.")] = None,
        prompt_version: Annotated[str | None, typer.Option(help="Only this prompt version.")] = None,
        limit: Annotated[int, typer.Option(help="Events per page (at most 10000).")] = 50,
        cursor: Annotated[str | None, typer.Option(help="Continue after a page: its next_cursor.")] = None,
        with_text: Annotated[bool, typer.Option("--with-text", help="Include prompt and response texts.")] = False,
        output: FormatOption = "table",
    ) -> None:
        """Stored events, newest first; `--format json` pages with next_cursor like GET /v1/events."""
        from collector.queries import MAX_LIMIT, ClickHouseEventQueries, EventFilter, EventQueryError
        from llmpulse.runtime import open_store
        from llmpulse.settings import get_settings

        fmt = output_format(output)
        if status is not None and status not in ("ok", "error"):
            raise fail(f"--status {status!r}: use ok or error")
        if not 1 <= limit <= MAX_LIMIT:
            raise fail(f"--limit {limit}: use 1 to {MAX_LIMIT} (and --cursor for the next page)")
        filters = EventFilter(
            app=app_name, model=model, status=status,  # type: ignore[arg-type]
            since=instant(since, "--since") if since else None,
            until=instant(until, "--until") if until else None,
            trace_id=trace_id, event_id=event_id, prompt_version=prompt_version, limit=limit, cursor=cursor,
            with_text=with_text,
        )
        if filters.since and filters.until and filters.until <= filters.since:
            raise fail(f"--until ({filters.until:%Y-%m-%d %H:%M}) must be after --since "
                       f"({filters.since:%Y-%m-%d %H:%M})")
        try:
            page = ClickHouseEventQueries(open_store(get_settings())).page(filters)
        except EventQueryError as exc:
            raise fail(f"--cursor: {exc}") from None
        if fmt is OutputFormat.JSON:
            write_json(page.to_json())
            return
        if not page.events:
            console.print("no events match")
            return
        table = Table(title=f"Events ({len(page.events)}, newest first)")
        columns = ["start_time", "app", "model", "status", "latency_ms", "tokens in/out", "cost $", "trace_id",
                   "event_id"]
        if with_text:
            columns += ["input_text", "output_text"]
        for column in columns:
            table.add_column(column, overflow="fold")
        for e in page.events:
            cost = e.get("cost_usd")
            row = [
                str(e["start_time"]).replace("T", " ")[:23], str(e["app"]), str(e["model"]),
                str(e["status"]) + (f" ({e['error_type']})" if e.get("error_type") else ""),
                f"{float(e['latency_ms']):,.0f}", f"{e['input_tokens']}/{e['output_tokens']}",
                "-" if cost is None else f"{float(cost):.5f}", str(e["trace_id"]), str(e["event_id"]),
            ]
            if with_text:
                row += [str(e.get("input_text", ""))[:200], str(e.get("output_text", ""))[:200]]
            table.add_row(*row)
        console.print(table)
        if page.next_cursor:
            console.print(f"more: --cursor {page.next_cursor}", highlight=False)
